"""Selects the compiled or the pure-Python codec and re-exports its names."""

from typing import TYPE_CHECKING

from django_valkey_fast._extensions import USE_EXTENSIONS

if TYPE_CHECKING or not USE_EXTENSIONS:
    from django_valkey_fast._codec_py import (  # noqa: F401
        COMPRESS_CUSTOM, COMPRESS_NONE, COMPRESS_STANDARD, Codec, KeyMaker, check_key,
    )
else:
    try:
        from django_valkey_fast._codec_c import (  # noqa: F401
            COMPRESS_CUSTOM, COMPRESS_NONE, COMPRESS_STANDARD, Codec, KeyMaker, check_key,
        )
    except ImportError:  # a pure-Python install: no compiler was available
        from django_valkey_fast._codec_py import (  # noqa: F401
            COMPRESS_CUSTOM, COMPRESS_NONE, COMPRESS_STANDARD, Codec, KeyMaker, check_key,
        )
