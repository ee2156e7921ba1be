"""System checks: each misconfiguration is reported by ``manage.py check`` with its id
(and nothing is reported for a good configuration). Invariant: a cache that would
fail at its first request fails at startup instead, with a hint."""

from __future__ import annotations

import importlib
import ssl
import sys

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from django_valkey_fast.checks import check_caches, check_caches_deploy

BACKEND = "django_valkey_fast.cache.ValkeyCache"


def _sentinel_subclass():
    from django_valkey_fast.client import SentinelClient

    class MyClient(SentinelClient):
        """A project's own Sentinel client (its name does not say Sentinel)."""

    return MyClient


MyClient = _sentinel_subclass()


def ids(messages) -> list:
    return sorted(message.id for message in messages)


def checked(options=None, location="valkey://127.0.0.1:6379/0", deploy=False, **params):
    caches = {"default": {"BACKEND": BACKEND, "LOCATION": location,
                          "OPTIONS": {} if options is None else options, **params}}
    with override_settings(CACHES=caches):
        messages = check_caches()
        if deploy:
            messages += check_caches_deploy()
    return messages


def test_a_good_configuration_reports_nothing():
    assert checked() == []
    assert checked({"SERIALIZER": "django_valkey_fast.serializers.json.JSONSerializer",
                    "COMPRESSOR": "django_valkey_fast.compressors.zlib.ZlibCompressor",
                    "SOCKET_TIMEOUT": 1, "SOCKET_CONNECT_TIMEOUT": 0.5,
                    "CLIENT_SIDE_CACHE": {}, "CLEAR_SCOPE": "prefix"},
                   location="valkeys://cache.example.com:6380/1", deploy=True) == []


@pytest.mark.parametrize("name", ["CLIENT_CLASS", "SERIALIZER", "COMPRESSOR",
                                  "CONNECTION_FACTORY", "CONNECTION_POOL_CLASS"])
def test_a_class_path_that_does_not_import(name):
    (error,) = checked({name: "django_valkey_fast.nowhere.Thing"})
    assert error.id == "django_valkey_fast.E001" and name in error.msg


def test_a_missing_optional_library_names_the_extra(monkeypatch):
    module = importlib.import_module("django_valkey_fast.compressors.lz4")
    for name in ["lz4", "lz4.frame"] + [m for m in sys.modules if m.startswith("lz4.")]:
        monkeypatch.setitem(sys.modules, name, None)  # the library is not installed
    importlib.reload(module)
    try:
        (error,) = checked({"COMPRESSOR": "django_valkey_fast.compressors.lz4.Lz4Compressor"})
    finally:
        monkeypatch.undo()
        importlib.reload(module)
    assert error.id == "django_valkey_fast.E002"
    assert error.hint == "pip install 'django-valkey-fast[lz4]'"


@pytest.mark.parametrize("location", ["http://127.0.0.1:6379/0", "valkey://host:port/0",
                                      "memcached://127.0.0.1:11211"])
def test_a_location_that_cannot_work(location):
    assert ids(checked(location=location)) == ["django_valkey_fast.E004"]


def test_a_password_is_never_printed():
    (error,) = checked(location="valkey://user:s3cret@host:notaport/0")
    assert "s3cret" not in error.msg


@pytest.mark.parametrize("value", ["1", 0, -2, True, [1]])
def test_timeouts_of_the_wrong_type(value):
    assert ids(checked({"SOCKET_TIMEOUT": value})) == ["django_valkey_fast.E005"]
    assert ids(checked({"SOCKET_CONNECT_TIMEOUT": value})) == ["django_valkey_fast.E005"]


@pytest.mark.parametrize("options", [
    {"SENTINELS": [("127.0.0.1", 26379)]},
    {"CLEAR_SCOPE": "everything"},
    {"CLIENT_SIDE_CACHE": {"MAX_ENTRIES": 0}},
    {"OPENTELEMETRY": "yes"},
    {"PROMETHEUS": {"PORT": 9100}},
])
def test_options_the_backend_cannot_take(options):
    assert ids(checked(options)) == ["django_valkey_fast.E006"]


