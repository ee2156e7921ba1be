"""Optional libraries (serializers, compressors): imported if installed."""

import importlib

from django_valkey_fast.exceptions import MissingDependency

__all__ = ["optional_import", "require"]


def optional_import(name: str):
    """Return the module ``name``, or None when it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def require(module, what: str, name: str, extra: str) -> None:
    """Raise MissingDependency (naming the extra to install) if ``module`` is None."""
    if module is None:
        raise MissingDependency(what, name, extra)
