"""Decide once whether the compiled twins are used.

The compiled modules are used unless ``DJANGO_VALKEY_FAST_NO_EXTENSIONS`` is set to a
non-empty value, or the interpreter is not CPython.
"""

import os
import sys

USE_EXTENSIONS = bool(
    sys.implementation.name == "cpython"
    and not os.environ.get("DJANGO_VALKEY_FAST_NO_EXTENSIONS")
)
