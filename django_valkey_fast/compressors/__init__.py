"""Compressors: applied to serialized values longer than ``CACHE_COMPRESS_MIN_LENGTH``."""

__all__: list[str] = []  # the compressors are in the modules of this package
