"""LZ4 frame compressor (``pip install 'django-valkey-fast[lz4]'``).

Settings: ``CACHE_COMPRESS_LEVEL`` (default 0), ``COMPRESS_LZ4_BLOCK_SIZE`` (0),
``COMPRESS_LZ4_CONTENT_CHECKSUM`` (0), ``COMPRESS_LZ4_BLOCK_LINKED`` (True),
``COMPRESS_LZ4_STORE_SIZE`` (True).
"""

from django.conf import settings

from django_valkey_fast._optional import optional_import, require
from django_valkey_fast.compressors.base import BaseCompressor

__all__ = ["Lz4Compressor"]

lz4_frame = optional_import("lz4.frame")


class Lz4Compressor(BaseCompressor):
    """LZ4 frames."""

    magic = b"\x04\x22\x4d\x18"

    def __init__(self, options):
        require(lz4_frame, "Lz4Compressor", "lz4", "lz4")
        super().__init__(options)
        self.block_size = getattr(settings, "COMPRESS_LZ4_BLOCK_SIZE", 0)
        self.content_checksum = getattr(settings, "COMPRESS_LZ4_CONTENT_CHECKSUM", 0)
        self.block_linked = getattr(settings, "COMPRESS_LZ4_BLOCK_LINKED", True)
        self.store_size = getattr(settings, "COMPRESS_LZ4_STORE_SIZE", True)

    def _compress(self, value: bytes) -> bytes:
        return lz4_frame.compress(
            value,
            compression_level=self.level or 0,
            block_size=self.block_size,
            content_checksum=self.content_checksum,
            block_linked=self.block_linked,
            store_size=self.store_size,
        )

    def _decompress(self, value: bytes) -> bytes:
        return lz4_frame.decompress(value)
