"""Brotli compressor (``pip install 'django-valkey-fast[brotli]'``).

Settings: ``CACHE_COMPRESS_LEVEL`` (quality, default 11), ``COMPRESS_BROTLI_LGWIN``
(22), ``COMPRESS_BROTLI_LGBLOCK`` (0), ``COMPRESS_BROTLI_MODE`` ("GENERIC", "TEXT"
or "FONT").
"""

from django.conf import settings

from django_valkey_fast._optional import optional_import, require
from django_valkey_fast.compressors.base import BaseCompressor

__all__ = ["BrotliCompressor"]

brotli = optional_import("brotli")


class BrotliCompressor(BaseCompressor):
    """Brotli (no magic bytes: every payload is tried)."""

    def __init__(self, options):
        require(brotli, "BrotliCompressor", "brotli", "brotli")
        super().__init__(options)
        mode = str(getattr(settings, "COMPRESS_BROTLI_MODE", "GENERIC")).upper()
        self.mode = {"TEXT": brotli.MODE_TEXT, "FONT": brotli.MODE_FONT}.get(
            mode, brotli.MODE_GENERIC
        )
        self.lgwin = getattr(settings, "COMPRESS_BROTLI_LGWIN", 22)
        self.lgblock = getattr(settings, "COMPRESS_BROTLI_LGBLOCK", 0)

    def _compress(self, value: bytes) -> bytes:
        return brotli.compress(value, quality=self.level or 11, lgwin=self.lgwin,
                               lgblock=self.lgblock, mode=self.mode)

    def _decompress(self, value: bytes) -> bytes:
        return brotli.decompress(value)
