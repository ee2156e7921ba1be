"""The Django app of this package: add ``"django_valkey_fast"`` to INSTALLED_APPS for
its system checks (``checks.py``) and the ``manage.py valkey`` command. The cache
backends work without it."""

from django.apps import AppConfig

__all__ = ["DjangoValkeyFastConfig"]


class DjangoValkeyFastConfig(AppConfig):
    """Registers the system checks of the caches of this package."""

    name = "django_valkey_fast"
    verbose_name = "django-valkey-fast"

    def ready(self) -> None:
        """Register the system checks."""
        from django_valkey_fast import checks  # noqa: F401 - registers the checks
