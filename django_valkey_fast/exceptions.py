"""Errors raised by django-valkey-fast.

Both implementations of every twin module import their errors from here, so the
compiled and the pure-Python build raise the same types with the same messages.
"""

from __future__ import annotations

from valkey.exceptions import ConnectionError, InvalidResponse, TimeoutError

__all__ = [
    "CommandNotSent",
    "ConnectTimeout",
    "CompressorError",
    "ConnectionInterrupted",
    "DecodeError",
    "MalformedReply",
    "MissingDependency",
    "interrupted",
]


class ConnectionInterrupted(Exception):
    """The server could not be reached or answered with an error.

    django-valkey raises this internally and re-raises its cause; here the error a
    caller sees is built by :func:`interrupted`, which makes it an instance of both
    this class and the valkey-py error that caused it, so ``except
    ConnectionInterrupted`` and ``except valkey.exceptions.ConnectionError`` both work.
    """

    def __init__(self, connection=None, parent=None):
        super().__init__(connection)
        self.connection = connection

    def __str__(self) -> str:
        cause = self.__cause__
        if cause is None:
            return "Valkey connection interrupted"
        # CommandNotSent is valkey-py's ConnectionError with a promise attached.
        name = type(cause).__name__
        if isinstance(cause, CommandNotSent):
            name = "TimeoutError" if isinstance(cause, TimeoutError) else "ConnectionError"
        return f"Valkey {name}: {cause}"


_interrupted_types: dict[type, type] = {}


def interrupted(cause: BaseException, connection=None) -> ConnectionInterrupted:
    """Return a ConnectionInterrupted that is also an instance of ``type(cause)``."""
    cause_type = type(cause)
    error_type = _interrupted_types.get(cause_type)
    if error_type is None:
        try:
            error_type = type(
                "ConnectionInterrupted",
                (ConnectionInterrupted, cause_type),
                {"__module__": __name__},
            )
        except TypeError:  # a cause type that cannot be subclassed
            error_type = ConnectionInterrupted
        _interrupted_types[cause_type] = error_type
    error = error_type.__new__(error_type)  # type: ignore[call-overload]
    ConnectionInterrupted.__init__(error, connection)
    error.__cause__ = cause
    return error


class CommandNotSent(ConnectionError):
    """The command never reached the server, so sending it again cannot run it twice.

    Raised by the channels when a connection cannot be opened, or fails while a
    single command is being written, or drops while the command still waits in the
    asyncio write queue. (A pooled connection found dead before writing is replaced
    silently.) It is a valkey-py ``ConnectionError``: callers that catch that catch
    this too.
    """


class MalformedReply(ConnectionError, InvalidResponse):
    """The server sent bytes that are not a RESP reply (a protocol error).

    What follows on that connection is out of step, so the connection is closed, as
    when it is cut: the error is a valkey-py ``ConnectionError`` (reported as
    ``ConnectionInterrupted``, swallowed with ``IGNORE_EXCEPTIONS``) and an
    ``InvalidResponse``, valkey-py's name for a protocol error."""


class ConnectTimeout(CommandNotSent, TimeoutError):
    """Opening a connection timed out: a valkey-py ``TimeoutError`` (as callers
    expect) that is also a :class:`CommandNotSent` (nothing was sent)."""


class CompressorError(Exception):
    """A compressor could not decompress a payload (it may not be compressed)."""


class DecodeError(Exception):
    """A value read from the server could not be decompressed or deserialized.

    The payload in the server is left untouched; with ``IGNORE_EXCEPTIONS`` the
    read returns its default instead.
    """

    def __init__(self, key, serializer, cause):
        self.key = key
        self.serializer = serializer
        super().__init__(
            f"Cannot decode the value stored at cache key {key!r} with "
            f"{serializer}: {type(cause).__name__}: {cause}"
        )


class MissingDependency(ImportError):
    """An optional serializer or compressor library is not installed."""

    def __init__(self, what: str, module: str, extra: str):
        super().__init__(
            f"{what} needs the '{module}' package, which is not installed. "
            f"Install it with: pip install 'django-valkey-fast[{extra}]'",
            name=module,
        )
