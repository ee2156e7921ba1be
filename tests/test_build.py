"""The package builds compiled where it can and pure-Python where it cannot."""

import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import django_valkey_fast
from tests.test_packaging import PYTHONS

ROOT = Path(__file__).resolve().parent.parent


def clean_source(tmp_path):
    """A copy of the sources without build products (as an sdist would hold)."""
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        "*.so", "*.pyd", "*.c", "build", "dist", "*.egg-info", ".venv", ".git", "__pycache__",
        ".hypothesis", ".pytest_cache",
    ))
    return source


def build_environment(**env):
    """This process's environment without the pure-build switch, plus ``env``."""
    environment = {k: v for k, v in os.environ.items()
                   if k != "DJANGO_VALKEY_FAST_NO_EXTENSIONS"}
    environment.update(env)
    return environment


def build_wheel(tmp_path, **env):
    """Build a wheel of a clean copy of this checkout, with extra environment."""
    source = clean_source(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path), str(source)],
        env=build_environment(**env), capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = tmp_path.glob("*.whl")
    return wheel, result.stdout + result.stderr


def check_wheel_works(wheel, tmp_path, server_url, expect_compiled):
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    script = f"""
import django
from django.conf import settings
settings.configure(CACHES={{"default": {{
    "BACKEND": "django_valkey_fast.cache.ValkeyCache", "LOCATION": "{server_url}"}}}})
django.setup()
import django_valkey_fast
assert django_valkey_fast.__file__.startswith({str(target)!r}), django_valkey_fast.__file__
assert django_valkey_fast.COMPILED is {expect_compiled}, django_valkey_fast.COMPILED
from django.core.cache import cache
cache.set("built", {{"ok": [1, 2]}})
assert cache.get("built") == {{"ok": [1, 2]}}
print("works")
"""
    environment = {k: v for k, v in os.environ.items() if k != "DJANGO_VALKEY_FAST_NO_EXTENSIONS"}
    # -S: no site hooks, so the checkout's editable install cannot shadow the wheel.
    environment["PYTHONPATH"] = os.pathsep.join([str(target), *site.getsitepackages()])
    result = subprocess.run([sys.executable, "-S", "-c", script], env=environment,
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.stdout.strip() == "works", result.stderr


@pytest.mark.parametrize("env, reason", [
    ({"DJANGO_VALKEY_FAST_NO_EXTENSIONS": "1"}, "asked for at build time"),
    ({"CC": "/bin/false", "LDSHARED": "/bin/false"}, "no working compiler"),
])
def test_pure_python_build(tmp_path, server, env, reason):
    wheel, output = build_wheel(tmp_path, **env)
    names = zipfile.ZipFile(wheel).namelist()
    assert not [name for name in names if name.endswith((".so", ".pyd"))], reason
    assert any(name.endswith("_codec_py.py") for name in names)
    if "CC" in env:
        assert "installing the pure-Python implementation" in output
    else:
        assert wheel.name.endswith("-py3-none-any.whl")
    check_wheel_works(wheel, tmp_path, server.url, expect_compiled=False)


def test_compiled_build(tmp_path, server):
    """A compiled wheel that works, shipped like a release: the license in its
    dist-info, the py.typed marker, every twin's source, the metadata."""
    wheel, _ = build_wheel(tmp_path)
    version = django_valkey_fast.__version__
    assert wheel.name.startswith(f"django_valkey_fast-{version}-")
    archive = zipfile.ZipFile(wheel)
    names = archive.namelist()
    assert any("_codec_c" in name and name.endswith(".so") for name in names)
    assert any("_wire_c" in name and name.endswith(".so") for name in names)
    dist_info = f"django_valkey_fast-{version}.dist-info"
    assert f"{dist_info}/licenses/LICENSE" in names
    assert archive.read(f"{dist_info}/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
    assert "django_valkey_fast/py.typed" in names
    for twin in ("_codec_c", "_wire_c", "_slots_c", "_drive_c"):
        assert f"django_valkey_fast/{twin}.pyx" in names  # sources ship too
    metadata = archive.read(f"{dist_info}/METADATA").decode()
    assert f"\nVersion: {version}\n" in metadata
    assert "\nLicense-Expression: BSD-3-Clause\n" in metadata
    assert "\nLicense-File: LICENSE\n" in metadata
    assert "\nProject-URL: Changelog, " in metadata
    for python in PYTHONS:
        assert f"\nClassifier: Programming Language :: Python :: {python}\n" in metadata
    check_wheel_works(wheel, tmp_path, server.url, expect_compiled=True)


def test_sdist_ships_the_sources_and_builds_compiled(tmp_path, server):
    source = clean_source(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c",
         "from setuptools import build_meta; print(build_meta.build_sdist('sdist'))"],
        cwd=source, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    (sdist,) = (source / "sdist").glob("*.tar.gz")
    import tarfile

    top = f"django_valkey_fast-{django_valkey_fast.__version__}"
    names = tarfile.open(sdist).getnames()
    for needed in ("_codec_c.pyx", "_wire_c.pyx", "_codec_py.py", "setup.py", "README.md"):
        assert any(name.endswith(needed) for name in names), needed
    for needed in ("LICENSE", "CHANGELOG.md", "pyproject.toml", "django_valkey_fast/py.typed",
                   "django_valkey_fast/_slots_c.pyx"):
        assert f"{top}/{needed}" in names, needed
    assert not any(name.endswith(".so") for name in names)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path / "wheels"), str(sdist)],
        env=build_environment(), capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = (tmp_path / "wheels").glob("*.whl")
    check_wheel_works(wheel, tmp_path, server.url, expect_compiled=True)


def test_one_extension_that_fails_to_compile_is_named_and_only_that_one_is_pure(tmp_path):
    source = clean_source(tmp_path)
    # A _wire_c that Cython translates but no C compiler can build.
    (source / "django_valkey_fast" / "_wire_c.pyx").write_text(
        'cdef extern from "no_such_header_django_valkey_fast.h":\n    pass\n')
    result = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace"],
        cwd=source, env=build_environment(), capture_output=True, text=True,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "could not compile the extension django_valkey_fast._wire_c" in output
    assert output.count("could not compile") == 1, output  # no other failure, no copy error
    built = {path.name.split(".")[0] for path in (source / "django_valkey_fast").glob("*.so")}
    assert built == {"_codec_c", "_slots_c", "_drive_c"}
    script = (
        "import django_valkey_fast as d; from django_valkey_fast import _wire, _codec; "
        "assert d.__file__.startswith(%r), d.__file__; "
        "print(_codec.Codec.__module__, _wire.pack_command.__module__, d.COMPILED)"
        % str(source)
    )
    # -S: no site hooks, so the checkout's editable install cannot answer the imports.
    environment = build_environment(
        PYTHONPATH=os.pathsep.join([str(source), *site.getsitepackages()]))
    result = subprocess.run([sys.executable, "-S", "-c", script], cwd=tmp_path,
                            env=environment, capture_output=True, text=True)
    assert result.stdout.split() == [
        "django_valkey_fast._codec_c", "django_valkey_fast._wire_py", "False"], result.stderr
