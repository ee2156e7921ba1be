"""Connection factories: turn a LOCATION URL and OPTIONS into a valkey-py client.

The names and hooks are django-valkey's (``ConnectionFactory``,
``SentinelConnectionFactory``, ``get_connection_factory``, ``make_connection_params``,
``get_connection_pool``, ``get_or_create_connection_pool``, ``connect``,
``disconnect``), so a custom factory written for django-valkey works after changing
its base class's import path. Pools are process-wide: Django builds a cache backend
per thread, and every one of them shares the pool for its URL and parameters.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse, urlunparse

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

__all__ = ["ConnectionFactory", "SentinelConnectionFactory", "check_hostname_by_default",
           "get_connection_factory", "sentinel_pool"]

DEFAULT_CONNECTION_FACTORY = "django_valkey_fast.pool.ConnectionFactory"


def _check_number(options: dict, name: str):
    value = options.get(name)
    if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
        raise ImproperlyConfigured(f"{name} should be float or integer, not {value!r}")
    return value


class ConnectionFactory:
    """Builds valkey-py clients over process-wide connection pools."""

    path_pool_cls = "valkey.connection.ConnectionPool"
    path_base_cls = "valkey.client.Valkey"
    # OPTIONS naming the reply parser, in order of precedence, and the default.
    parser_options: tuple[str, ...] = ("PARSER_CLASS",)
    default_parser = "valkey.connection.DefaultParser"

    # Process-wide, keyed by URL and connection parameters: the pool outlives the
    # per-thread backend and client objects Django creates.
    _pools: dict[Any, Any] = {}

    def __init__(self, options: dict):
        self.options = options
        self.pool_cls = import_string(options.get("CONNECTION_POOL_CLASS", self.path_pool_cls))
        self.pool_cls_kwargs = options.get("CONNECTION_POOL_KWARGS", {})
        self.base_client_cls = import_string(options.get("BASE_CLIENT_CLASS", self.path_base_cls))
        self.base_client_cls_kwargs = options.get("BASE_CLIENT_KWARGS", {})

    def make_connection_params(self, url: str | None) -> dict:
        """Return the keyword arguments for the pool of ``url``, from OPTIONS."""
        kwargs: dict[str, Any] = {"url": url, "parser_class": self.get_parser_cls()}
        socket_timeout = _check_number(self.options, "SOCKET_TIMEOUT")
        if socket_timeout:
            kwargs["socket_timeout"] = socket_timeout
        connect_timeout = _check_number(self.options, "SOCKET_CONNECT_TIMEOUT")
        if connect_timeout:
            kwargs["socket_connect_timeout"] = connect_timeout
        password = self.options.get("PASSWORD")
        if password:
            kwargs["password"] = password
        username = self.options.get("USERNAME")
        if username:
            kwargs["username"] = username
        if check_hostname_by_default(url, self.pool_cls_kwargs):
            kwargs["ssl_check_hostname"] = True
        return kwargs

    def get_parser_cls(self):
        """The reply parser named in OPTIONS, or valkey-py's default (libvalkey if installed)."""
        for option in self.parser_options:
            if self.options.get(option):
                return import_string(self.options[option])
        return import_string(self.default_parser)

    def get_connection_pool(self, params: dict):
        """Return a new pool for ``params`` (override for custom pool creation)."""
        cp_params = dict(params)
        cp_params.update(self.pool_cls_kwargs)
        pool = self.pool_cls.from_url(**cp_params)
        if pool.connection_kwargs.get("password") is None and params.get("password"):
            pool.connection_kwargs["password"] = params["password"]
            pool.reset()
        return pool

    def _pool_key(self, params: dict):
        extra = {**params, **self.pool_cls_kwargs}
        return (type(self), self.pool_cls, repr(sorted(extra.items(), key=lambda kv: kv[0])))

    def get_or_create_connection_pool(self, params: dict):
        """Return the process-wide pool for ``params``, creating it on first use."""
        key = self._pool_key(params)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools.setdefault(key, self.get_connection_pool(params))
        return pool

    def get_connection(self, params: dict):
        """Return a valkey-py client (``BASE_CLIENT_CLASS``) over the shared pool."""
        pool = self.get_or_create_connection_pool(params)
        return self.base_client_cls(connection_pool=pool, **self.base_client_cls_kwargs)

    def connect(self, url: str):
        """Return a valkey-py client for ``url``."""
        return self.get_connection(self.make_connection_params(url))

    def disconnect(self, connection) -> None:
        """Close every connection of ``connection``'s pool (they reopen on next use)."""
        connection.connection_pool.disconnect()


