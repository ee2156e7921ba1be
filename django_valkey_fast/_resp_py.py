"""A RESP reply reader in pure Python, with libvalkey.Reader's interface and answers.

Used by the asyncio connection when the ``libvalkey`` package (whose Reader is the
compiled one) is not installed: ``feed(data)`` appends bytes, ``gets()`` returns the
next complete reply, or False when more data is needed. Error replies are returned
as exception instances built by ``replyError``; malformed input raises
``protocolError`` (and keeps raising it: the stream is out of step for good).

It gives what libvalkey gives for any input, valid or not, however the bytes are split
into chunks (``tests/test_resp_reader.py`` fuzzes both), with these properties:

- linear time: a reply is parsed once, element by element, as its bytes arrive; a
  partial reply is never parsed again from its start;
- no recursion: aggregates are built on an explicit stack, nested up to libvalkey's
  depth limit (1024), beyond which the input is a protocol error;
- strict: lengths and integers are what Valkey writes (no sign, spaces, underscores or
  leading zeros), simple strings hold no CR or LF, as libvalkey checks.

RESP3 types are parsed as libvalkey parses them (a map is a dict, a set a set, a
boolean True/False, a double a float, a big number and a verbatim string bytes); a
RESP3 false is returned as ``False``, which reads as "no reply yet" exactly as it does
with libvalkey. The connections of this package speak RESP2 and never receive one.
"""

import re

__all__ = ["Reader"]

MAX_DEPTH = 1024  # nesting of aggregates, as libvalkey
MAX_ELEMENTS = 2**26  # elements of one aggregate, as libvalkey's reader

