"""Valkey Cluster hash slots, pure-Python implementation (twin of ``_slots_c.pyx``).

``key_slot(key)`` is CRC16-XMODEM of the key (or of its ``{hash tag}``: the part
between the first ``{`` and the next ``}``, when not empty) modulo 16384.
"""

__all__ = ["key_slot", "SLOTS"]

SLOTS = 16384


def _table():
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_TABLE = _table()


def key_slot(key) -> int:
    """The cluster slot of ``key`` (str or bytes)."""
    data = key.encode() if isinstance(key, str) else bytes(key)
    start = data.find(b"{")
    if start >= 0:
        end = data.find(b"}", start + 1)
        if end > start + 1:
            data = data[start + 1:end]
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[((crc >> 8) ^ byte) & 0xFF]
    return crc % SLOTS
