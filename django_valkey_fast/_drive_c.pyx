# cython: language_level=3
"""The sync plan driver, compiled implementation (twin of ``_drive_py.py``).

It steps the plan with ``PyIter_Send``, which reports the plan's return without
raising ``StopIteration``: after a round trip's system calls, creating and catching
that exception is most of what driving a one-command plan costs.
"""

from cpython.ref cimport PyObject, Py_XDECREF

import time

from valkey.exceptions import ResponseError

from django_valkey_fast.operations import Pause

__all__ = ["run_plan"]


cdef extern from "Python.h":
    enum:
        PYGEN_RETURN
    # PYGEN_ERROR (-1) comes with the plan's exception set: Cython raises it.
    int PyIter_Send(object iterator, object arg, PyObject** presult) except -1


cdef inline object _send(object plan, object value, bint* returned):
    """Send ``value`` into ``plan``: its next command, or (``returned``) its answer."""
    cdef PyObject* result = NULL
    cdef int status = PyIter_Send(plan, value, &result)
    answer = <object>result
    Py_XDECREF(result)
    returned[0] = status == PYGEN_RETURN
    return answer


cpdef object run_plan(object plan, object channel):
    """Drive an operation's plan to its answer on a sync channel."""
    cdef bint returned = False
    command = _send(plan, None, &returned)
    while not returned:
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
            try:
                command = plan.throw(error)
            except StopIteration as stop:
                return stop.value
            continue
        command = _send(plan, reply, &returned)
    return command
