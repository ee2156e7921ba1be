"""msgspec serializers, JSON and MessagePack (``pip install 'django-valkey-fast[msgspec]'``)."""

from django_valkey_fast.exceptions import MissingDependency
from django_valkey_fast.serializers.base import BaseSerializer

try:
    import msgspec
except ImportError:  # reported when the serializer is configured
    msgspec = None


class _MsgSpecSerializer(BaseSerializer):
    def __init__(self, options):
        if msgspec is None:
            raise MissingDependency(type(self).__name__, "msgspec", "msgspec")
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
