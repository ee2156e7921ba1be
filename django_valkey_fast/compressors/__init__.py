"""Compressors: applied to serialized values longer than ``CACHE_COMPRESS_MIN_LENGTH``."""
