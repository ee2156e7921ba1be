"""Selects the compiled or the pure-Python RESP packer and re-exports its names."""

from typing import TYPE_CHECKING

from django_valkey_fast._extensions import USE_EXTENSIONS

if TYPE_CHECKING or not USE_EXTENSIONS:
    from django_valkey_fast._wire_py import pack_command, pack_commands  # noqa: F401
else:
    try:
        from django_valkey_fast._wire_c import pack_command, pack_commands  # noqa: F401
    except ImportError:  # a pure-Python install: no compiler was available
        from django_valkey_fast._wire_py import pack_command, pack_commands  # noqa: F401
