"""MessagePack serializer (``pip install 'django-valkey-fast[msgpack]'``)."""

from django_valkey_fast.exceptions import MissingDependency
from django_valkey_fast.serializers.base import BaseSerializer

try:
    import msgpack
except ImportError:  # reported when the serializer is configured
    msgpack = None


class MSGPackSerializer(BaseSerializer):
    """MessagePack via the ``msgpack`` package."""

    def __init__(self, options):
        if msgpack is None:
            raise MissingDependency("MSGPackSerializer", "msgpack", "msgpack")
        super().__init__(options)

    def dumps(self, value) -> bytes:
        """Encode ``value`` as MessagePack."""
        return msgpack.dumps(value)

    def loads(self, value: bytes):
        """Decode MessagePack."""
        return msgpack.loads(value, raw=False)
