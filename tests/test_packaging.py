"""The package is put together like a release: license, metadata, version, markers."""

import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import django_valkey_fast
from django_valkey_fast import _codec, _codec_py, _slots, _slots_py, _wire, _wire_py

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the dev extra installs tomli
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
DISTRIBUTION = "django-valkey-fast"
PYTHONS = ["3.10", "3.11", "3.12", "3.13", "3.14"]
DJANGOS = ["4.2", "5.0", "5.1", "5.2", "6.0"]


def pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def words(text):
    return " ".join(text.split())


def installed_distribution():
    """The installed django-valkey-fast, not an egg-info left in the checkout by a build
    (the checkout is on sys.path under pytest, and would shadow it)."""
    found = [
        dist for dist in importlib.metadata.distributions(name=DISTRIBUTION)
        if Path(dist.locate_file("")).resolve() != ROOT
    ]
    assert found, "django-valkey-fast is not installed (pip install -e '.[dev]')"
    return found[0]


# -- license ----------------------------------------------------------------------


def test_license_is_the_bsd_3_clause_text():
    text = words((ROOT / "LICENSE").read_text())
    assert text.startswith("BSD 3-Clause License")
    assert "Copyright (c) 2026, the django-valkey-fast developers" in text
    for clause in (
        "Redistribution and use in source and binary forms, with or without modification, "
        "are permitted provided that the following conditions are met:",
        "1. Redistributions of source code must retain the above copyright notice, this "
        "list of conditions and the following disclaimer.",
        "2. Redistributions in binary form must reproduce the above copyright notice, this "
        "list of conditions and the following disclaimer in the documentation and/or other "
        "materials provided with the distribution.",
        "3. Neither the name of the copyright holder nor the names of its contributors may "
        "be used to endorse or promote products derived from this software without specific "
        "prior written permission.",
        'THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"',
        "EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.",
    ):
        assert clause in text, clause
    assert "4." not in text  # not the 4-clause license


def test_pyproject_declares_the_license_and_its_file():
    project = pyproject()["project"]
    assert project["license"] == "BSD-3-Clause"
    assert project["license-files"] == ["LICENSE"]
    # setuptools>=77 refuses a License classifier next to a license expression.
    assert not [c for c in project["classifiers"] if c.startswith("License ::")]


# -- version ----------------------------------------------------------------------


def test_version_has_one_source():
    config = pyproject()
    assert "version" not in config["project"]
    assert "version" in config["project"]["dynamic"]
    assert config["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "django_valkey_fast.__version__"}
    assert ".".join(map(str, django_valkey_fast.VERSION)) == django_valkey_fast.__version__


def test_installed_version_is_the_package_version():
    assert installed_distribution().version == django_valkey_fast.__version__


def test_importing_the_package_needs_only_the_stdlib():
    # pyproject may read __version__ by importing the package, before any dependency
    # is installed: nothing but the stdlib may be imported with it.
    script = (
        "import sys; import django_valkey_fast; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'django', 'valkey', 'libvalkey', 'msgpack', 'msgspec'}))"
    )
    # -S: no site-packages, so only the stdlib and the checkout can be imported.
    result = subprocess.run([sys.executable, "-S", "-c", script], cwd=ROOT,
                            env={"PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_changelog_mentions_the_current_version():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    version = re.escape(django_valkey_fast.__version__)
    assert re.search(rf"^## \[{version}\]", changelog, re.MULTILINE), changelog[:500]


# -- metadata ---------------------------------------------------------------------


def test_classifiers_name_each_supported_python_and_django():
    classifiers = set(pyproject()["project"]["classifiers"])
    for python in PYTHONS:
        assert f"Programming Language :: Python :: {python}" in classifiers
    for django in DJANGOS:
        assert f"Framework :: Django :: {django}" in classifiers
    for needed in ("Development Status :: 4 - Beta", "Intended Audience :: Developers",
                   "Operating System :: OS Independent", "Typing :: Typed"):
        assert needed in classifiers
    # The lowest Python classifier is the one requires-python allows.
    assert pyproject()["project"]["requires-python"] == f">={PYTHONS[0]}"


def test_project_urls():
    urls = pyproject()["project"]["urls"]
    base = "https://github.com/django-valkey-fast/django-valkey-fast"
    assert set(urls) == {"Homepage", "Documentation", "Changelog", "Issues"}
    assert all(url.startswith(base) for url in urls.values())


def test_py_typed_marker_is_in_the_package():
    package = Path(django_valkey_fast.__file__).parent
    assert (package / "py.typed").is_file()
    assert "py.typed" in pyproject()["tool"]["setuptools"]["package-data"]["django_valkey_fast"]


# -- COMPILED ---------------------------------------------------------------------


def twin_is_compiled(module, name, twin):
    return getattr(module, name).__module__ == f"django_valkey_fast.{twin}_c"


def test_compiled_says_whether_every_twin_is_compiled():
    expected = (twin_is_compiled(_codec, "Codec", "_codec")
                and twin_is_compiled(_wire, "pack_command", "_wire")
                and twin_is_compiled(_slots, "key_slot", "_slots"))
    assert django_valkey_fast.COMPILED is expected
    if os.environ.get("DJANGO_VALKEY_FAST_NO_EXTENSIONS"):
        assert django_valkey_fast.COMPILED is False


@pytest.mark.parametrize("module, pure, name", [
    (_codec, _codec_py, "Codec"),
    (_codec, _codec_py, "KeyMaker"),
    (_wire, _wire_py, "pack_command"),
    (_wire, _wire_py, "pack_commands"),
    (_slots, _slots_py, "key_slot"),
], ids=["_codec.Codec", "_codec.KeyMaker", "_wire.pack_command", "_wire.pack_commands",
        "_slots.key_slot"])
def test_compiled_is_false_when_any_one_twin_is_pure(monkeypatch, module, pure, name):
    monkeypatch.setattr(module, name, getattr(pure, name))
    assert django_valkey_fast.COMPILED is False
