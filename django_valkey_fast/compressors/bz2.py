"""bz2 compressor: ``CACHE_COMPRESS_LEVEL`` (default 9)."""

import bz2

from django_valkey_fast.compressors.base import BaseCompressor

__all__ = ["Bz2Compressor"]


class Bz2Compressor(BaseCompressor):
    """bzip2."""

    magic = b"BZh"

    def _compress(self, value: bytes) -> bytes:
        return bz2.compress(value, compresslevel=self.level or 9)

    def _decompress(self, value: bytes) -> bytes:
        return bz2.decompress(value)
