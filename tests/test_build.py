"""The package builds compiled where it can and pure-Python where it cannot."""

import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def clean_source(tmp_path):
    """A copy of the sources without build products (as an sdist would hold)."""
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        "*.so", "*.pyd", "*.c", "build", "dist", "*.egg-info", ".venv", ".git", "__pycache__",
    ))
    return source


def build_wheel(tmp_path, **env):
    """Build a wheel of a clean copy of this checkout, with extra environment."""
    source = clean_source(tmp_path)
    environment = dict(os.environ, **env)
    environment.pop("DJANGO_VALKEY_FAST_NO_EXTENSIONS", None)
    environment.update(env)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path), str(source)],
        env=environment, capture_output=True, text=True,
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
    wheel, _ = build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    assert any("_codec_c" in name and name.endswith(".so") for name in names)
    assert any("_wire_c" in name and name.endswith(".so") for name in names)
    assert any(name.endswith("_codec_c.pyx") for name in names)  # sources ship too
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

    names = tarfile.open(sdist).getnames()
    for needed in ("_codec_c.pyx", "_wire_c.pyx", "_codec_py.py", "setup.py", "README.md"):
        assert any(name.endswith(needed) for name in names), needed
    assert not any(name.endswith(".so") for name in names)
    environment = {k: v for k, v in os.environ.items() if k != "DJANGO_VALKEY_FAST_NO_EXTENSIONS"}
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path / "wheels"), str(sdist)],
        env=environment, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = (tmp_path / "wheels").glob("*.whl")
    check_wheel_works(wheel, tmp_path, server.url, expect_compiled=True)
