"""System checks (Django's check framework, ``manage.py check``): a misconfigured cache
alias of this package is reported at startup, with an id and a hint, instead of at
its first request. Registered when ``"django_valkey_fast"`` is in INSTALLED_APPS
(``apps.py``). The ids:

- ``django_valkey_fast.E001``: an OPTIONS class path (``CLIENT_CLASS``, ``SERIALIZER``,
  ``COMPRESSOR``, ``CONNECTION_FACTORY``, ``CONNECTION_POOL_CLASS``,
  ``BASE_CLIENT_CLASS``, ``PARSER_CLASS``) that cannot be imported;
- ``E002``: an optional library the options need (a serializer's or compressor's,
  OpenTelemetry's, prometheus_client) is not installed (the hint names the extra);
- ``E003``: a serializer or compressor that refuses its options;
- ``E004``: a LOCATION with an unknown scheme, or that cannot be parsed (a malformed
  port or password part);
- ``E005``: ``SOCKET_TIMEOUT``/``SOCKET_CONNECT_TIMEOUT`` not a positive number;
- ``E006``: an option the backend cannot take (Sentinel options without a Sentinel
  client, a bad ``CLEAR_SCOPE``, ``CLIENT_SIDE_CACHE``, ``OPENTELEMETRY``,
  ``PROMETHEUS``);
- ``W001``: pickle on a database the settings say is shared with other applications
  (``CLEAR_SCOPE`` "prefix"): reading a value another application wrote would run its
  code;
- ``W002`` (``--deploy``): TLS without checking the server's host name or certificate.
"""

from __future__ import annotations

import importlib.util
import ssl
from urllib.parse import parse_qs, urlparse

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from django_valkey_fast._common import without_password
from django_valkey_fast.exceptions import MissingDependency

__all__ = ["check_caches", "check_caches_deploy", "our_aliases"]

CLASS_OPTIONS = ("CLIENT_CLASS", "SERIALIZER", "COMPRESSOR", "CONNECTION_FACTORY",
                 "CONNECTION_POOL_CLASS", "BASE_CLIENT_CLASS", "PARSER_CLASS")
SCHEMES = ("valkey", "valkeys", "redis", "rediss", "unix")
TLS_SCHEMES = ("valkeys", "rediss")
PICKLE = "django_valkey_fast.serializers.pickle.PickleSerializer"


def our_aliases() -> dict:
    """``{alias: params}`` of the aliases whose BACKEND is one of this package's."""
    from django_valkey_fast.base import BaseValkeyCache

    found = {}
    for alias, params in getattr(settings, "CACHES", {}).items():
        try:
            backend = import_string(params.get("BACKEND", ""))
        except ImportError:
            continue  # (Django reports a BACKEND that does not import)
        if isinstance(backend, type) and issubclass(backend, BaseValkeyCache):
            found[alias] = params
    return found


def _locations(params: dict) -> list:
    location = params.get("LOCATION") or []
    if isinstance(location, str):
        location = location.split(",")
    return [url.strip() for url in location]


@checks.register(checks.Tags.caches)
def check_caches(app_configs=None, **kwargs) -> list:
    """Every alias of this package's backends: class paths, libraries, codec, LOCATION,
    timeouts, options, pickle on a shared database."""
    messages: list = []
    for alias, params in our_aliases().items():
        messages += _check_alias(alias, params)
    return messages


@checks.register(checks.Tags.caches, deploy=True)
def check_caches_deploy(app_configs=None, **kwargs) -> list:
    """``--deploy``: TLS LOCATIONs that do not check the server's host name."""
    messages = []
    for alias, params in our_aliases().items():
        options = params.get("OPTIONS", {})
        pool = options.get("CONNECTION_POOL_KWARGS", {}) if isinstance(options, dict) else {}
        if not isinstance(pool, dict):
            continue  # (not a dict: the cache reports it when built)
        for url in _locations(params):
            parsed = urlparse(url)
            if parsed.scheme not in TLS_SCHEMES:
                continue
            query = {name: values[-1].lower() for name, values in parse_qs(parsed.query).items()}
            hostname = pool.get("ssl_check_hostname", query.get("ssl_check_hostname", True))
            cert_reqs = pool.get("ssl_cert_reqs", query.get("ssl_cert_reqs", "required"))
            if cert_reqs == ssl.CERT_NONE:  # (an ssl.VerifyMode, or 0)
                cert_reqs = "none"
            if str(hostname).lower() in ("false", "0", "no") \
                    or str(cert_reqs).lower() in ("none", "cert_none"):
                messages.append(checks.Warning(
                    f"Cache '{alias}' connects with TLS without checking the server's "
                    "host name or certificate: a machine in the path can pose as the server.",
                    hint="Remove ssl_check_hostname=False / ssl_cert_reqs='none' and give "
                         "ssl_ca_certs the CA that signed the server's certificate.",
                    id="django_valkey_fast.W002"))
                break
    return messages


def _check_alias(alias: str, params: dict) -> list:
    options = params.get("OPTIONS", {})
    if not isinstance(options, dict):
        return [checks.Error(f"Cache '{alias}': OPTIONS is a dict, not "
                             f"{type(options).__name__}.", id="django_valkey_fast.E006")]
    messages = []
    for name in CLASS_OPTIONS:
        path = options.get(name)
        if path is None or not isinstance(path, str):
            continue
        try:
            import_string(path)
        except ImportError as error:
            messages.append(checks.Error(
                f"Cache '{alias}': OPTIONS['{name}'] is '{path}', which cannot be "
                f"imported ({error}).",
                hint="Check the dotted path (the names are django-valkey's with "
                     "django_valkey -> django_valkey_fast).",
                id="django_valkey_fast.E001"))
    if not any(message.id == "django_valkey_fast.E001" for message in messages):
        messages += _check_codec(alias, options)
    messages += _check_locations(alias, params)
    messages += _check_timeouts(alias, options)
    messages += _check_options(alias, params, options)
    messages += _check_pickle_sharing(alias, options)
    return messages


