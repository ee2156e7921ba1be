"""The sync plan driver, pure-Python implementation (twin of ``_drive_c.pyx``).

An operation's plan (a generator, see :mod:`django_valkey_fast.operations`) yields a
command (a tuple), a pipeline (a list of tuples), a ``Fanout`` (a pipeline per
server: the channel's ``fanout``) or a ``Pause``; it is sent the reply and returns
the operation's answer; an error reply is thrown into it at its ``yield``.
"""

import time

from valkey.exceptions import ResponseError

from django_valkey_fast.operations import Pause

__all__ = ["run_plan"]


def run_plan(plan, channel):
    """Drive an operation's plan to its answer on a sync channel."""
    try:
        command = next(plan)
        while True:
            try:
                if type(command) is tuple:
                    reply = channel.call(command)
                elif type(command) is list:
                    reply = channel.pipeline(command)
                elif type(command) is Pause:
                    time.sleep(command)
                    reply = None
                else:
                    reply = channel.fanout(command)
            except ResponseError as error:
                command = plan.throw(error)
            else:
                command = plan.send(reply)
    except StopIteration as stop:
        return stop.value
