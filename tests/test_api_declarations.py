"""The public API is visible to static tools: the generated declarations
(``django_valkey_fast/_api.py``) are current, agree with the methods made at run time,
and give a user's mypy real types (``reveal_type(cache.ttl("k"))``)."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.cache.backends.base import BaseCache

import django_valkey_fast
from django_valkey_fast import _api
from django_valkey_fast.async_cache.cache import AsyncValkeyCache
from django_valkey_fast.async_cache.client import (
    AsyncDefaultClient, AsyncHashClient, AsyncHerdClient, AsyncSentinelClient,
)
from django_valkey_fast.cache import ValkeyCache
from django_valkey_fast.client import (
    DefaultClient, HashClient, HerdClient, SentinelClient, ShardClient,
)
from django_valkey_fast.cluster_cache.cache import ClusterValkeyCache
from django_valkey_fast.cluster_cache.client import DefaultClusterClient

ROOT = Path(__file__).resolve().parent.parent


def generator():
    spec = importlib.util.spec_from_file_location("generate_api", ROOT / "scripts" / "generate_api.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_generated_declarations_are_current():
    assert generator().render() == Path(_api.__file__).read_text(), \
        "run: python scripts/generate_api.py"


def declared():
    """class name -> {method name: "async" | "def"} as _api.py declares them."""
    tree = ast.parse(Path(_api.__file__).read_text())
    classes = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            methods = {}
            for child in ast.walk(node):
                if isinstance(child, ast.AsyncFunctionDef):
                    methods[child.name] = "async"
                elif isinstance(child, ast.FunctionDef):
                    methods[child.name] = "def"
            classes[node.name] = methods
    return classes


def runtime_kind(function):
    if inspect.iscoroutinefunction(function):
        return "async"
    return "def"  # blocking, or a plain def returning an (async) iterator


@pytest.mark.parametrize("runtime, declaration", [
    (DefaultClient, "SyncOperationMethods"),
    (DefaultClient, "AsyncOperationMethods"),
    (AsyncDefaultClient, "CoroutineOperationMethods"),
    (AsyncDefaultClient, "AsyncOperationMethods"),
    (HashClient, "HashMethods"),
    (AsyncHashClient, "AsyncHashMethods"),
    (ValkeyCache, "BackendExtendedMethods"),
    (ValkeyCache, "NativeAsyncExtendedMethods"),
    (AsyncValkeyCache, "AsyncBackendMethods"),
])
def test_every_declared_method_exists_at_run_time_as_declared(runtime, declaration):
    methods = declared()[declaration]
    assert methods
    for name, kind in methods.items():
        assert runtime_kind(getattr(runtime, name)) == kind, f"{runtime.__name__}.{name}"


def test_every_method_made_at_run_time_is_declared():
    """Nothing bound from a plan or passed through is left invisible."""
    classes = declared()
    visible = {name for methods in classes.values() for name in methods}
    for cls in (DefaultClient, AsyncDefaultClient, HashClient, ValkeyCache, AsyncValkeyCache):
        for name in dir(cls):
            attribute = getattr(cls, name)
            if hasattr(attribute, "plan") or hasattr(attribute, "pass_through"):
                assert name in visible, f"{cls.__name__}.{name} is not declared"


ANNOTATED_CLASSES = (
    ValkeyCache, AsyncValkeyCache, ClusterValkeyCache,
    DefaultClient, HerdClient, SentinelClient, ShardClient, HashClient,
    AsyncDefaultClient, AsyncHerdClient, AsyncSentinelClient, DefaultClusterClient,
)


def test_every_public_method_is_annotated():
    """Every public method written by hand (those made from a plan or passed through
    are declared in _api.py) annotates its parameters and its return: static tools see
    its real signature."""
    missing = []
    for cls in ANNOTATED_CLASSES:
        for name in dir(cls):
            if name.startswith("_"):
                continue
            attribute = inspect.getattr_static(cls, name)
            function = getattr(attribute, "__func__", attribute)  # class/static methods
            if (isinstance(function, (property, type)) or not callable(function)
                    or hasattr(function, "plan") or hasattr(function, "pass_through")
                    or inspect.getattr_static(BaseCache, name, None) is attribute):
                continue  # (the last: Django's own BaseCache method)
            signature = inspect.signature(function)
            where = f"{cls.__name__}.{name} ({function.__qualname__})"
            if signature.return_annotation is inspect.Signature.empty:
                missing.append(f"{where}: the return")
            unannotated = [parameter.name for parameter in list(signature.parameters.values())[1:]
                           if parameter.annotation is inspect.Parameter.empty]
            if unannotated:
                missing.append(f"{where}: {', '.join(unannotated)}")
    assert not missing, "annotate:\n" + "\n".join(missing)


USER_CODE = '''
from typing import cast

from django.core.cache import caches

from django_valkey_fast.async_cache.cache import AsyncValkeyCache
from django_valkey_fast.cache import ValkeyCache
from django_valkey_fast.client import DefaultClient

cache = cast(ValkeyCache, caches["default"])
reveal_type(cache.ttl("k"))
reveal_type(cache.get_many(["a"]))
reveal_type(cache.smembers("s"))
reveal_type(cache.iter_keys("*"))
reveal_type(cache.lock("k"))
reveal_type(cache.client.get("k"))
client = DefaultClient("valkey://localhost", {}, cache)
reveal_type(client.sismember("s", 1))
cache.ttl("k", versio=2)


async def view(acache: AsyncValkeyCache) -> None:
    reveal_type(await cache.attl("k"))
    reveal_type(await acache.ttl("k"))
    reveal_type(await acache.get("k"))
    reveal_type(acache.iter_keys("*"))
    reveal_type(await client.aincr_version("k"))
'''

EXPECTED = [  # (mypy 1.16+ spells types as written)
    'Revealed type is "int | None"',
    'Revealed type is "dict[Any, Any]"',
    'Revealed type is "set[Any]"',
    'Revealed type is "typing.Iterator[str]"',
    'Revealed type is "valkey.lock.Lock"',
    'Revealed type is "Any"',  # the client attribute: the configured CLIENT_CLASS
    'Revealed type is "bool"',
    'Unexpected keyword argument "versio" for "ttl" of "BackendExtendedMethods"; '
    'did you mean "version"?',
    'Revealed type is "int | None"',
    'Revealed type is "int | None"',
    'Revealed type is "Any"',
    'Revealed type is "typing.AsyncIterator[str]"',
    'Revealed type is "int"',
]


def test_a_users_mypy_sees_the_real_types(tmp_path):
    pytest.importorskip("mypy")
    (tmp_path / "user_code.py").write_text(USER_CODE)
    # The package as a user's mypy finds it (the checkout here: an editable install's
    # import hook is invisible to mypy); its own errors are the package check's job.
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / ".cache"),
         "--follow-imports=silent", "--no-error-summary", "user_code.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**os.environ, "MYPYPATH": str(ROOT)})
    lines = [line.split(": ", 2)[-1] for line in result.stdout.splitlines()
             if ": note: Revealed" in line or ": error:" in line]
    lines = [line.split("  [")[0] for line in lines]
    assert lines == EXPECTED, result.stdout + result.stderr
    assert Path(django_valkey_fast.__file__).with_name("py.typed").exists()
