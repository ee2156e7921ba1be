"""The cache operation being measured in this context, when telemetry is on
(``client/telemetry.py``): nested operations are not measured again, and an error the
client ignores (``IGNORE_EXCEPTIONS``) still marks the operation as failed."""

from __future__ import annotations

import contextvars

__all__ = ["current", "note_ignored_error"]

# The record of the operation running in this context, or None outside one.
current: contextvars.ContextVar = contextvars.ContextVar("django_valkey_fast_operation",
                                                         default=None)


def note_ignored_error(error: BaseException) -> None:
    """An error the client is about to ignore: the operation measuring it, if any,
    ends as failed, though its caller gets the fallback value."""
    record = current.get()
    if record is not None:
        record.error = error
