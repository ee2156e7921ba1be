"""msgspec serializers, JSON and MessagePack (``pip install 'django-valkey-fast[msgspec]'``)."""

from django_valkey_fast._optional import optional_import, require
from django_valkey_fast.serializers.base import BaseSerializer

__all__ = ["MsgSpecJsonSerializer", "MsgSpecMsgPackSerializer"]

msgspec = optional_import("msgspec")
if msgspec is not None:
    import msgspec.json
    import msgspec.msgpack


class _MsgSpecSerializer(BaseSerializer):
    def __init__(self, options):
        require(msgspec, type(self).__name__, "msgspec", "msgspec")
        super().__init__(options)


class MsgSpecJsonSerializer(_MsgSpecSerializer):
    """JSON via ``msgspec.json``."""

    def dumps(self, value) -> bytes:
        """Encode ``value`` as JSON."""
        return msgspec.json.encode(value)

    def loads(self, value: bytes):
        """Decode JSON."""
        return msgspec.json.decode(value)


class MsgSpecMsgPackSerializer(_MsgSpecSerializer):
    """MessagePack via ``msgspec.msgpack``."""

    def dumps(self, value) -> bytes:
        """Encode ``value`` as MessagePack."""
        return msgspec.msgpack.encode(value)

    def loads(self, value: bytes):
        """Decode MessagePack."""
        return msgspec.msgpack.decode(value)
