"""Management commands of the django_valkey_fast app."""

__all__: list = []
