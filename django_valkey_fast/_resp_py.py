"""A RESP2 reply reader in pure Python, with libvalkey.Reader's interface.

Used by the asyncio connection when the ``libvalkey`` package (whose Reader is the
compiled one) is not installed: ``feed(data)`` appends bytes, ``gets()`` returns the
next complete reply, or False when more data is needed. Error replies are returned
as exception instances built by ``replyError``; malformed input raises
``protocolError``.
"""

__all__ = ["Reader"]


class Reader:
    """Incremental RESP2 parser: bulk/simple strings as bytes, integers, arrays."""

    def __init__(self, protocolError=ValueError, replyError=Exception):  # noqa: N803 (libvalkey's names)
        self._buffer = bytearray()
        self._position = 0
        self._protocol_error = protocolError
        self._reply_error = replyError

    def feed(self, data) -> None:
        """Append received bytes."""
        if self._position > 65536 and self._position > len(self._buffer) // 2:
            del self._buffer[: self._position]
            self._position = 0
        self._buffer += data

    def has_data(self) -> bool:
        """Whether bytes were fed that no ``gets`` has returned yet."""
        return self._position < len(self._buffer)

    def gets(self):
        """Return the next complete reply, or False if it has not all arrived."""
        start = self._position
        try:
            reply = self._parse()
        except _Incomplete:
            self._position = start
            return False
        return reply

    def _line(self) -> bytes:
        end = self._buffer.find(b"\r\n", self._position)
        if end < 0:
            raise _Incomplete
        line = bytes(self._buffer[self._position:end])
        self._position = end + 2
        return line

    def _parse(self):
        line = self._line()
        if not line:
            raise self._protocol_error("empty line in a RESP reply")
        kind, rest = line[:1], line[1:]
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            end = self._position + size
            if len(self._buffer) < end + 2:
                raise _Incomplete
            value = bytes(self._buffer[self._position:end])
            self._position = end + 2
            return value
        if kind == b"+":
            return rest
        if kind == b":":
            return int(rest)
        if kind == b"*":
            count = int(rest)
            if count < 0:
                return None
            return [self._parse() for _ in range(count)]
        if kind == b"-":
            return self._reply_error(rest.decode("utf-8", "replace"))
        raise self._protocol_error(f"Protocol error, got {kind!r} as reply type byte")


class _Incomplete(Exception):
    pass
