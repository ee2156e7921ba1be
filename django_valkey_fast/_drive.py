"""Selects the compiled or the pure-Python plan driver twin and re-exports its names."""

from typing import TYPE_CHECKING

from django_valkey_fast._extensions import USE_EXTENSIONS

if TYPE_CHECKING or not USE_EXTENSIONS:
    from django_valkey_fast._drive_py import run_plan  # noqa: F401
else:
    try:
        from django_valkey_fast._drive_c import run_plan  # noqa: F401
    except ImportError:  # a pure-Python install: no compiler was available
        from django_valkey_fast._drive_py import run_plan  # noqa: F401
