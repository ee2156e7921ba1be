"""Types and helpers both implementations of a twin share (plain Python)."""

import numbers
import re
from urllib.parse import urlparse

from valkey.exceptions import ReadOnlyError, ResponseError

__all__ = ["CacheKey", "connection_fields", "default_reverse_key", "glob_escape", "FLOAT_START",
           "key_text", "number_like_payload", "pipeline_error", "reads_as_number",
           "unless_number_like", "without_password"]


class CacheKey(str):
    """A key that is already made (prefix and version applied); used as is."""

    def original_key(self) -> str:
        """The key the caller passed, without prefix and version."""
        return self.rsplit(":", 1)[1]


def key_text(key) -> str:
    """``key`` as an exact ``str`` (a ``str`` subclass is copied, as Django's default
    KEY_FUNCTION would format it); anything else, e.g. the ``None`` or ``bytes`` a custom
    KEY_FUNCTION returned, is a ``TypeError``."""
    if isinstance(key, str):
        return str.__str__(key)
    raise TypeError(f"a cache key must be a str, not {type(key).__name__}: {key!r:.80}"
                    " (check the cache's KEY_FUNCTION)")


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

def reads_as_number(data) -> bool:
    """Whether stored bytes ``data`` are read back as a raw int or float (the
    decoder's first rule, django-valkey's format: numbers are stored as text)."""
    first = data[0]
    if 48 <= first <= 57 or first == 45:  # digit or '-'
        if data.isdigit() or (first == 45 and data[1:].isdigit()):
            return True
    if first in FLOAT_START:
        try:
            float(data)
        except ValueError:
            return False
        return True
    return False


def unless_number_like(compressed, data):
    """``compressed``, or the uncompressed ``data`` when the compressed bytes would be
    read back as a number (possible with brotli, which has no magic): the decoder reads
    uncompressed bytes as well."""
    if compressed and compressed[0] in FLOAT_START and reads_as_number(compressed):
        return data
    return compressed


def number_like_payload(value, data, serializer_name: str):
    """What to store for ``value`` when its serialized form ``data`` would be read back
    as a raw number (msgpack writes the ints 48-57, an ``IntEnum`` member for one, as a
    single ASCII digit): an int-like value is stored as the int itself, which reads
    back equal; anything else cannot be stored in this format."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    raise ValueError(
        f"{serializer_name} turned a {type(value).__name__} into bytes that would be read "
        f"back as a number ({bytes(data[:20])!r}): the value cannot be stored as it is"
    )


# Values stored raw (not serialized), as django-valkey stores them.
MAX_KEY_LENGTH = 250


_is_exception = Exception.__instancecheck__


def pipeline_error(replies):
    """The reply of a pipeline that is raised rather than returned in place: an error
    that is not about one command (authentication...) or a READONLY refusal; or None."""
    for reply in filter(_is_exception, replies):  # (the scan in C: pipelines are long)
        if isinstance(reply, ReadOnlyError) or not isinstance(reply, ResponseError):
            return reply
    return None


def without_password(url: str) -> str:
    """``url`` with its password, if any, shown as ``***`` (for messages and output)."""
    try:
        password = urlparse(url).password
    except ValueError:
        return "<a LOCATION that cannot be parsed>"
    return url.replace(f":{password}@", ":***@", 1) if password else url


def connection_fields(line) -> dict:
    """The fields of a CLIENT INFO / CLIENT LIST line (``{"id": "7", "addr": ...}``);
    empty for an empty reply (CLIENT LIST ID of an id the server does not know)."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", "replace")
    if not isinstance(line, str):
        return {}
    first = line.split("\n", 1)[0]
    return dict(field.split("=", 1) for field in first.split(" ") if "=" in field)
