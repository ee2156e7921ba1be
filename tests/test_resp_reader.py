"""The pure-Python RESP reader gives what libvalkey's Reader gives, for valid and
malformed input alike, however the bytes are split into chunks; in linear time and
without recursion.

Invariant protected: the asyncio path without libvalkey reads exactly what it reads with
libvalkey, and a malformed or hostile reply is a protocol error (never a bare
ValueError or RecursionError, never a value libvalkey would refuse)."""

import math

import libvalkey
import pytest
from hypothesis import given, settings, strategies as st
from valkey._parsers.base import BaseParser
from valkey.exceptions import InvalidResponse, NoScriptError, ResponseError

from django_valkey_fast import _resp_py
from django_valkey_fast._resp_py import Reader as PureReader

KWARGS = {"protocolError": InvalidResponse, "replyError": BaseParser.parse_error}


def encode(value) -> bytes:
    """RESP2 bytes of a reply (str: a simple string or an error, written as is)."""
    if value is None:
        return b"$-1\r\n"
    if isinstance(value, int):
        return b":%d\r\n" % value
    if isinstance(value, bytes):
        return b"$%d\r\n%s\r\n" % (len(value), value)
    if isinstance(value, str):
        return value.encode() + b"\r\n"
    return b"*%d\r\n" % len(value) + b"".join(encode(v) for v in value)


replies = st.recursive(
    st.none() | st.integers(-2**63, 2**63 - 1) | st.binary(max_size=50)
    | st.sampled_from(["+OK", "+QUEUED", "-ERR bad thing", "-NOSCRIPT No matching script."]),
    lambda children: st.lists(children, max_size=5),
    max_leaves=12,
)

# RESP3 and RESP2 items, valid and not: the fuzz below strings them together.
resp3_leaves = st.one_of(
    st.sampled_from([
        b"_\r\n", b"#t\r\n", b"#f\r\n", b",1.5\r\n", b",inf\r\n", b",-INF\r\n", b",nan\r\n",
        b",-nan\r\n", b",.5\r\n", b",+1e5\r\n", b",1e400\r\n", b",1e-400\r\n", b",3e-324\r\n",
        b",2e-324\r\n", b",0x10\r\n", b",1_0\r\n", b",infinity\r\n", b",+inf\r\n",
        b"(123\r\n", b"(-\r\n", b"(\r\n", b"(+5\r\n", b"(1-2\r\n", b"=8\r\ntxt:abcd\r\n",
        b"=4\r\ntxt:\r\n", b"=3\r\nabc\r\n", b"=5\r\nab:cd\r\n", b"=-1\r\n", b"=-2\r\n",
        b"%-1\r\n", b"~-1\r\n", b">-1\r\n", b"|-1\r\n", b"%0\r\n", b"~0\r\n", b"*0\r\n",
        b"_x\r\n", b"#x\r\n", b"#T\r\n", b"#F\r\n", b"#\x00\r\n", b"!3\r\nerr\r\n",
    ]),
    st.floats(allow_nan=False).map(lambda f: b",%r\r\n" % f),
)
malformed = st.sampled_from([
    b"$abc\r\n", b":\r\n", b"$-5\r\n", b"*-7\r\n", b"$1_0\r\n", b"$ 5\r\nhello\r\n",
    b"+a\rb\r\n", b"-E a\nb\r\n", b":+1\r\n", b": 1\r\n", b":1 \r\n", b":007\r\n",
    b":-0\r\n", b":9223372036854775808\r\n", b"$-0\r\n", b"$03\r\nabc\r\n", b"*+1\r\n",
    b"*-0\r\n", b"*67108865\r\n", b"%67108865\r\n", b"\r\n", b"?x\r\n", b"\x00\r\n",
    b"\xff", b'"', b"\\", b"$3\r\nabcXY",
])


def stream_items():
    """One item of a reply stream: a reply, a RESP3 item, an aggregate header or a
    malformed line."""
    header = st.tuples(st.sampled_from(b"*%~>|"), st.integers(0, 3)).map(
        lambda t: b"%c%d\r\n" % t)
    return st.one_of(replies.map(encode), resp3_leaves, header, malformed)


