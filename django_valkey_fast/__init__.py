"""django-valkey-fast: a fast Django cache backend for Valkey and Redis.

A drop-in replacement for django-valkey: use ``django_valkey_fast`` wherever the
settings say ``django_valkey``.
"""

__version__ = "0.1.0"
VERSION = (0, 1, 0)

__all__ = ["COMPILED", "VERSION", "__version__", "get_valkey_connection"]


def __getattr__(name):
    # Computed on first use so importing the package does not import the codec.
    if name == "COMPILED":
        from django_valkey_fast import _codec

        return _codec.Codec.__module__.endswith("_c")
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
