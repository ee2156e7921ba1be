"""Serializers: turn Python values into bytes stored in the server and back."""
