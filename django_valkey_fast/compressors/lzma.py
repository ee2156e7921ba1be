"""lzma compressor.

Settings: ``CACHE_COMPRESS_LEVEL`` (preset, default 4), ``COMPRESS_LZMA_FORMAT`` (1),
``COMPRESS_LZMA_CHECK`` (-1), ``COMPRESS_LZMA_FILTERS`` (None); for reading
``DECOMPRESS_LZMA_MEMLIMIT`` (None), ``DECOMPRESS_LZMA_FORMAT`` (0, auto),
``DECOMPRESS_LZMA_FILTERS`` (None).
"""

import lzma

from django.conf import settings

from django_valkey_fast.compressors.base import BaseCompressor

__all__ = ["LzmaCompressor"]


class LzmaCompressor(BaseCompressor):
    """lzma / xz."""

    def __init__(self, options):
        super().__init__(options)
        self.format = getattr(settings, "COMPRESS_LZMA_FORMAT", 1)
        self.check = getattr(settings, "COMPRESS_LZMA_CHECK", -1)
        self.filters = getattr(settings, "COMPRESS_LZMA_FILTERS", None)
        self.memlimit = getattr(settings, "DECOMPRESS_LZMA_MEMLIMIT", None)
        self.decomp_format = getattr(settings, "DECOMPRESS_LZMA_FORMAT", 0)
        self.decomp_filters = getattr(settings, "DECOMPRESS_LZMA_FILTERS", None)

    def _compress(self, value: bytes) -> bytes:
        # `or 4` as in django-valkey: format 0 (auto) is not valid for writing.
        return lzma.compress(value, preset=self.level or 4, format=self.format or 4,
                             check=self.check, filters=self.filters)

    def _decompress(self, value: bytes) -> bytes:
        return lzma.decompress(value, memlimit=self.memlimit, format=self.decomp_format,
                               filters=self.decomp_filters)
