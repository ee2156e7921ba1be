"""Types and helpers both implementations of the codec share (plain Python)."""

import re

__all__ = ["CacheKey", "default_reverse_key", "glob_escape", "FLOAT_START"]


class CacheKey(str):
    """A key that is already made (prefix and version applied); used as is."""

    def original_key(self) -> str:
        """The key the caller passed, without prefix and version."""
        return self.rsplit(":", 1)[1]


def default_reverse_key(key: str) -> str:
    """Undo Django's default ``KEY_FUNCTION``: ``prefix:version:key`` -> ``key``."""
    return key.split(":", 2)[2]


_glob_special = re.compile("([*?[])")


def glob_escape(s: str) -> str:
    """Escape glob metacharacters (``*``, ``?``, ``[`` and the escape character ``\\``
    itself) so that ``s`` matches literally in a KEYS/SCAN pattern: safe for user
    input, e.g. ``cache.delete_pattern(glob_escape(username) + ":*")``."""
    return _glob_special.sub(r"[\1]", s.replace("\\", "\\\\"))


# Bytes a payload must start with for float() to accept it; anything else skips the
# float() attempt, whose error message would copy the whole payload.
FLOAT_START = frozenset(b"0123456789+-.iInN \t\n\r\x0b\x0c")

# Values stored raw (not serialized), as django-valkey stores them.
MAX_KEY_LENGTH = 250