def comparable(value):
    """``value`` in a form == compares (errors by type and text, nan equal to nan)."""
    if isinstance(value, Exception):
        return (type(value), str(value))
    if isinstance(value, float):
        return ("float", "nan" if math.isnan(value) else value)
    if isinstance(value, list):
        return [comparable(v) for v in value]
    if isinstance(value, dict):
        return ("dict", [(comparable(k), comparable(v)) for k, v in value.items()])
    if isinstance(value, set):
        return ("set", sorted((repr(comparable(v)) for v in value)))
    return (type(value), value)


def read_all(reader, data, cuts):
    """Feed ``data`` cut at ``cuts``; the replies read, then how reading ended."""
    out = []
    points = sorted(set(c % (len(data) + 1) for c in cuts)) + [len(data)]
    start = 0
    try:
        for point in points:
            reader.feed(data[start:point])
            start = point
            while (reply := reader.gets()) is not False:
                out.append(comparable(reply))
    except Exception as error:  # noqa: BLE001 - the error is part of the answer
        out.append(("raised", type(error), str(error)))
        try:
            reader.gets()
        except Exception as again:  # noqa: BLE001
            out.append(("raised again", type(again) is type(error)))
        return out
    out.append(("has_data", reader.has_data()))
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(replies, min_size=1, max_size=6), st.lists(st.integers(0, 10_000), max_size=8))
def test_pure_reader_matches_libvalkey_on_replies(values, cuts):
    data = b"".join(encode(v) for v in values)
    expected = read_all(libvalkey.Reader(**KWARGS), data, cuts)
    assert read_all(PureReader(**KWARGS), data, cuts) == expected
    assert len(expected) == len(values) + 1


@settings(max_examples=1500, deadline=None)
@given(st.lists(stream_items(), min_size=1, max_size=8),
       st.lists(st.integers(0, 10_000), max_size=8),
       st.lists(st.tuples(st.integers(0, 10_000), st.binary(min_size=1, max_size=2)),
                max_size=2))
def test_pure_reader_matches_libvalkey_on_any_input(items, cuts, mutations):
    """Fuzz: valid and malformed items, RESP3 types, random bytes overwritten, random
    chunk splits; both readers give the same replies, the same protocol error, and
    the same has_data()."""
    data = bytearray(b"".join(items))
    for where, junk in mutations:
        where %= len(data) + 1
        data[where:where + len(junk)] = junk
    data = bytes(data)
    expected = read_all(libvalkey.Reader(**KWARGS), data, cuts)
    raised = [entry for entry in expected if type(entry) is tuple and entry[0] == "raised"]
    if raised and (raised[0][1] is TypeError or raised[0][2] == "Out of memory"):
        # An unhashable key or member of a RESP3 map or set: libvalkey raises TypeError,
        # or (for a map as a map's key) "Out of memory". The pure reader: TypeError.
        # Either way the replies before it are the same.
        actual = read_all(PureReader(**KWARGS), data, cuts)
        at = expected.index(raised[0])
        assert actual[:at] == expected[:at]
        assert actual[at][1] is TypeError and "unhashable" in actual[at][2]
        return
    assert read_all(PureReader(**KWARGS), data, cuts) == expected


@pytest.mark.parametrize("data, message", [
    (b"$abc\r\n", "Bad bulk string length"),
    (b":\r\n", "Bad integer value"),
    (b"$-5\r\n", "Bulk string length out of range"),
    (b"*-7\r\n", "Multi-bulk length out of range"),
    (b"$1_0\r\n", "Bad bulk string length"),
    (b"$ 5\r\nhello\r\n", "Bad bulk string length"),
    (b"+a\rb\r\n", "Bad simple string value"),
    (b":99999999999999999999\r\n", "Bad integer value"),
    (b"?what\r\n", 'Protocol error, got "?" as reply type byte'),
])
def test_malformed_input_is_a_protocol_error(data, message):
    """The cases the issue names: each one InvalidResponse with libvalkey's message."""
    for reader in (PureReader(**KWARGS), libvalkey.Reader(**KWARGS)):
        reader.feed(data)
        with pytest.raises(InvalidResponse, match=message.replace("?", r"\?")):
            reader.gets()


