"""``manage.py valkey``: see ``valkey.py``."""

__all__: list = []
