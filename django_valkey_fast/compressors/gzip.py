"""gzip compressor: ``CACHE_COMPRESS_LEVEL`` (default 9)."""

import gzip

from django_valkey_fast.compressors.base import BaseCompressor

__all__ = ["GzipCompressor"]


class GzipCompressor(BaseCompressor):
    """gzip."""

    magic = b"\x1f\x8b"

    def _compress(self, value: bytes) -> bytes:
        return gzip.compress(value, compresslevel=self.level or 9)

    def _decompress(self, value: bytes) -> bytes:
        return gzip.decompress(value)
