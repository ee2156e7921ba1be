"""Command mixins for clients (django-valkey's ``commands`` package)."""

from django_valkey_fast.commands.hash import AsyncHashCommands, HashCommands, HashOperations

__all__ = ["AsyncHashCommands", "HashCommands", "HashOperations"]
