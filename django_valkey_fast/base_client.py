"""django-valkey's ``base_client`` module: the base of every client, the herd marker.

``BaseClient`` is the base of every client class of this package (sync, async, herd,
Sentinel, sharded, Cluster), as in django-valkey.
django-valkey's command mixins (``ClientCommands``, ``AsyncClientCommands``,
``HerdCommonMethods``) have no counterpart: the clients here are generated from one
set of operation plans (``django_valkey_fast.operations``).
"""

from django_valkey_fast._common import glob_escape
from django_valkey_fast.client.default import BaseClient
from django_valkey_fast.herd import Marker

__all__ = ["BaseClient", "Marker", "glob_escape"]
