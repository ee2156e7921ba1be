"""Selects the compiled or the pure-Python RESP wire twin and re-exports its names."""

from typing import TYPE_CHECKING

from django_valkey_fast._extensions import USE_EXTENSIONS

if TYPE_CHECKING or not USE_EXTENSIONS:
    from django_valkey_fast._wire_py import (  # noqa: F401
        ChannelState, Link, acquire, call, collect, fd_readable, pack_command, pack_commands,
        pipeline, read_replies, read_reply, release, run, write)
else:
    try:
        from django_valkey_fast._wire_c import (  # noqa: F401
            ChannelState, Link, acquire, call, collect, fd_readable, pack_command, pack_commands,
            pipeline, read_replies, read_reply, release, run, write)
    except ImportError:  # a pure-Python install: no compiler was available
        from django_valkey_fast._wire_py import (  # noqa: F401
            ChannelState, Link, acquire, call, collect, fd_readable, pack_command, pack_commands,
            pipeline, read_replies, read_reply, release, run, write)
