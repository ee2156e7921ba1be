"""A check shared by the topology tests of ``CLEAR_SCOPE = "prefix"``."""

from __future__ import annotations

import asyncio

__all__ = ["check_prefix_scoped_clear"]


def check_prefix_scoped_clear(scoped, other) -> None:
    """``scoped`` (CLEAR_SCOPE "prefix") clears its keys, sync and async, while
    ``other`` (another prefix on the same servers) keeps all of its own."""
    keys = [f"k{i}" for i in range(60)]
    scoped.set_many({key: i for i, key in enumerate(keys)})
    other.set_many({key: i for i, key in enumerate(keys)})
    assert scoped.clear() is True
    assert scoped.get_many(keys) == {}
    assert len(other.get_many(keys)) == 60
    scoped.set("again", 1)
    assert asyncio.run(scoped.aclear()) is True and scoped.get("again") is None