_TLS_SCHEMES = ("valkeys", "rediss")


def check_hostname_by_default(url: str | None, pool_kwargs: dict) -> bool:
    """Whether a TLS connection to ``url`` should check the server's host name: yes,
    unless ``ssl_check_hostname`` is set (CONNECTION_POOL_KWARGS or the URL) or
    certificates are not verified at all (``ssl_cert_reqs`` "none"). valkey-py 6.2
    defaults to not checking, which accepts a valid certificate for any host;
    Django's ``RedisCache`` checks."""
    if not url or urlparse(url).scheme not in _TLS_SCHEMES:
        return False
    query = parse_qs(urlparse(url).query)
    if "ssl_check_hostname" in pool_kwargs or "ssl_check_hostname" in query:
        return False
    cert_reqs = pool_kwargs.get("ssl_cert_reqs", query.get("ssl_cert_reqs", ["required"])[0])
    return str(getattr(cert_reqs, "name", cert_reqs)).lower() not in ("none", "cert_none")


class SentinelConnectionFactory(ConnectionFactory):
    """Builds clients whose pool asks Sentinel for the primary (or a replica).

    LOCATION is ``valkey://service_name/db``; ``?is_master=0`` reads from replicas.
    OPTIONS ``SENTINELS`` is a list of ``(host, port)`` and ``SENTINEL_KWARGS`` the
    keyword arguments for the connections to the Sentinels themselves.
    """

    def __init__(self, options: dict):
        options.setdefault("CONNECTION_POOL_CLASS", "valkey.sentinel.SentinelConnectionPool")
        super().__init__(options)
        sentinels = options.get("SENTINELS")
        if not sentinels:
            raise ImproperlyConfigured("SENTINELS must be provided as a list of (host, port).")
        from valkey.sentinel import Sentinel

        connection_kwargs = self.make_connection_params(None)
        connection_kwargs.pop("url")
        connection_kwargs.update(self.pool_cls_kwargs)
        self._sentinel = Sentinel(
            sentinels, sentinel_kwargs=options.get("SENTINEL_KWARGS"), **connection_kwargs
        )

    def _pool_key(self, params: dict):
        # The URL names a service, not the servers: the Sentinels are part of the key.
        return super()._pool_key(params) + (
            repr(self.options.get("SENTINELS")), repr(self.options.get("SENTINEL_KWARGS")),
        )

    def get_connection_pool(self, params: dict):
        """Return a Sentinel-managed pool for ``params["url"]``."""
        return sentinel_pool(super().get_connection_pool, params, self._sentinel)


def sentinel_pool(make_pool, params: dict, sentinel_manager):
    """Build a Sentinel pool for ``valkey://service/db?is_master=0|1`` (sync or asyncio).

    ``is_master`` is given to the pool's constructor: valkey-py copies it into the
    proxy its connections consult, so changing it afterwards (as django-valkey does)
    leaves "replica" connections pointed at the primary.
    """
    from valkey._parsers.url_parser import to_bool

    url = urlparse(params["url"])
    query = parse_qs(url.query, keep_blank_values=True)
    is_master = to_bool(query.pop("is_master", ["1"])[0])
    url = urlunparse((*url[:4], urlencode(query, doseq=True), url[5]))
    return make_pool(dict(params, url=url, service_name=urlparse(url).hostname,
                          sentinel_manager=sentinel_manager, is_master=bool(is_master)))


def get_connection_factory(path: str | None = None, options: dict | None = None):
    """Return the connection factory for OPTIONS.

    ``OPTIONS["CONNECTION_FACTORY"]`` wins over the ``DJANGO_VALKEY_CONNECTION_FACTORY``
    setting, which wins over ``path``.
    """
    options = options if options is not None else {}
    path = getattr(settings, "DJANGO_VALKEY_CONNECTION_FACTORY", path) or DEFAULT_CONNECTION_FACTORY
    path = options.get("CONNECTION_FACTORY") or path
    return import_string(path)(options)
