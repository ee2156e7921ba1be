"""The sync plan driver (``_drive`` twins), fed replies directly: no server.

A plan yields a command (tuple) or a pipeline (list) and is sent its reply; an error
reply is thrown into it at its ``yield``. Both implementations must drive plans the
same way, whatever the plan does with what it gets.
"""

import pytest
from valkey.exceptions import ResponseError


class Replies:
    """Stands for a channel: answers each step from a script, recording the steps."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.steps = []

    def _answer(self, step):
        self.steps.append(step)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    call = pipeline = fanout = _answer


def test_a_plan_is_sent_each_reply_and_its_answer_returned(impl):
    def plan():
        first = yield ("GET", "a")
        second = yield [("GET", "b"), ("GET", "c")]
        return first, second

    channel = Replies(b"1", [b"2", b"3"])
    assert impl.drive.run_plan(plan(), channel) == (b"1", [b"2", b"3"])
    assert channel.steps == [("GET", "a"), [("GET", "b"), ("GET", "c")]]


def test_fanout_and_pause_steps(impl, monkeypatch):
    """A plan over several servers yields a Fanout (the channel's ``fanout`` runs it:
    replies by server) and a Pause (the driver sleeps; the plan is sent None). The
    same plans run on the asyncio driver, which awaits the same steps."""
    import asyncio

    from django_valkey_fast.operations import Fanout, Pause
    from django_valkey_fast.plan_methods import arun_plan

    slept = []
    monkeypatch.setattr("time.sleep", slept.append)

    def plan():
        first = yield Fanout({"a": [("GET", "x")], "b": [("GET", "y")]})
        paused = yield Pause(0.25)
        return first, paused

    channel = Replies({"a": [b"1"], "b": [b"2"]})
    assert impl.drive.run_plan(plan(), channel) == ({"a": [b"1"], "b": [b"2"]}, None)
    assert slept == [0.25] and type(channel.steps[0]) is Fanout

    class AsyncReplies(Replies):
        def open_connection(self):
            return None

        async def fanout(self, step):
            return self._answer(step)

    async def sleep(seconds):
        slept.append(("async", seconds))

    monkeypatch.setattr(asyncio, "sleep", sleep)
    channel = AsyncReplies({"a": [b"3"], "b": [b"4"]})
    answer = asyncio.run(arun_plan(plan(), channel))
    assert answer == ({"a": [b"3"], "b": [b"4"]}, None) and slept[-1] == ("async", 0.25)


def test_a_plan_that_runs_nothing_returns_at_once(impl):
    def plan():
        return "answer"
        yield  # a generator all the same

    channel = Replies()
    assert impl.drive.run_plan(plan(), channel) == "answer"
    assert channel.steps == []


def test_an_error_reply_is_thrown_into_the_plan_which_may_go_on(impl):
    def plan():
        try:
            yield ("EVALSHA", "abc", 0)
        except ResponseError as error:
            return (yield ("EVAL", str(error), 0))
        return "not reached"

    channel = Replies(ResponseError("NOSCRIPT"), b"ran")
    assert impl.drive.run_plan(plan(), channel) == b"ran"


def test_an_error_reply_the_plan_catches_and_returns_on(impl):
    def plan():
        try:
            yield ("INCR", "k")
        except ResponseError:
            return "fallback"

    assert impl.drive.run_plan(plan(), Replies(ResponseError("WRONGTYPE"))) == "fallback"


def test_an_error_reply_the_plan_does_not_catch_is_raised(impl):
    def plan():
        yield ("INCR", "k")

    with pytest.raises(ResponseError, match="WRONGTYPE"):
        impl.drive.run_plan(plan(), Replies(ResponseError("WRONGTYPE")))


def test_other_errors_are_not_thrown_into_the_plan(impl):
    """A connection error is the caller's business (resend rules, error policy): the
    plan is not asked to handle it."""
    seen = []

    def plan():
        try:
            yield ("GET", "k")
        except Exception as error:  # noqa: BLE001 (must not happen)
            seen.append(error)
        return "swallowed"

    with pytest.raises(ConnectionError):
        impl.drive.run_plan(plan(), Replies(ConnectionError("cut")))
    assert seen == []


def test_an_exception_raised_by_the_plan_itself_propagates(impl):
    def plan():
        reply = yield ("GET", "k")
        raise ValueError(f"cannot decode {reply!r}")

    with pytest.raises(ValueError, match="cannot decode b'x'"):
        impl.drive.run_plan(plan(), Replies(b"x"))
    with pytest.raises(KeyError):
        impl.drive.run_plan(_raising(), Replies())


def _raising():
    raise KeyError("before the first command")
    yield  # pragma: no cover


def test_a_plan_returning_none_or_false_answers_that(impl):
    def plan(answer):
        yield ("GET", "k")
        return answer

    assert impl.drive.run_plan(plan(None), Replies(b"x")) is None
    assert impl.drive.run_plan(plan(False), Replies(b"x")) is False
    assert impl.drive.run_plan(plan(0), Replies(b"x")) == 0


def test_driving_keeps_no_reference_to_replies_or_answers(impl):
    """The compiled driver hands objects between C and the plan: none may leak."""
    import sys

    reply, answer = object(), object()

    def plan():
        yield ("GET", "k")
        return answer

    before = sys.getrefcount(reply), sys.getrefcount(answer)
    for _ in range(1000):
        assert impl.drive.run_plan(plan(), Replies(reply)) is answer
    assert (sys.getrefcount(reply), sys.getrefcount(answer)) == before


def test_primary_search_asks_every_other_server_at_once_and_takes_the_first_primary():
    """The primary search after a READONLY reply, sans-IO: one Fanout of ROLE to every
    LOCATION server but the first; servers whose connection failed or that answered
    with an error are passed over; the first primary in LOCATION order wins."""
    from valkey.exceptions import ConnectionError

    from django_valkey_fast.operations import Fanout, primary_search

    plan = primary_search(5)
    step = next(plan)
    assert type(step) is Fanout and step == {i: [("ROLE",)] for i in (1, 2, 3, 4)}
    with pytest.raises(StopIteration) as stop:
        plan.send({1: ConnectionError("down"), 2: [ResponseError("NOPERM")],
                   3: [[b"slave", b"127.0.0.1", 6379, b"connected", 10]],
                   4: [[b"master", 12, []]]})
    assert stop.value.value == 4
    plan = primary_search(3)
    next(plan)
    with pytest.raises(StopIteration) as stop:
        plan.send({1: [[b"slave"]], 2: TimeoutError("slow")})
    assert stop.value.value is None
