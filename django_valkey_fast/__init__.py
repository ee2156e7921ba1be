"""django-valkey-fast: a fast Django cache backend for Valkey and Redis.

A drop-in replacement for django-valkey: use ``django_valkey_fast`` wherever the
settings say ``django_valkey``.
"""

# The one place the version is written: pyproject.toml reads it from here
# ([tool.setuptools.dynamic]), so importing this module must need only the stdlib.
__version__ = "0.1.0"
VERSION = tuple(int(part) if part.isdigit() else part for part in __version__.split("."))

__all__ = ["COMPILED", "VERSION", "__version__", "get_valkey_connection"]

# Each twin module re-exports these names from its compiled (``<twin>_c``) or its
# pure-Python (``<twin>_py``) implementation.
_TWINS = {
    "_codec": ("Codec", "KeyMaker", "check_key"),
    "_wire": ("Link", "acquire", "call", "collect", "pack_command", "pack_commands",
              "pipeline", "read_reply", "read_replies", "release", "run", "write"),
    "_slots": ("group_parts", "key_slot", "merge_values", "place_values", "split_by_node",
               "split_keys", "take_replies"),
    "_drive": ("run_plan",),
}


def _compiled():
    """True when every name of every twin comes from its compiled module."""
    from importlib import import_module

    for twin, names in _TWINS.items():
        module = import_module(f"{__name__}.{twin}")
        for name in names:
            if getattr(module, name).__module__ != f"{__name__}.{twin}_c":
                return False
    return True


def __getattr__(name):
    # Computed on each use (not at import) so importing the package imports no twin.
    if name == "COMPILED":
        return _compiled()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_valkey_connection(alias="default", write=True, key=None):
    """Return the raw valkey-py client behind cache ``alias`` (for a write or a read)."""
    from django.core.cache import caches

    cache = caches[alias]
    client = getattr(cache, "client", None)
    if client is None or not hasattr(client, "get_client"):
        raise NotImplementedError("This backend does not support this feature")
    if hasattr(client, "get_server_name"):
        return client.get_client(key=key)
    return client.get_client(write)
