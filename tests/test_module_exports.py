"""Every public module of django_valkey_fast says what it exports: ``__all__`` is
defined, names only what the module has, names nothing twice, and lists every
public class and function the module defines.

A module whose serializer or compressor needs an optional library (brotli,
msgspec, ...) imports without it: the class is there and raises MissingDependency,
naming the extra to install, when it is constructed. That promise is checked with
each such library hidden, so it holds whether or not the library is installed here.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import pkgutil
import sys
from pathlib import Path

import pytest

import django_valkey_fast
from django_valkey_fast.exceptions import MissingDependency

# module -> public names it defines that __all__ may leave out, with why. Empty: a
# name belongs here only if it is truly meant not to be exported.
NOT_EXPORTED: dict[str, set[str]] = {}

def _raise(name):
    raise  # walk_packages calls this inside its except: re-raise what it caught


def public_modules():
    """The package and every module in it whose last component is not private."""
    yield django_valkey_fast.__name__
    # onerror: without it walk_packages swallows a package that fails to import.
    for info in pkgutil.walk_packages(django_valkey_fast.__path__, "django_valkey_fast.",
                                      onerror=_raise):
        if not info.name.rsplit(".", 1)[-1].startswith("_"):
            yield info.name


MODULES = list(public_modules())


def defined_names(module):
    """The public classes and functions ``module`` defines (not what it imports)."""
    return {
        name for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == module.__name__
    }


def check_exports(module):
    assert hasattr(module, "__all__"), f"{module.__name__} has no __all__"
    exported = list(module.__all__)
    assert all(isinstance(name, str) for name in exported), exported
    duplicates = sorted({name for name in exported if exported.count(name) > 1})
    assert duplicates == [], f"{module.__name__}.__all__ names {duplicates} twice"
    absent = [name for name in exported if not hasattr(module, name)]
    assert absent == [], f"{module.__name__}.__all__ names {absent}, not in the module"
    unlisted = sorted(defined_names(module) - set(exported)
                      - NOT_EXPORTED.get(module.__name__, set()))
    assert unlisted == [], f"{module.__name__} defines {unlisted}, missing from __all__"


def test_the_walk_finds_the_public_modules():
    # A sanity check on the walk itself: subpackages and their modules are found,
    # private ones are not.
    for name in ("django_valkey_fast.cache", "django_valkey_fast.compressors.brotli",
                 "django_valkey_fast.serializers.msgspec",
                 "django_valkey_fast.async_cache.client.default",
                 "django_valkey_fast.cluster_cache.cache", "django_valkey_fast.commands.hash",
                 "django_valkey_fast.plan_methods"):
        assert name in MODULES
    assert not [name for name in MODULES if name.rsplit(".", 1)[-1].startswith("_")]
    assert set(NOT_EXPORTED) <= set(MODULES)


@pytest.mark.parametrize("module_name", MODULES)
def test_all_lists_the_public_names(module_name):
    # No try/except: a module that cannot import fails here, it is not skipped.
    check_exports(importlib.import_module(module_name))


# -- modules with an optional library ---------------------------------------------


def optional_libraries(module_name):
    """The libraries ``module_name`` loads with ``optional_import("...")``."""
    path = Path(importlib.util.find_spec(module_name).origin)
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "optional_import":
            (argument,) = node.args
            found.append(argument.value)
    return found


OPTIONAL = {name: libraries for name in MODULES
            if (libraries := optional_libraries(name))}


def test_the_optional_library_modules_are_found():
    assert set(OPTIONAL) >= {
        "django_valkey_fast.compressors.brotli", "django_valkey_fast.compressors.lz4",
        "django_valkey_fast.compressors.zstd", "django_valkey_fast.serializers.msgpack",
        "django_valkey_fast.serializers.msgspec",
    }
    assert OPTIONAL["django_valkey_fast.compressors.zstd"] == [
        "compression.zstd", "backports.zstd", "zstandard"]


@pytest.mark.parametrize("module_name", sorted(OPTIONAL))
def test_imports_without_its_optional_library(module_name, monkeypatch):
    # Hide every library the module may load (None in sys.modules makes importing it
    # raise ImportError), then import the module afresh. monkeypatch puts the
    # original modules, and the parent package's attribute, back afterwards.
    for library in OPTIONAL[module_name]:
        monkeypatch.setitem(sys.modules, library, None)
    parent_name, _, child = module_name.rpartition(".")
    monkeypatch.setattr(sys.modules[parent_name], child, sys.modules[module_name])
    monkeypatch.delitem(sys.modules, module_name)

    module = importlib.import_module(module_name)

    check_exports(module)
    classes = [getattr(module, name) for name in module.__all__
               if inspect.isclass(getattr(module, name))]
    assert classes, f"{module_name} exports no class"
    for cls in classes:
        with pytest.raises(MissingDependency, match=r"pip install 'django-valkey-fast\["):
            cls({})
