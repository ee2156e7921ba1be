"""Drop-in to the last import: every public module of django-valkey 0.4.1, and every
public class and function it defines, imports from the same path here.

The names left out on purpose are listed in ``NOT_PROVIDED`` with the reason (and in
docs/differences.md)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import django_valkey
import pytest

# module -> names deliberately not provided, with why
NOT_PROVIDED = {
    # django-valkey's mixins of hand-written client commands; the clients here are
    # generated from one set of operation plans (DefaultClient is the base of all).
    "django_valkey.base_client": {"ClientCommands", "AsyncClientCommands",
                                  "HerdCommonMethods"},
}

MODULES_NOT_PROVIDED: set = set()  # every module is provided


def django_valkey_modules():
    yield "django_valkey"
    for info in pkgutil.walk_packages(django_valkey.__path__, "django_valkey."):
        if not any(part.startswith("_") for part in info.name.split(".")) and \
                info.name not in MODULES_NOT_PROVIDED:
            yield info.name


def defined_names(module):
    """The public classes and functions ``module`` defines (not what it imports)."""
    for name, value in vars(module).items():
        if name.startswith("_"):
            continue
        if (inspect.isclass(value) or inspect.isfunction(value)) and \
                value.__module__ == module.__name__:
            yield name, value


CASES = [(name, attr) for name in django_valkey_modules()
         for attr, _ in defined_names(importlib.import_module(name))
         if attr not in NOT_PROVIDED.get(name, ())]


@pytest.mark.parametrize("module_name", list(django_valkey_modules()))
def test_every_module_imports(module_name):
    importlib.import_module(module_name.replace("django_valkey", "django_valkey_fast", 1))


@pytest.mark.parametrize("module_name, name", CASES, ids=[f"{m}.{n}" for m, n in CASES])
def test_every_public_name_imports_from_the_same_path(module_name, name):
    ours = importlib.import_module(module_name.replace("django_valkey", "django_valkey_fast", 1))
    theirs = getattr(importlib.import_module(module_name), name)
    mine = getattr(ours, name, None)
    assert mine is not None, f"{module_name}.{name} is missing"
    assert inspect.isclass(mine) == inspect.isclass(theirs)
    if inspect.isclass(theirs):
        public = [m for m, v in vars(theirs).items()
                  if not m.startswith("_") and callable(v)]
        missing = [m for m in public if not hasattr(mine, m)]
        assert missing == [], f"{module_name}.{name} lacks {missing}"


def test_the_backends_are_base_valkey_caches():
    from django_valkey_fast.async_cache.cache import AsyncValkeyCache
    from django_valkey_fast.base import BaseValkeyCache
    from django_valkey_fast.cache import ValkeyCache
    from django_valkey_fast.cluster_cache.cache import ClusterValkeyCache

    for backend in (ValkeyCache, AsyncValkeyCache, ClusterValkeyCache):
        assert issubclass(backend, BaseValkeyCache)


def test_hash_ring_places_keys_as_django_valkey_does():
    from django_valkey.hash_ring import HashRing as Theirs

    from django_valkey_fast.hash_ring import HashRing

    nodes = [f"valkey://127.0.0.1:{port}/0" for port in (6379, 6380, 6381)]
    ours, theirs = HashRing(nodes), Theirs(nodes)
    for key in (f"key{i}" for i in range(300)):
        assert ours.get_node(key) == theirs.get_node(key)
        assert ours.get_node_pos(key) == theirs.get_node_pos(key)
        assert ours(key) == theirs(key)
    assert list(ours.iter_nodes("key1"))[:5] == list(theirs.iter_nodes("key1"))[:5]
    ours.remove_node(nodes[0])
    assert {ours.get_node(f"key{i}") for i in range(100)} <= set(nodes[1:])


def test_omit_exception_follows_ignore_exceptions():
    from valkey.exceptions import ConnectionError

    from django_valkey_fast.base import decorate_all_methods, omit_exception
    from django_valkey_fast.exceptions import interrupted

    @decorate_all_methods(omit_exception)
    class Commands:
        _ignore_exceptions = True
        _log_ignored_exceptions = False

        def fail(self):
            raise interrupted(ConnectionError("down"))

        def get_many(self):
            raise interrupted(ConnectionError("down"))

    assert Commands().fail() is None and Commands().get_many() == {}
    Commands._ignore_exceptions = False
    with pytest.raises(ConnectionError):
        Commands().fail()


async def test_close_async_caches_closes_every_initialised_cache(async_cache, cache):
    from django_valkey_fast.base import close_async_caches

    await async_cache.set("k", 1)
    cache.set("k", 1)
    await close_async_caches()
    assert await async_cache.get("k") == 1
