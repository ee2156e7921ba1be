"""zlib compressor: ``CACHE_COMPRESS_LEVEL`` (default 6), ``COMPRESS_ZLIB_WBITS`` (15)."""

import sys
import zlib

from django.conf import settings

from django_valkey_fast.compressors.base import BaseCompressor

__all__ = ["ZlibCompressor"]


class ZlibCompressor(BaseCompressor):
    """zlib (deflate with a zlib header)."""

    def __init__(self, options):
        super().__init__(options)
        self.wbits = getattr(settings, "COMPRESS_ZLIB_WBITS", 15)
        # A zlib stream's first byte encodes the window size (RFC 1950).
        self.magic = bytes([((self.wbits - 8) << 4) | 8]) if 9 <= self.wbits <= 15 else None

    def _compress(self, value: bytes) -> bytes:
        if sys.version_info < (3, 11):  # zlib.compress has no wbits: the same stream
            compressor = zlib.compressobj(self.level or 6, zlib.DEFLATED, self.wbits)
            return compressor.compress(value) + compressor.flush()
        return zlib.compress(value, level=self.level or 6, wbits=self.wbits)

    def _decompress(self, value: bytes) -> bytes:
        return zlib.decompress(value, wbits=self.wbits)
