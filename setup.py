"""Build script: compiles the Cython twins when it can, else installs pure Python.

Set DJANGO_VALKEY_FAST_NO_EXTENSIONS=1 to skip the extensions on purpose.
"""

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

EXTENSION_MODULES = ["_codec_c", "_wire_c", "_slots_c", "_drive_c"]


class OptionalBuildExt(build_ext):
    """Builds the extensions; on a compiler error, says so and keeps going."""

    def run(self):
        try:
            super().run()
        except Exception as error:  # noqa: BLE001 - any build failure means pure Python
            self._fallback("its extensions", error)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as error:  # noqa: BLE001 - this twin stays pure Python
            self._fallback(f"the extension {ext.name}", error)

    @staticmethod
    def _fallback(what, error):
        print(
            f"WARNING: django-valkey-fast could not compile {what} ({error}); "
            "installing the pure-Python implementation in its place "
            "(django_valkey_fast.COMPILED will be False).",
            file=sys.stderr,
        )


def extensions():
    if os.environ.get("DJANGO_VALKEY_FAST_NO_EXTENSIONS") or sys.implementation.name != "cpython":
        print("django-valkey-fast: building the pure-Python implementation only.")
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("django-valkey-fast: Cython is not available; pure-Python build.", file=sys.stderr)
        return []
    from setuptools import Extension

    modules = [
        Extension(f"django_valkey_fast.{name}", [f"django_valkey_fast/{name}.pyx"],
                  extra_compile_args=["-O2"] if os.name != "nt" else [])
        for name in EXTENSION_MODULES
    ]
    built = cythonize(modules, compiler_directives={"language_level": "3"}, quiet=True)
    for module in built:
        # Optional: when one twin fails to compile, an in-place build (editable install,
        # build_ext --inplace) still copies the others. Set here: cythonize drops it.
        module.optional = True
    return built


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
