"""The package is put together like a release: license, metadata, version, markers."""

import importlib.metadata
import os
import re
import shutil
import site
import subprocess
import sys
import zipfile
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


# -- builds -----------------------------------------------------------------------


def source_copy(tmp_path):
    """This checkout's sources without build products, so that building neither reads
    nor writes the working tree (build/, *.egg-info, in-place extensions)."""
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        "*.so", "*.pyd", "*.c", "build", "dist", "*.egg-info", ".venv", ".git",
        "__pycache__", ".hypothesis", ".pytest_cache",
    ))
    return source


def without_no_extensions():
    return {k: v for k, v in os.environ.items() if k != "DJANGO_VALKEY_FAST_NO_EXTENSIONS"}


def test_wheel_ships_license_marker_and_sources(tmp_path):
    source = source_copy(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path)],
        cwd=source, env=without_no_extensions(), capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = tmp_path.glob("django_valkey_fast-*.whl")
    version = django_valkey_fast.__version__
    assert wheel.name.startswith(f"django_valkey_fast-{version}-")
    archive = zipfile.ZipFile(wheel)
    names = archive.namelist()
    dist_info = f"django_valkey_fast-{version}.dist-info"
    assert f"{dist_info}/licenses/LICENSE" in names
    assert archive.read(f"{dist_info}/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
    assert "django_valkey_fast/py.typed" in names
    for twin in ("_codec_c", "_wire_c", "_slots_c"):
        assert f"django_valkey_fast/{twin}.pyx" in names
    metadata = archive.read(f"{dist_info}/METADATA").decode()
    assert f"\nVersion: {version}\n" in metadata
    assert "\nLicense-Expression: BSD-3-Clause\n" in metadata
    assert "\nLicense-File: LICENSE\n" in metadata
    assert "\nProject-URL: Changelog, " in metadata
    for python in PYTHONS:
        assert f"\nClassifier: Programming Language :: Python :: {python}\n" in metadata


def test_sdist_ships_license_marker_and_sources(tmp_path):
    source = source_copy(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c",
         "from setuptools import build_meta; print(build_meta.build_sdist('sdist'))"],
        cwd=source, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    (sdist,) = (source / "sdist").glob("*.tar.gz")
    import tarfile

    top = f"django_valkey_fast-{django_valkey_fast.__version__}"
    names = set(tarfile.open(sdist).getnames())
    for needed in ("LICENSE", "pyproject.toml", "setup.py", "django_valkey_fast/py.typed",
                   "django_valkey_fast/_codec_c.pyx", "django_valkey_fast/_wire_c.pyx",
                   "django_valkey_fast/_slots_c.pyx"):
        assert f"{top}/{needed}" in names, needed


def test_one_extension_that_fails_to_compile_is_named_and_only_that_one_is_pure(tmp_path):
    source = source_copy(tmp_path)
    # A _wire_c that Cython translates but no C compiler can build.
    (source / "django_valkey_fast" / "_wire_c.pyx").write_text(
        'cdef extern from "no_such_header_django_valkey_fast.h":\n    pass\n')
    result = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace"],
        cwd=source, env=without_no_extensions(), capture_output=True, text=True,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "could not compile the extension django_valkey_fast._wire_c" in output
    assert output.count("could not compile") == 1, output  # no other failure, no copy error
    built = {path.name.split(".")[0] for path in (source / "django_valkey_fast").glob("*.so")}
    assert built == {"_codec_c", "_slots_c"}
    script = (
        "import django_valkey_fast as d; from django_valkey_fast import _wire, _codec; "
        "assert d.__file__.startswith(%r), d.__file__; "
        "print(_codec.Codec.__module__, _wire.pack_command.__module__, d.COMPILED)"
        % str(source)
    )
    environment = without_no_extensions()
    # -S: no site hooks, so the checkout's editable install cannot answer the imports.
    environment["PYTHONPATH"] = os.pathsep.join([str(source), *site.getsitepackages()])
    result = subprocess.run([sys.executable, "-S", "-c", script], cwd=tmp_path,
                            env=environment, capture_output=True, text=True)
    assert result.stdout.split() == [
        "django_valkey_fast._codec_c", "django_valkey_fast._wire_py", "False"], result.stderr
