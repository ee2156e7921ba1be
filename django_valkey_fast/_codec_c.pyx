# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cache keys and values, compiled implementation (twin of ``_codec_py.py``).

Same names, same behaviour and the same bytes as the pure-Python twin; see that
module for the description of each name.
"""

import warnings

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_GET_LENGTH, PyUnicode_READ_CHAR

from django.core.cache.backends.base import CacheKeyWarning, memcache_key_warnings

from django_valkey_fast._common import (
    FLOAT_START, MAX_KEY_LENGTH, CacheKey, glob_escape, key_text, number_like_payload,
    reads_as_number, unless_number_like,
)
from django_valkey_fast.exceptions import CompressorError, DecodeError
from django_valkey_fast.serializers.base import codec_functions

__all__ = ["Codec", "KeyMaker", "check_key", "COMPRESS_NONE", "COMPRESS_STANDARD",
           "COMPRESS_CUSTOM"]

COMPRESS_NONE = 0
COMPRESS_STANDARD = 1
COMPRESS_CUSTOM = 2

cdef int _NONE = 0
cdef int _STANDARD = 1
cdef int _CUSTOM = 2
cdef Py_ssize_t _MAX_KEY_LENGTH = MAX_KEY_LENGTH
cdef object _CacheKey = CacheKey
cdef object _key_text = key_text
cdef object _float_start = FLOAT_START
cdef object _reads_as_number = reads_as_number
cdef object _number_like_payload = number_like_payload
cdef object _unless_number_like = unless_number_like


cdef inline bint _key_is_clean(str key):
    # key is an exact str, never None: callers check with type(...) is str
    cdef Py_ssize_t i, n = PyUnicode_GET_LENGTH(key)
    cdef Py_UCS4 c
    if n > _MAX_KEY_LENGTH:
        return False
    for i in range(n):
        c = PyUnicode_READ_CHAR(key, i)
        if c < 33 or c == 127:
            return False
    return True


cdef inline void _warn(str key):
    for message in memcache_key_warnings(key):
        warnings.warn(message, CacheKeyWarning, stacklevel=3)


def check_key(key):
    """Warn (CacheKeyWarning) if ``key`` is too long or holds control characters;
    ``TypeError`` if it is not a str."""
    if type(key) is not str:
        key = _key_text(key)
    if not _key_is_clean(key):
        _warn(key)


cdef class KeyMaker:
    """Builds, validates and escapes keys for one cache (prefix, version, key function)."""

    cdef public object prefix
    cdef public object version
    cdef public object key_func
    cdef public bint default_key_func
    cdef public bint validate
    cdef str _head

    def __init__(self, prefix, version, key_func, default_key_func, validate=True):
        self.prefix = prefix
        self.version = version
        self.key_func = key_func
        self.default_key_func = default_key_func
        self.validate = validate
        self._head = f"{prefix}:{version}:"

    cpdef str make(self, key, version=None):
        """Return the server key for ``key`` as a str (a CacheKey is used as is)."""
        cdef str made
        if type(key) is _CacheKey:
            return str(key)
        if self.default_key_func:
            # Only the very same version value: 1.0 and True are keys of their own.
            if version is None or (version == self.version
                                   and type(version) is type(self.version)):
                if type(key) is str:
                    made = self._head + <str>key
                else:
                    made = self._head + f"{key}"
            else:
                made = f"{self.prefix}:{version}:{key}"
        else:
            custom = self.key_func(key, self.prefix,
                                   self.version if version is None else version)
            made = custom if type(custom) is str else _key_text(custom)
        if self.validate and not _key_is_clean(made):
            _warn(made)
        return made

    def make_many(self, keys, version=None):
        """``[make(key, version) for key in keys]``, for multi-key operations."""
        return [self.make(key, version) for key in keys]

    def make_pattern(self, pattern, version=None, prefix=None):
        """Return the SCAN/KEYS pattern matching ``pattern`` under this prefix and version."""
        if type(pattern) is _CacheKey:
            return str(pattern)
        prefix = glob_escape(self.prefix if prefix is None else prefix)
        version = glob_escape(str(self.version if version is None else version))
        made = self.key_func(pattern, prefix, version)
        return made if type(made) is str else _key_text(made)


cdef inline bint _is_integer(bytes value):
    cdef const char* p = PyBytes_AS_STRING(value)
    cdef Py_ssize_t i = 0, n = PyBytes_GET_SIZE(value)
    if n and p[0] == b'-':
        i = 1
    if i >= n:
        return False
    while i < n:
        if p[i] < b'0' or p[i] > b'9':
            return False
        i += 1
    return True


cdef class Codec:
    """Encodes values for the server and decodes what it returns."""

    cdef public object serializer
    cdef public object compressor
    cdef public int mode
    cdef public Py_ssize_t min_length
    cdef public object magic
    cdef object _dumps
    cdef object _loads
    cdef object _compress
    cdef object _decompress
    cdef str _serializer_name

    def __init__(self, serializer, compressor, mode, min_length, magic):
        self.serializer = serializer
        self.compressor = compressor
        self.mode = mode
        self.min_length = min_length
        self.magic = magic
        self._dumps, self._loads = codec_functions(serializer)
        if mode == _STANDARD:
            self._compress = compressor._compress
            self._decompress = compressor._decompress
        elif mode == _CUSTOM:
            self._compress = compressor.compress
            self._decompress = compressor.decompress
        self._serializer_name = type(serializer).__name__

    cpdef object encode(self, value):
        """Return ``value`` as stored: ints and floats unchanged, the rest as bytes."""
        cdef object value_type = type(value)
        if value_type is int or value_type is float:
            return value
        data = self._dumps(value)
        if data and data[0] in _float_start and _reads_as_number(data):
            return _number_like_payload(value, data, self._serializer_name)
        if self.mode == _STANDARD:
            if len(data) > self.min_length:
                return _unless_number_like(self._compress(data), data)
            return data
        if self.mode == _CUSTOM:
            return _unless_number_like(self._compress(data), data)
        return data

    @cython.boundscheck(True)  # (a serializer may release the GIL: lists may change)
    def decode_many(self, keys, nkeys, replies):
        """``{key: decoded reply}`` for the replies of an MGET that are not None
        (``keys[i]`` was asked as ``nkeys[i]``)."""
        cdef dict found = {}
        cdef Py_ssize_t i
        if type(keys) is list and type(nkeys) is list and type(replies) is list:
            for i in range(min(len(<list>keys), len(<list>nkeys), len(<list>replies))):
                reply = (<list>replies)[i]
                if reply is not None:
                    found[(<list>keys)[i]] = self.decode(reply, (<list>nkeys)[i])
            return found
        for key, nkey, reply in zip(keys, nkeys, replies):
            if reply is not None:
                found[key] = self.decode(reply, nkey)
        return found

    cpdef object decode(self, value, key=None):
        """Return the Python value for the bytes ``value`` read from ``key``."""
        cdef unsigned char first
        if type(value) is bytes and PyBytes_GET_SIZE(value):
            first = <unsigned char>PyBytes_AS_STRING(value)[0]
            if (48 <= first <= 57 or first == 45) and _is_integer(value):
                try:
                    return int(value)
                except ValueError as error:  # more digits than Python converts
                    raise DecodeError(key, "the integer reader", error) from None
            if first in _float_start:
                try:
                    return float(value)
                except ValueError:
                    pass
        elif value:
            try:
                value = bytes(value)  # bytearray, memoryview: same rules
            except TypeError as error:  # not a string reply (a map, an array...)
                raise DecodeError(key, self._serializer_name, error) from None
            return self.decode(value, key)
        try:
            if self.mode == _STANDARD:
                if self.magic is None:
                    return self._loads_unmarked(value)
                if value.startswith(self.magic):
                    try:
                        value = self._decompress(value)
                    except Exception:
                        pass
            elif self.mode == _CUSTOM:
                try:
                    value = self._decompress(value)
                except CompressorError:
                    pass
            return self._loads(value)
        except Exception as error:
            raise DecodeError(key, self._serializer_name, error) from error

    cdef object _loads_unmarked(self, value):
        """As ``_codec_py.Codec._loads_unmarked``: a payload of a compressor without
        magic bytes is read decompressed only if that is longer than ``min_length``."""
        try:
            unpacked = self._decompress(value)
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
