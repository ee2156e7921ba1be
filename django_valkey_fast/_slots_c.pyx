# cython: language_level=3, boundscheck=False, wraparound=False
"""Valkey Cluster hash slots, compiled implementation (twin of ``_slots_py.py``)."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE

__all__ = ["key_slot", "SLOTS"]

SLOTS = 16384

cdef unsigned short _TABLE[256]


cdef void _fill():
    cdef unsigned int byte, crc, bit
    for byte in range(256):
        crc = byte << 8
        for bit in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        _TABLE[byte] = crc & 0xFFFF


_fill()


def key_slot(key) -> int:
    """The cluster slot of ``key`` (str or bytes)."""
    cdef bytes data = key.encode() if isinstance(key, str) else bytes(key)
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data), start = -1, end = -1, i
    cdef unsigned int crc = 0
    for i in range(n):
        if p[i] == b'{':
            start = i
            break
    if start >= 0:
        for i in range(start + 1, n):
            if p[i] == b'}':
                end = i
                break
        if end > start + 1:
            p = p + start + 1
            n = end - start - 1
    for i in range(n):
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[((crc >> 8) ^ p[i]) & 0xFF]
    return crc % 16384