def _check_codec(alias: str, options: dict) -> list:
    from django_valkey_fast.config import build_codec

    try:
        build_codec(options)
    except MissingDependency as missing:
        return [checks.Error(f"Cache '{alias}': {missing}",
                             hint=str(missing).split("Install it with: ")[-1],
                             id="django_valkey_fast.E002")]
    except (ImproperlyConfigured, ValueError, TypeError) as refused:
        return [checks.Error(f"Cache '{alias}': the serializer or compressor refuses "
                             f"its options: {refused}", id="django_valkey_fast.E003")]
    return []


def _check_locations(alias: str, params: dict) -> list:
    messages = []
    for url in _locations(params):
        try:
            parsed = urlparse(url)
            parsed.port  # (raises ValueError for a port that is not a number)
        except ValueError as error:
            messages.append(checks.Error(
                f"Cache '{alias}': LOCATION '{without_password(url)}' cannot be parsed "
                f"({error}).",
                hint="valkey://[[user]:password@]host[:port][/db]; quote special "
                     "characters of a password with urllib.parse.quote.",
                id="django_valkey_fast.E004"))
            continue
        if parsed.scheme not in SCHEMES:
            messages.append(checks.Error(
                f"Cache '{alias}': LOCATION '{without_password(url)}' has the scheme "
                f"'{parsed.scheme}'; known: {', '.join(SCHEMES)}.",
                hint="valkey://host:6379/0 (TLS: valkeys://), or unix:///path/to/socket",
                id="django_valkey_fast.E004"))
    return messages


def _check_timeouts(alias: str, options: dict) -> list:
    messages = []
    for name in ("SOCKET_TIMEOUT", "SOCKET_CONNECT_TIMEOUT"):
        value = options.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            messages.append(checks.Error(
                f"Cache '{alias}': OPTIONS['{name}'] is {value!r}; it is a number of "
                "seconds above 0, or None (no timeout).",
                id="django_valkey_fast.E005"))
    return messages


def _uses_sentinel(params: dict, options: dict) -> bool:
    """Whether the alias's client or connection factory finds its servers through
    Sentinel (subclasses included; a path that does not import counts as yes: E001
    reports it)."""
    from django_valkey_fast.async_cache.pool import AsyncSentinelConnectionFactory
    from django_valkey_fast.pool import SentinelConnectionFactory

    try:
        backend = import_string(params["BACKEND"])
        client = import_string(options.get("CLIENT_CLASS", backend.DEFAULT_CLIENT_CLASS))
        factories = (
            import_string(client.CONNECTION_FACTORY_PATH),  # (the client's own, e.g.
            # SentinelClient's, which it uses unless OPTIONS name another)
            import_string(options.get("CONNECTION_FACTORY") or getattr(
                settings, "DJANGO_VALKEY_CONNECTION_FACTORY", client.CONNECTION_FACTORY_PATH)))
    except (ImportError, AttributeError):
        return True
    return any(isinstance(factory, type) and issubclass(
        factory, (SentinelConnectionFactory, AsyncSentinelConnectionFactory))
        for factory in factories)


def _check_options(alias: str, params: dict, options: dict) -> list:
    from django_valkey_fast.client.local_cache import local_cache_options
    from django_valkey_fast.client.telemetry import telemetry_options

    messages = []
    if "SENTINELS" in options and not _uses_sentinel(params, options):
        messages.append(checks.Error(
            f"Cache '{alias}': OPTIONS['SENTINELS'] is set, but the client is not a "
            "Sentinel client: the Sentinels would be ignored.",
            hint="CLIENT_CLASS: django_valkey_fast.client.SentinelClient (or "
                 "async_cache.client.AsyncSentinelClient for AsyncValkeyCache).",
            id="django_valkey_fast.E006"))
    if options.get("CLEAR_SCOPE", "database") not in ("database", "prefix"):
        messages.append(checks.Error(
            f"Cache '{alias}': OPTIONS['CLEAR_SCOPE'] is {options['CLEAR_SCOPE']!r}; "
            'it is "database" (the default) or "prefix".', id="django_valkey_fast.E006"))
    for parse in (local_cache_options, telemetry_options):
        try:
            parse(options)
        except ImproperlyConfigured as refused:
            messages.append(checks.Error(f"Cache '{alias}': {refused}",
                                         id="django_valkey_fast.E006"))
    for name, module, extra in (("OPENTELEMETRY", "opentelemetry", "otel"),
                                ("PROMETHEUS", "prometheus_client", "prometheus")):
        if options.get(name) not in (None, False) and not _installed(module):
            messages.append(checks.Error(
                f"Cache '{alias}': OPTIONS['{name}'] needs the '{module}' package, which "
                "is not installed.", hint=f"pip install 'django-valkey-fast[{extra}]'",
                id="django_valkey_fast.E002"))
    return messages


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # (a module hidden by sys.modules[name] = None)
        return False


def _check_pickle_sharing(alias: str, options: dict) -> list:
    if options.get("SERIALIZER", PICKLE) != PICKLE or options.get("CLEAR_SCOPE") != "prefix":
        return []
    return [checks.Warning(
        f"Cache '{alias}' stores values with pickle in a database other applications "
        'write to (CLEAR_SCOPE "prefix" says it is shared): unpickling a value someone '
        "else wrote runs whatever it says.",
        hint="Use a database of its own for each application, or a serializer that "
             "runs no code (serializers.json.JSONSerializer, msgpack, msgspec).",
        id="django_valkey_fast.W001")]
