"""The default compressor: stores payloads as they are."""

from django_valkey_fast.compressors.base import BaseCompressor

__all__ = ["IdentityCompressor"]


class IdentityCompressor(BaseCompressor):
    """No compression (the codec skips it entirely)."""

    def _compress(self, value: bytes) -> bytes:
        return value

    def _decompress(self, value: bytes) -> bytes:
        return value
