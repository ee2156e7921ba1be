"""The serializer interface (django-valkey's, unchanged)."""

from typing import Any

__all__ = ["BaseSerializer", "codec_functions"]


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


def codec_functions(serializer) -> tuple:
    """``(dumps, loads)``, the callables the codec calls for ``serializer``: what its
    ``codec_functions()`` returns when it has one (functions with no Python frame of
    their own, say), else its bound ``dumps`` and ``loads``."""
    own = getattr(serializer, "codec_functions", None)
    return own() if own is not None else (serializer.dumps, serializer.loads)
