"""Pickle serializer (the default), with ``OPTIONS["PICKLE_VERSION"]``."""

import functools
import pickle

from django.core.exceptions import ImproperlyConfigured

from django_valkey_fast.serializers.base import BaseSerializer

__all__ = ["PickleSerializer"]


class PickleSerializer(BaseSerializer):
    """Pickles values with ``PICKLE_VERSION`` (default: ``pickle.DEFAULT_PROTOCOL``)."""

    def __init__(self, options) -> None:
        self._pickle_version = pickle.DEFAULT_PROTOCOL
        self.setup_pickle_version(options)
        super().__init__(options=options)

    def setup_pickle_version(self, options) -> None:
        """Read and check ``PICKLE_VERSION``."""
        if "PICKLE_VERSION" in options:
            try:
                self._pickle_version = int(options["PICKLE_VERSION"])
            except (ValueError, TypeError) as e:
                raise ImproperlyConfigured("PICKLE_VERSION value must be an integer") from e
            if self._pickle_version > pickle.HIGHEST_PROTOCOL:
                raise ImproperlyConfigured(
                    "PICKLE_VERSION can't be higher than pickle.HIGHEST_PROTOCOL:"
                    f" {pickle.HIGHEST_PROTOCOL}"
                )

    def codec_functions(self) -> tuple:
        """``(dumps, loads)`` for the codec: pickle's own functions, unless a subclass
        overrides ``dumps`` or ``loads`` (a Python frame less per value)."""
        cls = type(self)
        if cls.dumps is PickleSerializer.dumps and cls.loads is PickleSerializer.loads:
            return functools.partial(pickle.dumps, protocol=self._pickle_version), pickle.loads
        return self.dumps, self.loads

    def dumps(self, value) -> bytes:
        """Pickle ``value``."""
        return pickle.dumps(value, self._pickle_version)

    def loads(self, value: bytes):
        """Unpickle ``value``."""
        return pickle.loads(value)
