"""The package's layout rules, checked on its source."""

import ast
from pathlib import Path

import django_valkey_fast

PACKAGE = Path(django_valkey_fast.__file__).parent

# Private attributes of valkey-py's connections, parsers and pools, and of asyncio's
# transports and streams, that the wire layer needs.
FOREIGN_PRIVATES = {
    "_sock", "_parser", "_host_error", "_available_connections", "_in_use_connections",
    "_reader", "_writer", "_closing", "_buffer", "_created_connections",
}
ADAPTER = "_valkeypy.py"


def _sources():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, ast.parse(path.read_text(), str(path))


def test_only_the_adapter_touches_valkey_py_or_asyncio_internals():
    """Step 2 of the wire layer: a new valkey-py release is checked in one module.
    ``self._x`` is a class's own attribute and allowed; ``other._sock`` is not."""
    offenders = []
    for path, tree in _sources():
        if path.name == ADAPTER:
            continue
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr in FOREIGN_PRIVATES
                    and not (isinstance(node.value, ast.Name) and node.value.id == "self")):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} .{node.attr}")
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in ("getattr", "setattr", "hasattr") and len(node.args) > 1
                    and isinstance(node.args[1], ast.Constant)
                    and node.args[1].value in FOREIGN_PRIVATES):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.args[1].value}")
    for path in sorted(PACKAGE.glob("*.pyx")):
        text = path.read_text()
        offenders += [f"{path.name} .{name}" for name in FOREIGN_PRIVATES
                      if f".{name}" in text.replace("self.", "")]
    assert offenders == []


def test_the_declared_valkey_py_versions_are_the_tested_ones():
    """pyproject.toml allows exactly the valkey-py releases the adapter names, and the
    one installed here is among them."""
    from importlib.metadata import version

    from packaging.specifiers import SpecifierSet

    from django_valkey_fast._valkeypy import TESTED_VALKEY_PY

    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]
    (requirement,) = [dep for dep in project["dependencies"] if dep.startswith("valkey")]
    assert SpecifierSet(requirement[len("valkey"):]) == SpecifierSet(TESTED_VALKEY_PY)
    assert version("valkey") in SpecifierSet(TESTED_VALKEY_PY)
