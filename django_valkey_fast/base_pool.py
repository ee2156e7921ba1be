"""django-valkey's ``base_pool`` module: the base class of every connection factory."""

from django_valkey_fast.pool import ConnectionFactory as BaseConnectionFactory

__all__ = ["BaseConnectionFactory"]
