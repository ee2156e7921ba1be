"""Cache keys and values, pure-Python implementation (twin of ``_codec_c.pyx``).

``KeyMaker`` turns a caller's key into the key stored in the server and warns about
keys that are not portable (as Django's ``validate_key`` does). ``Codec`` turns a
value into the bytes stored in the server and back: ints and floats raw, anything
else serialized then compressed, exactly as django-valkey stores them.
"""

import warnings

from django.core.cache.backends.base import CacheKeyWarning, memcache_key_warnings

from django_valkey_fast._common import (
    FLOAT_START, MAX_KEY_LENGTH, CacheKey, glob_escape, key_text, number_like_payload,
    reads_as_number, unless_number_like,
)
from django_valkey_fast.exceptions import CompressorError, DecodeError
from django_valkey_fast.serializers.base import codec_functions

__all__ = ["Codec", "KeyMaker", "check_key", "COMPRESS_NONE", "COMPRESS_STANDARD",
           "COMPRESS_CUSTOM"]

# How the codec reaches the compressor (decided once, in Codec.__init__).
COMPRESS_NONE = 0  # identity: no call at all
COMPRESS_STANDARD = 1  # min-length check here, then the compressor's _compress/_decompress
COMPRESS_CUSTOM = 2  # the compressor overrides compress()/decompress(): call those


def check_key(key):
    """Warn (CacheKeyWarning) if ``key`` is too long or holds control characters;
    ``TypeError`` if it is not a str."""
    if type(key) is not str:
        key = key_text(key)
    if len(key) > MAX_KEY_LENGTH or not key.isprintable() or " " in key:
        for message in memcache_key_warnings(key):
            warnings.warn(message, CacheKeyWarning, stacklevel=3)


class KeyMaker:
    """Builds, validates and escapes keys for one cache (prefix, version, key function)."""

    def __init__(self, prefix, version, key_func, default_key_func, validate=True):
        self.prefix = prefix
        self.version = version
        self.key_func = key_func
        self.default_key_func = default_key_func
        self.validate = validate
        self._head = f"{prefix}:{version}:"

    def make(self, key, version=None):
        """Return the server key for ``key`` as a str (a CacheKey is used as is)."""
        if type(key) is CacheKey:
            return str(key)
        if self.default_key_func:
            # Only the very same version value: 1.0 and True are keys of their own.
            if version is None or (version == self.version
                                   and type(version) is type(self.version)):
                made = self._head + key if type(key) is str else self._head + f"{key}"
            else:
                made = f"{self.prefix}:{version}:{key}"
        else:
            made = self.key_func(key, self.prefix, self.version if version is None else version)
            if type(made) is not str:
                made = key_text(made)
        if self.validate:
            check_key(made)
        return made

    def make_many(self, keys, version=None):
        """``[make(key, version) for key in keys]``, for multi-key operations."""
        make = self.make
        return [make(key, version) for key in keys]

    def make_pattern(self, pattern, version=None, prefix=None):
        """Return the SCAN/KEYS pattern matching ``pattern`` under this prefix and version."""
        if type(pattern) is CacheKey:
            return str(pattern)
        prefix = glob_escape(self.prefix if prefix is None else prefix)
        version = glob_escape(str(self.version if version is None else version))
        made = self.key_func(pattern, prefix, version)
        return made if type(made) is str else key_text(made)


class Codec:
    """Encodes values for the server and decodes what it returns."""

    def __init__(self, serializer, compressor, mode, min_length, magic):
        self.serializer = serializer
        self.compressor = compressor
        self.mode = mode
        self.min_length = min_length
        self.magic = magic
        self._dumps, self._loads = codec_functions(serializer)
        self._serializer_name = type(serializer).__name__

    def encode(self, value):
        """Return ``value`` as stored: ints and floats unchanged, the rest as bytes."""
        value_type = type(value)
        if value_type is int or value_type is float:
            return value
        data = self._dumps(value)
        if data and data[0] in FLOAT_START and reads_as_number(data):
            return number_like_payload(value, data, self._serializer_name)
        mode = self.mode
        if mode == COMPRESS_STANDARD:
            if len(data) > self.min_length:
                return unless_number_like(self.compressor._compress(data), data)
            return data
        if mode == COMPRESS_CUSTOM:
            return unless_number_like(self.compressor.compress(data), data)
        return data

    def decode_many(self, keys, nkeys, replies):
        """``{key: decoded reply}`` for the replies of an MGET that are not None
        (``keys[i]`` was asked as ``nkeys[i]``)."""
        found = {}
        for key, nkey, reply in zip(keys, nkeys, replies):
            if reply is not None:
                found[key] = self.decode(reply, nkey)
        return found

    def decode(self, value, key=None):
        """Return the Python value for the bytes ``value`` read from ``key``."""
        if type(value) is not bytes and value:
            try:
                value = bytes(value)  # bytearray, memoryview: same rules
            except TypeError as error:  # not a string reply (a map, an array...)
                raise DecodeError(key, self._serializer_name, error) from None
        if value:
            first = value[0]
            if 48 <= first <= 57 or first == 45:  # digit or '-'
                if value.isdigit() or (first == 45 and value[1:].isdigit()):
                    try:
                        return int(value)
                    except ValueError as error:  # more digits than Python converts
                        raise DecodeError(key, "the integer reader", error) from None
            if first in FLOAT_START:
                try:
                    return float(value)
                except ValueError:
                    pass
        try:
            mode = self.mode
            if mode == COMPRESS_STANDARD:
                magic = self.magic
                if magic is None:
                    return self._loads_unmarked(value)
                if value.startswith(magic):
                    try:
                        value = self.compressor._decompress(value)
                    except Exception:
                        pass
            elif mode == COMPRESS_CUSTOM:
                try:
                    value = self.compressor.decompress(value)
                except CompressorError:
                    pass
            return self._loads(value)
        except Exception as error:
            raise DecodeError(key, self._serializer_name, error) from error

    def _loads_unmarked(self, value):
        """Load ``value`` written with a compressor that has no magic bytes (brotli, raw
        deflate), where a short payload stored uncompressed may happen to decompress (to
        b"" for instance): the output is taken only if longer than ``min_length``, as
        everything compressed was; otherwise the stored bytes. If that reading does not
        load, the other one is tried (a writer with a smaller ``min_length``)."""
        try:
            unpacked = self.compressor._decompress(value)
        except Exception:
            return self._loads(value)
        if len(unpacked) > self.min_length:
            first, other = unpacked, value
        else:
            first, other = value, unpacked
        try:
            return self._loads(first)
        except Exception as error:
            try:
                return self._loads(other)
            except Exception:
                raise error from None
