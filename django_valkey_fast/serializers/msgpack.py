"""MessagePack serializer (``pip install 'django-valkey-fast[msgpack]'``)."""

from django_valkey_fast._optional import optional_import, require
from django_valkey_fast.serializers.base import BaseSerializer

__all__ = ["MSGPackSerializer"]

msgpack = optional_import("msgpack")


class MSGPackSerializer(BaseSerializer):
    """MessagePack via the ``msgpack`` package."""

    def __init__(self, options):
        require(msgpack, "MSGPackSerializer", "msgpack", "msgpack")
        super().__init__(options)

    def dumps(self, value) -> bytes:
        """Encode ``value`` as MessagePack."""
        return msgpack.dumps(value)

    def loads(self, value: bytes):
        """Decode MessagePack."""
        return msgpack.loads(value, raw=False)
