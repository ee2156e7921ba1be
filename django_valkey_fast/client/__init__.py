"""Clients: which server a command goes to, and how operations run on it."""

from django_valkey_fast.client.default import DefaultClient

__all__ = ["DefaultClient"]
