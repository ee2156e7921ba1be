"""Serializers: turn Python values into bytes stored in the server and back."""

__all__: list[str] = []  # the serializers are in the modules of this package
