"""``manage.py valkey``: see ``valkey.py``."""