def test_sentinel_options_with_a_sentinel_factory_or_a_subclass_are_fine(settings):
    settings.DJANGO_VALKEY_CONNECTION_FACTORY = "django_valkey_fast.pool.SentinelConnectionFactory"
    assert checked({"SENTINELS": [("127.0.0.1", 26379)]}, location="valkey://mymaster/0") == []
    del settings.DJANGO_VALKEY_CONNECTION_FACTORY
    assert checked({"SENTINELS": [("127.0.0.1", 26379)],
                    "CLIENT_CLASS": "tests.test_checks.MyClient"},
                   location="valkey://mymaster/0") == []


def test_sentinel_options_with_a_sentinel_client_are_fine():
    assert checked({"SENTINELS": [("127.0.0.1", 26379)],
                    "CLIENT_CLASS": "django_valkey_fast.client.SentinelClient"},
                   location="valkey://mymaster/0") == []


def test_pickle_on_a_shared_database_is_a_warning():
    (warning,) = checked({"CLEAR_SCOPE": "prefix"}, KEY_PREFIX="site")
    assert warning.id == "django_valkey_fast.W001"


@pytest.mark.parametrize("kwargs, location", [
    ({"ssl_check_hostname": False}, "valkeys://cache.example.com:6380/0"),
    ({"ssl_cert_reqs": "none"}, "rediss://cache.example.com:6380/0"),
    ({}, "valkeys://cache.example.com:6380/0?ssl_check_hostname=false"),
])
def test_tls_without_host_name_checks_is_a_deploy_warning(kwargs, location):
    options = {"CONNECTION_POOL_KWARGS": kwargs}
    assert checked(options, location=location) == []  # (not without --deploy)
    assert ids(checked(options, location=location, deploy=True)) == [
        "django_valkey_fast.W002"]


@pytest.mark.parametrize("cert_reqs", [ssl.CERT_NONE, 0, "none"])
def test_every_spelling_of_no_certificate_check_is_a_deploy_warning(cert_reqs):
    options = {"CONNECTION_POOL_KWARGS": {"ssl_cert_reqs": cert_reqs}}
    assert ids(checked(options, location="valkeys://cache.example.com/0", deploy=True)) == [
        "django_valkey_fast.W002"]


def test_options_that_are_not_a_dict_are_one_error_even_with_deploy():
    assert ids(checked("nope", deploy=True)) == ["django_valkey_fast.E006"]


@pytest.mark.parametrize("option, library, extra", [
    ("OPENTELEMETRY", "opentelemetry", "otel"), ("PROMETHEUS", "prometheus_client", "prometheus")])
def test_a_missing_telemetry_library_names_the_extra(monkeypatch, option, library, extra):
    monkeypatch.setitem(sys.modules, library, None)
    (error,) = checked({option: True})
    assert error.id == "django_valkey_fast.E002" and extra in error.hint


def test_other_backends_are_not_checked():
    caches = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                          "OPTIONS": {"SOCKET_TIMEOUT": "x"}}}
    with override_settings(CACHES=caches):
        assert check_caches() == []


def test_manage_py_check_reports_them_with_the_app_installed():
    caches = {"default": {"BACKEND": BACKEND, "LOCATION": "valkey://127.0.0.1:6379/0",
                          "OPTIONS": {"SOCKET_TIMEOUT": "1"}}}
    apps = ["django.contrib.contenttypes", "django.contrib.auth", "django_valkey_fast"]
    with override_settings(CACHES=caches, INSTALLED_APPS=apps):
        assert "django_valkey_fast.E005" in ids(run_checks())
        with pytest.raises(SystemCheckError, match="django_valkey_fast.E005"):
            call_command("check")
