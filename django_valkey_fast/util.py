"""django-valkey's ``util`` names, for code that imports them."""

from django_valkey_fast._common import CacheKey, default_reverse_key, glob_escape

__all__ = ["CacheKey", "default_reverse_key", "glob_escape", "make_key", "make_pattern",
           "encode", "decode"]


def make_key(key, key_func, version=None, prefix=None):
    """Return ``key_func(key, prefix, version)`` as a CacheKey (a CacheKey as is)."""
    if isinstance(key, CacheKey):
        return key
    return CacheKey(key_func(key, prefix, version))


def make_pattern(pattern, key_func, version=None, prefix=None):
    """Return the glob pattern for ``pattern`` with the prefix and version escaped."""
    if isinstance(pattern, CacheKey):
        return pattern
    return CacheKey(key_func(pattern, glob_escape(prefix), glob_escape(str(version))))


def encode(value, serializer, compressor):
    """Encode ``value`` as the cache stores it (ints and floats raw)."""
    if type(value) in (int, float):
        return value
    return compressor.compress(serializer.dumps(value))


def decode(value, serializer, compressor):
    """Decode bytes read from the cache (see ``Codec.decode`` for the rules)."""
    from django_valkey_fast._codec import COMPRESS_CUSTOM, Codec

    return Codec(serializer, compressor, COMPRESS_CUSTOM, 0, None).decode(value)
