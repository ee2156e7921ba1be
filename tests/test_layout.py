"""The package's layout rules, checked on its source."""

import ast
import re
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


# The layers, from the bottom: a module imports only modules of its own layer or of
# the layers it stands on (docs/development.md, "Layout"). The sans-IO core
# (operations) and the wire stand side by side on the common modules: neither
# imports the other. Every module is listed, so a new one is placed on purpose.
LAYERS = {
    "common": {"__init__", "exceptions", "_common", "_extensions", "_optional", "retry",
               "singleflight", "measured"},
    "wire": {"channel", "async_channel", "_wire", "_wire_py", "_wire_c", "_resp_py",
             "_valkeypy", "invalidation", "pool", "base_pool", "async_cache.pool", "cluster_cache.pool"},
    "operations": {"operations", "_api", "herd", "sharding", "hash_ring", "cluster", "config",
                   "_codec", "_codec_py", "_codec_c", "_slots", "_slots_py", "_slots_c",
                   "util", "serializers.*", "compressors.*", "local_store", "caching"},
    "drivers": {"plan_methods", "_drive", "_drive_py", "_drive_c", "routed_channel",
                "caching_channel"},
    "clients": {"client.*", "async_cache.client.*", "cluster_cache.client.*", "base_client",
                "commands.*"},
    "backends": {"base", "cache", "async_cache", "async_cache.cache", "cluster_cache",
                 "cluster_cache.cache", "checks", "apps", "management.*"},
}
# What each layer may import besides itself.
STANDS_ON = {
    "common": set(),
    "wire": {"common"},
    "operations": {"common"},
    "drivers": {"operations", "wire", "common"},
    "clients": {"drivers", "operations", "wire", "common"},
    "backends": {"clients", "drivers", "operations", "wire", "common"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _layer_of(module: str) -> str:
    for layer, members in LAYERS.items():
        for member in members:
            if module == member or (member.endswith(".*") and (
                    module == member[:-2] or module.startswith(member[:-1]))):
                return layer
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def _imported(tree, module: str) -> set:
    """The package modules a module imports (absolute or relative), except those only
    imported for type checkers (the body of ``if TYPE_CHECKING:``, not its ``else:``)."""
    found = set()
    skip = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
            and getattr(block.test, "id", None) == "TYPE_CHECKING"
            for statement in block.body for node in ast.walk(statement)}
    package = module.split(".")
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's own package
                base = package[:len(package) - node.level]
                name = ".".join(base + ([node.module] if node.module else []))
                absolute = "django_valkey_fast" + ("." + name if name else "")
            else:
                absolute = node.module or ""
            if absolute == "django_valkey_fast":
                found.update(alias.name for alias in node.names)
            elif absolute.startswith("django_valkey_fast."):
                found.add(absolute[len("django_valkey_fast."):])
        elif isinstance(node, ast.Import):
            found.update(alias.name[len("django_valkey_fast."):] for alias in node.names
                         if alias.name.startswith("django_valkey_fast."))
    return found


_PYX_IMPORT = re.compile(r"^\s*(?:from\s+django_valkey_fast\.([\w.]+)\s+c?import"
                         r"|c?import\s+django_valkey_fast\.([\w.]+))", re.M)


def test_layers_call_only_downward():
    """Backends -> clients -> drivers -> operations (sans-IO plans, routers, codec) and
    wire (channels, protocol, pools), side by side -> common: no module imports one of
    a layer it does not stand on, so the sans-IO core never depends on the I/O around
    it and the wire never on the cache API. Compiled twins (.pyx) are checked too."""
    imports = {}
    for path, tree in _sources():
        module = _module_name(path)
        imports[module] = _imported(tree, module)
    for path in sorted(PACKAGE.rglob("*.pyx")):
        imports[_module_name(path)] = {
            "".join(match) for match in _PYX_IMPORT.findall(path.read_text())}
    wrong = []
    for module, imported in sorted(imports.items()):
        layer = _layer_of(module)
        for name in sorted(imported):
            other = _layer_of(name)
            if other != layer and other not in STANDS_ON[layer]:
                wrong.append(f"{module} ({layer}) imports {name} ({other})")
    assert wrong == []
