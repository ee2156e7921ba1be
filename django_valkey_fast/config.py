"""A cache configuration's parts, built once per process: the codec (SERIALIZER and
COMPRESSOR), the key maker, the error policy (IGNORE_EXCEPTIONS), and the cache of
what each configuration prepared (``prepared``), shared by backends and clients."""

from __future__ import annotations

import logging
import operator
import socket

from django.conf import settings
from django.core.cache.backends.base import default_key_func
from django.core.signals import setting_changed
from django.utils.module_loading import import_string
from valkey.exceptions import ConnectionError, ResponseError, TimeoutError

from django_valkey_fast._codec import (
    COMPRESS_CUSTOM, COMPRESS_NONE, COMPRESS_STANDARD, Codec, KeyMaker,
)
from django_valkey_fast.compressors.base import BaseCompressor
from django_valkey_fast.compressors.identity import IdentityCompressor
from django_valkey_fast.exceptions import DecodeError, interrupted
from django_valkey_fast.measured import note_ignored_error

__all__ = ["SERVER_ERRORS", "ErrorPolicy", "build_codec", "build_key_maker", "prepared"]

# django-valkey logs ignored errors to ``django_valkey.base``: the same module here.
DEFAULT_LOGGER = "django_valkey_fast.base"
DEFAULT_SERIALIZER = "django_valkey_fast.serializers.pickle.PickleSerializer"
DEFAULT_COMPRESSOR = "django_valkey_fast.compressors.identity.IdentityCompressor"

# Errors from the server or the socket: reported as ConnectionInterrupted, or
# swallowed with IGNORE_EXCEPTIONS (django-valkey's list).
SERVER_ERRORS = (ConnectionError, TimeoutError, ResponseError, socket.timeout)


def _compression_mode(compressor) -> int:
    compressor_type = type(compressor)
    if (
        isinstance(compressor, IdentityCompressor)
        and compressor_type.compress is BaseCompressor.compress
        and compressor_type.decompress is BaseCompressor.decompress
        and compressor_type._compress is IdentityCompressor._compress
    ):
        return COMPRESS_NONE
    if (
        isinstance(compressor, BaseCompressor)
        and compressor_type.compress is BaseCompressor.compress
        and compressor_type.decompress is BaseCompressor.decompress
    ):
        return COMPRESS_STANDARD
    return COMPRESS_CUSTOM


def build_codec(options: dict) -> Codec:
    """Return the codec for OPTIONS ``SERIALIZER`` and ``COMPRESSOR``."""
    serializer = import_string(options.get("SERIALIZER", DEFAULT_SERIALIZER))(options=options)
    compressor = import_string(options.get("COMPRESSOR", DEFAULT_COMPRESSOR))(options=options)
    return Codec(
        serializer,
        compressor,
        _compression_mode(compressor),
        getattr(compressor, "min_length", 15),
        getattr(compressor, "magic", None),
    )


def build_key_maker(backend) -> KeyMaker:
    """Return the key maker for a backend's KEY_PREFIX, VERSION and KEY_FUNCTION."""
    return KeyMaker(
        backend.key_prefix,
        backend.version,
        backend.key_func,
        backend.key_func is default_key_func,
    )


class ErrorPolicy:
    """``IGNORE_EXCEPTIONS`` and its logging, per cache, with the global fallbacks."""

    def __init__(self, options: dict):
        self.ignore = options.get(
            "IGNORE_EXCEPTIONS", getattr(settings, "DJANGO_VALKEY_IGNORE_EXCEPTIONS", False)
        )
        self.log = options.get(
            "LOG_IGNORE_EXCEPTIONS",
            getattr(settings, "DJANGO_VALKEY_LOG_IGNORED_EXCEPTIONS", False),
        )
        self.logger = logging.getLogger(getattr(settings, "DJANGO_VALKEY_LOGGER", DEFAULT_LOGGER))

    def handle(self, error: Exception, fallback):
        """Return ``fallback()`` if errors are ignored, else raise the error to report."""
        if self.ignore:
            note_ignored_error(error)
            if self.log:
                self.logger.exception("Exception ignored")
            return fallback()
        if isinstance(error, DecodeError):
            raise error
        raise interrupted(error) from error


# What a cache configuration builds (classes, codec, factory, routers) depends only on
# its params and on settings: build it once per process. Django may create a backend
# per request context under ASGI, so construction must stay cheap.
_prepared: dict = {}
# kind -> (values, snapshot, what was built): the last params seen for each kind.
# Django builds a backend per request from a copy of the same settings dict, so its
# values are the very same objects each time: comparing them by identity (they are
# held here, so no id is reused), and the containers among them with a snapshot of
# their contents (a dict changed in place is new settings), spares the repr of the
# whole params (11k instructions, most of what building a backend cost).
_recent: dict = {}


def _snapshot(value):
    """``value`` with its dicts, lists and tuples copied all the way down (the rest
    as is): equal to ``value`` until a container in it is changed in place."""
    if type(value) is dict:
        return {key: _snapshot(item) for key, item in value.items()}
    if type(value) in (list, tuple):
        return type(value)(_snapshot(item) for item in value)
    return value


def prepared(kind, params: dict, build):
    """Return ``build()`` for this ``kind`` and ``params``, built once per process.

    Forgotten whenever Django signals a settings change (``override_settings``)."""
    recent = _recent.get(kind)
    if (recent is not None and len(recent[0]) == len(params)
            and all(map(operator.is_, recent[0], params.values()))
            and recent[1] == params):
        return recent[2]
    key = (kind, repr(params))
    found = _prepared.get(key)
    if found is None:  # (built outside an except block: no KeyError chained to its errors)
        found = _prepared.setdefault(key, build())
    _recent[kind] = (tuple(params.values()), _snapshot(params), found)
    return found


def _forget_prepared(**kwargs):
    _prepared.clear()
    _recent.clear()


setting_changed.connect(_forget_prepared, weak=False)
