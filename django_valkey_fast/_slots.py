"""Selects the compiled or the pure-Python slot hash and re-exports its names."""

from typing import TYPE_CHECKING

from django_valkey_fast._extensions import USE_EXTENSIONS

if TYPE_CHECKING or not USE_EXTENSIONS:
    from django_valkey_fast._slots_py import SLOTS, key_slot  # noqa: F401
else:
    try:
        from django_valkey_fast._slots_c import SLOTS, key_slot  # noqa: F401
    except ImportError:  # a pure-Python install: no compiler was available
        from django_valkey_fast._slots_py import SLOTS, key_slot  # noqa: F401
