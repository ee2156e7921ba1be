"""Selects the compiled or the pure-Python twin of slots and key splitting, and
re-exports its names."""

from typing import TYPE_CHECKING

from django_valkey_fast._extensions import USE_EXTENSIONS

if TYPE_CHECKING or not USE_EXTENSIONS:
    from django_valkey_fast._slots_py import (  # noqa: F401
        SLOTS, group_parts, key_slot, merge_values, place_values, split_by_node, split_keys,
        take_replies)
else:
    try:
        from django_valkey_fast._slots_c import (  # noqa: F401
            SLOTS, group_parts, key_slot, merge_values, place_values, split_by_node, split_keys,
            take_replies)
    except ImportError:  # a pure-Python install: no compiler was available
        from django_valkey_fast._slots_py import (  # noqa: F401
            SLOTS, group_parts, key_slot, merge_values, place_values, split_by_node, split_keys,
            take_replies)
