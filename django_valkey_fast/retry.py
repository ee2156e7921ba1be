"""The at-most-once rule: when a command may be sent to the server again.

A command that changes data runs at most once. After a failure it is sent again only
when it provably never reached the server (:class:`CommandNotSent`: connecting
failed, the write of a single command failed, which leaves the server a partial
command it never runs, or the command still waited in the asyncio write queue when
the connection dropped; a pooled connection found dead *before* writing is replaced
before the command is sent at all), or when it only reads (a read that ran twice gives the same answer). A written write whose reply was
lost raises instead: it may have run, and running it again could apply it twice.

The sync channel, the asyncio channel and the cluster plan all ask this module.
"""

from __future__ import annotations

from valkey.exceptions import ReadOnlyError, TimeoutError

from django_valkey_fast.exceptions import CommandNotSent

__all__ = ["CommandNotSent", "READ_ONLY", "may_resend", "reads_only", "refused_everywhere"]

# Commands that never change data: sending one again is harmless. Names as the
# operation plans spell them (upper case str); anything else counts as a write.
READ_ONLY = frozenset({
    "GET", "MGET", "EXISTS", "TTL", "PTTL", "KEYS", "SCAN", "SSCAN", "HLEN", "HKEYS",
    "HEXISTS", "HGET", "SCARD", "SDIFF", "SINTER", "SUNION", "SMISMEMBER", "SISMEMBER",
    "SMEMBERS", "SRANDMEMBER", "PING", "ROLE", "DBSIZE", "INFO", "TYPE", "STRLEN",
})


def reads_only(commands) -> bool:
    """Whether every command (a tuple of arguments) of ``commands`` only reads."""
    for command in commands:
        name = command[0]
        if name not in READ_ONLY and (
            not isinstance(name, (str, bytes)) or _upper(name) not in READ_ONLY
        ):
            return False
    return True


def _upper(name) -> str:
    return (name.decode("latin-1") if isinstance(name, bytes) else name).upper()


def refused_everywhere(commands, replies) -> bool:
    """Whether every write of ``commands`` got a READONLY reply, so that none of them
    ran and the pipeline may be sent again; a pipeline in which some write ran before
    the refusal may not."""
    return all(isinstance(reply, ReadOnlyError) for command, reply in zip(commands, replies)
               if not reads_only((command,)))


def may_resend(error: BaseException, commands) -> bool:
    """Whether ``commands``, which failed with the connection error ``error``, may be
    sent once more on another connection without risking running a write twice.

    A timeout after the command was written is never resent, reads included: the
    caller learns of a slow server after one timeout, not after several."""
    if isinstance(error, CommandNotSent):
        return True
    return not isinstance(error, TimeoutError) and reads_only(commands)
