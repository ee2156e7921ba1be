"""The serializer interface (django-valkey's, unchanged)."""

from typing import Any

__all__ = ["BaseSerializer"]


class BaseSerializer:
    """Base class of serializers: ``dumps`` a value to bytes, ``loads`` it back."""

    def __init__(self, options):
        pass

    def dumps(self, value: Any) -> bytes:
        """Return ``value`` as bytes."""
        raise NotImplementedError

    def loads(self, value: bytes) -> Any:
        """Return the value ``dumps`` turned into ``value``."""
        raise NotImplementedError
