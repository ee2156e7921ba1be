"""Zstandard compressor (``pip install 'django-valkey-fast[zstd]'``).

Uses the standard library's ``compression.zstd`` (Python 3.14+) or its backport
``backports.zstd`` (what django-valkey uses), and falls back to the ``zstandard``
package. Settings: ``CACHE_COMPRESS_LEVEL`` (default 1), ``COMPRESS_ZSTD_OPTIONS``,
``COMPRESS_ZSTD_DICT``, ``DECOMPRESS_ZSTD_OPTIONS``, ``DECOMPRESS_ZSTD_DICT`` (the
options and dictionaries need ``compression.zstd``/``backports.zstd``).
"""

from django.conf import settings

from django_valkey_fast._optional import optional_import, require
from django_valkey_fast.compressors.base import BaseCompressor

__all__ = ["ZStdCompressor"]

zstd = optional_import("compression.zstd") or optional_import("backports.zstd")
zstandard = optional_import("zstandard") if zstd is None else None


class ZStdCompressor(BaseCompressor):
    """Zstandard frames."""

    magic = b"\x28\xb5\x2f\xfd"

    def __init__(self, options):
        require(zstd or zstandard, "ZStdCompressor", "backports.zstd", "zstd")
        super().__init__(options)
        self.options = getattr(settings, "COMPRESS_ZSTD_OPTIONS", None)
        self.decomp_options = getattr(settings, "DECOMPRESS_ZSTD_OPTIONS", None)
        self.zstd_dict = getattr(settings, "COMPRESS_ZSTD_DICT", None)
        self.decomp_zstd_dict = getattr(settings, "DECOMPRESS_ZSTD_DICT", None)

    def _compress(self, value: bytes) -> bytes:
        if zstd is None:
            assert zstandard is not None  # (checked by __init__)
            return zstandard.ZstdCompressor(level=self.level or 1).compress(value)
        return zstd.compress(value, options=self.options, level=self.level or 1,
                             zstd_dict=self.zstd_dict)

    def _decompress(self, value: bytes) -> bytes:
        if zstd is None:
            assert zstandard is not None
            return zstandard.ZstdDecompressor().decompressobj().decompress(value)
        return zstd.decompress(value, zstd_dict=self.decomp_zstd_dict or self.zstd_dict,
                               options=self.decomp_options or self.options)
