"""The compressor interface (django-valkey's), read from settings at construction."""

from django.conf import settings

from django_valkey_fast.exceptions import CompressorError

__all__ = ["BaseCompressor"]


class BaseCompressor:
    """Base class of compressors.

    ``compress`` compresses payloads longer than ``min_length``
    (``CACHE_COMPRESS_MIN_LENGTH``, default 15) with ``level``
    (``CACHE_COMPRESS_LEVEL``; each compressor has its own default). ``decompress``
    raises ``CompressorError`` for a payload it cannot decompress, which the codec
    takes to mean "stored uncompressed". ``magic`` is the prefix (or tuple of
    prefixes) every compressed payload starts with, or None: with it the codec
    skips decompressing payloads that cannot be compressed ones.
    """

    magic: bytes | tuple | None = None

    def __init__(self, options):
        self._options: dict = options
        self.min_length = getattr(settings, "CACHE_COMPRESS_MIN_LENGTH", 15)
        self.level = getattr(settings, "CACHE_COMPRESS_LEVEL", None)

    def compress(self, value: bytes) -> bytes:
        """Compress ``value`` if it is longer than ``min_length``."""
        if len(value) > self.min_length:
            return self._compress(value)
        return value

    def _compress(self, value: bytes) -> bytes:
        raise NotImplementedError

    def decompress(self, value: bytes) -> bytes:
        """Decompress ``value``; ``CompressorError`` if it is not compressed."""
        try:
            return self._decompress(value)
        except Exception as e:
            raise CompressorError from e

    def _decompress(self, value: bytes) -> bytes:
        raise NotImplementedError