def test_deep_nesting_is_a_protocol_error_not_a_recursion_error():
    ok = PureReader(**KWARGS)
    ok.feed(b"*1\r\n" * _resp_py.MAX_DEPTH + b":7\r\n")
    reply = ok.gets()
    for _ in range(_resp_py.MAX_DEPTH):
        reply = reply[0]
    assert reply == 7
    too_deep = PureReader(**KWARGS)
    too_deep.feed(b"*1\r\n" * 100_000 + b":7\r\n")
    with pytest.raises(InvalidResponse, match="Max nesting depth exceeded"):
        too_deep.gets()


class CountingBuffer(bytearray):
    """A bytearray that counts the bytes ``find`` looks at."""

    scanned = 0

    def find(self, sub, start=0, *args):
        found = super().find(sub, start, *args)
        CountingBuffer.scanned += (found + len(sub) if found >= 0 else len(self)) - start
        return found


def counting_reader():
    reader = PureReader(**KWARGS)
    reader._buffer = CountingBuffer()
    CountingBuffer.scanned = 0
    return reader


def test_a_reply_arriving_in_chunks_is_parsed_once():
    """Linear time, checked by counting work rather than timing it: a 60k-element array
    fed in 64 KiB chunks parses each element once (the old reader parsed the whole
    reply again after every chunk: seconds of a blocked event loop)."""
    data = encode([b"v%05d" % i for i in range(60_000)])
    reader = counting_reader()
    calls = 0
    line_item = reader._line_item

    def counted(kind, line):
        nonlocal calls
        calls += 1
        return line_item(kind, line)

    reader._line_item = counted
    replies_read = []
    for start in range(0, len(data), 65536):
        reader.feed(data[start:start + 65536])
        while (reply := reader.gets()) is not False:
            replies_read.append(reply)
    assert replies_read == [[b"v%05d" % i for i in range(60_000)]]
    assert calls == 1  # the array header; its elements are bulk strings
    # every byte is looked at a bounded number of times (length lines are re-read while
    # a bulk string waits for its data: a few bytes per chunk)
    assert CountingBuffer.scanned < 2 * len(data)


def test_a_long_line_arriving_in_small_chunks_is_scanned_once():
    data = b"+" + b"x" * 1_000_000 + b"\r\n"
    reader = counting_reader()
    for start in range(0, len(data), 1000):
        reader.feed(data[start:start + 1000])
        reply = reader.gets()
    assert reply == b"x" * 1_000_000
    assert CountingBuffer.scanned < 2 * len(data)


def test_error_types():
    reader = PureReader(**KWARGS)
    reader.feed(b"-NOSCRIPT No matching script.\r\n-ERR x\r\n")
    assert isinstance(reader.gets(), NoScriptError)
    error = reader.gets()
    assert type(error) is ResponseError and str(error) == "x"
    assert reader.gets() is False


def test_a_protocol_error_is_final():
    """After malformed input the stream is out of step: every later gets() raises."""
    reader = PureReader(**KWARGS)
    reader.feed(b"?\r\n:1\r\n")
    for _ in range(3):
        with pytest.raises(InvalidResponse, match="Protocol error"):
            reader.gets()


def test_each_nan_is_a_float_of_its_own_as_libvalkey_makes_it():
    """Two NaN members of a RESP3 set stay two members (NaN is not equal to itself, so
    a set keeps both unless they are one object), exactly as libvalkey's reader gives."""
    data = b"~2\r\n,nan\r\n,-nan\r\n"
    for reader in (PureReader(**KWARGS), libvalkey.Reader(**KWARGS)):
        reader.feed(data)
        members = reader.gets()
        assert len(members) == 2 and all(math.isnan(member) for member in members)
