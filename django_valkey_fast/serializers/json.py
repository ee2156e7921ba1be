"""JSON serializer using Django's ``DjangoJSONEncoder``."""

import json

from django.core.serializers.json import DjangoJSONEncoder

from django_valkey_fast.serializers.base import BaseSerializer

__all__ = ["JSONSerializer"]


class JSONSerializer(BaseSerializer):
    """JSON with Django's encoder (dates, decimals, UUIDs, lazy strings)."""

    encoder_class = DjangoJSONEncoder

    def dumps(self, value) -> bytes:
        """Encode ``value`` as JSON bytes."""
        return json.dumps(value, cls=self.encoder_class).encode()

    def loads(self, value: bytes):
        """Decode JSON bytes."""
        return json.loads(value.decode())