_DOUBLE = re.compile(rb"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_BIGNUM = re.compile(rb"-?[0-9]*")
_SPECIAL_DOUBLES = {b"inf": "inf", b"-inf": "-inf", b"nan": "nan", b"-nan": "nan"}

# Type bytes
_BULK, _VERBATIM = 36, 61  # $ =
_ARRAY, _MAP, _SET, _PUSH, _ATTRIBUTE = 42, 37, 126, 62, 124  # * % ~ > |
_SIMPLE, _ERROR, _INT, _NIL, _BOOL, _DOUBLE_T, _BIGNUM_T = 43, 45, 58, 95, 35, 44, 40
_AGGREGATES = frozenset((_ARRAY, _MAP, _SET, _PUSH, _ATTRIBUTE))
_KNOWN = _AGGREGATES | {_BULK, _VERBATIM, _SIMPLE, _ERROR, _INT, _NIL, _BOOL, _DOUBLE_T,
                        _BIGNUM_T}

_NO_KEY = object()  # a map frame waiting for a key
_PENDING = object()  # a value went into an aggregate that is not complete yet


def _integer(line):
    """The int64 ``line`` spells as Valkey writes integers (no sign but a leading
    minus, no leading zero, no space or underscore), or None."""
    if line.isdigit():  # bytes.isdigit: ASCII digits only
        if line[0] != 48 or len(line) == 1:
            value = int(line)
            if value < 2**63:
                return value
    elif line[:1] == b"-" and line[1:].isdigit() and line[1] != 48:
        value = int(line)
        if value >= -(2**63):
            return value
    return None


def _double(line):
    """The float of a RESP3 double, or None: what libvalkey takes (strtod syntax
    without hex, inf/-inf/nan/-nan in any case, no overflow or underflow to zero)."""
    special = _SPECIAL_DOUBLES.get(line.lower())
    if special is not None:
        # A new float each time, as libvalkey makes: two NaNs are two members of a set.
        return float(special)
    match = _DOUBLE.fullmatch(line)
    if match is None:
        return None
    value = float(line)
    if value in (float("inf"), float("-inf")):
        return None
    if value == 0.0 and match.group(1).strip(b"0.") != b"":
        return None  # a non-zero number too small for a double
    return value


def _type_byte(byte: int) -> str:
    """``byte`` quoted as libvalkey names it in its protocol error."""
    escapes = {0x5C: '"\\\\"', 0x22: '"\\""', 0x0A: '"\\n"', 0x0D: '"\\r"', 0x09: '"\\t"',
               0x07: '"\\a"', 0x08: '"\\b"'}
    if byte in escapes:
        return escapes[byte]
    if 0x20 <= byte < 0x7F:
        return f'"{chr(byte)}"'
    return f'"\\x{byte:02x}"'


class Reader:
    """Incremental RESP parser (RESP2 and RESP3 types) with libvalkey.Reader's API."""

    def __init__(self, protocolError=ValueError, replyError=Exception):  # noqa: N803 (libvalkey's names)
        self._buffer = bytearray()
        self._position = 0  # first byte not consumed
        self._scan = 0  # where the search for the end of the current line resumes
        self._kind = None  # type byte of the item being read, once consumed
        self._stack = []  # open aggregates: [kind, elements left, container, map key]
        self._failure = None  # the protocol error message, once the stream is broken
        self._protocol_error = protocolError
        self._reply_error = replyError

    def feed(self, data) -> None:
        """Append received bytes."""
        buffer = self._buffer
        position = self._position
        if position == len(buffer):
            buffer.clear()
            self._position = self._scan = 0
        elif position > 65536 and position > len(buffer) // 2:
            del buffer[:position]
            self._position = 0
            self._scan = max(self._scan - position, 0)
        buffer += data

    def has_data(self) -> bool:
        """Whether bytes were fed that no ``gets`` has consumed yet."""
        return self._position < len(self._buffer)

    def gets(self):
        """Return the next complete reply, or False if it has not all arrived."""
        if self._failure is not None:
            raise self._protocol_error(self._failure)
        try:
            return self._next_reply()
        except _Malformed as error:
            self._failure = str(error)
            raise self._protocol_error(self._failure) from None
        except Exception:
            # e.g. an unhashable key in a RESP3 map, as libvalkey raises it: the stream
            # cannot be resumed after this element.
            self._failure = "Reader state lost after an error in a reply"
            raise

    # -- parsing ----------------------------------------------------------------------

    def _next_reply(self):
        buffer = self._buffer
        stack = self._stack
        while True:
            kind = self._kind
            position = self._position
            if kind is None:
                if position >= len(buffer):
                    return False
                kind = buffer[position]
                if kind not in _KNOWN:
                    raise _Malformed(f"Protocol error, got {_type_byte(kind)} as reply type byte")
                position += 1
                self._position = position
                if kind in _AGGREGATES and len(stack) >= MAX_DEPTH:
                    raise _Malformed("Max nesting depth exceeded")
                self._kind = kind
            # The end of the line; a search that fails resumes where it stopped.
            scan = self._scan
            end = buffer.find(b"\r\n", scan if scan > position else position)
            if end < 0:
                self._scan = max(len(buffer) - 1, position)
                return False
            self._scan = 0
            if kind == _BULK or kind == _VERBATIM:
                value = self._bulk(kind, bytes(buffer[position:end]), end)
                if value is _PENDING:
                    return False
            else:
                self._position = end + 2
                value = self._line_item(kind, bytes(buffer[position:end]))
                if value is _PENDING:  # an aggregate was opened
                    self._kind = None
                    continue
            self._kind = None
            inserted = False  # a leaf, not in its aggregate yet
            while stack:
                frame = stack[-1]
                if not inserted:
                    _insert(frame, value)
                frame[1] -= 1
                if frame[1]:
                    value = _PENDING
                    break
                stack.pop()
                value = frame[2]
                inserted = bool(stack)  # an aggregate joins its parent when it opens
            if value is not _PENDING:
                return value

    def _bulk(self, kind, line, end):
        """A bulk or verbatim string whose length line ends at ``end``: its bytes, None,
        or _PENDING while its data has not all arrived (nothing is consumed until then,
        as libvalkey)."""
        length = _integer(line)
        if length is None:
            raise _Malformed("Bad bulk string length")
        if length < -1:
            raise _Malformed("Bulk string length out of range")
        if length == -1:
            self._position = end + 2
            return None
        data_start = end + 2
        if len(self._buffer) < data_start + length + 2:
            self._scan = self._position  # the length line is read again: it is short
            return _PENDING
        value = bytes(self._buffer[data_start:data_start + length])
        self._position = data_start + length + 2  # libvalkey does not check the CRLF
        if kind == _VERBATIM:
            if length < 4 or value[3] != 58:  # ':'
                raise _Malformed("Verbatim string 4 bytes of content type are missing "
                                 "or incorrectly encoded.")
            value = value[4:]
        return value

    def _line_item(self, kind, line):
        """The value of a one-line item, or _PENDING when an aggregate was opened."""
        if kind == _INT:
            value = _integer(line)
            if value is None:
                raise _Malformed("Bad integer value")
            return value
        if kind == _SIMPLE or kind == _ERROR:
            if b"\r" in line or b"\n" in line:
                raise _Malformed("Bad simple string value")
            if kind == _SIMPLE:
                return line
            return self._reply_error(line.decode("utf-8", "replace"))
        if kind in _AGGREGATES:
            return self._aggregate(kind, line)
        if kind == _NIL:
            if line:
                raise _Malformed("Bad nil value")
            return None
        if kind == _BOOL:
            if line == b"t" or line == b"T":
                return True
            if line == b"f" or line == b"F" or line == b"\x00":  # libvalkey's strchr takes NUL
                return False
            raise _Malformed("Bad bool value")
        if kind == _DOUBLE_T:
            value = _double(line)
            if value is None:
                raise _Malformed("Bad double value")
            return value
        # _BIGNUM_T
        if not _BIGNUM.fullmatch(line):
            raise _Malformed("Bad bignum value")
        return line

    def _aggregate(self, kind, line):
        """An empty or nil aggregate, or _PENDING after pushing a frame for its
        elements."""
        count = _integer(line)
        if count is None:
            raise _Malformed("Bad multi-bulk length")
        if count < -1 or count > MAX_ELEMENTS:
            raise _Malformed("Multi-bulk length out of range")
        if count == -1:
            return None
        container = {} if kind == _MAP else set() if kind == _SET else []
        if count == 0:
            return container
        if kind == _MAP or kind == _ATTRIBUTE:
            count *= 2
        if self._stack:
            # In its parent at once, as libvalkey does (an aggregate in a set fails here)
            _insert(self._stack[-1], container)
        self._stack.append([kind, count, container, _NO_KEY])
        return _PENDING


def _insert(frame, value):
    """Put ``value`` in the container of an open aggregate ``frame``."""
    kind = frame[0]
    if kind == _MAP:
        if frame[3] is _NO_KEY:
            frame[3] = value
        else:
            frame[2][frame[3]] = value
            frame[3] = _NO_KEY
    elif kind == _SET:
        frame[2].add(value)
    else:
        frame[2].append(value)


class _Malformed(Exception):
    """Input that is not RESP (turned into the caller's ``protocolError``)."""
