"""Settings of the served test project; the cache location comes from the environment."""

import os

SECRET_KEY = "django-valkey-fast-webapp"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.webapp.urls"
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django.contrib.sessions"]
MIDDLEWARE = [
    "django.middleware.cache.UpdateCacheMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.cache.FetchFromCacheMiddleware",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3",
                         "NAME": os.environ.get("WEBAPP_DB", ":memory:")}}
CACHES = {
    "default": {
        "BACKEND": "django_valkey_fast.cache.ValkeyCache",
        "LOCATION": os.environ["WEBAPP_CACHE_LOCATION"],
        "KEY_PREFIX": "webapp",
        "OPTIONS": {"CONNECTION_POOL_KWARGS": {"client_name": "webapp"}},
    }
}
CACHE_MIDDLEWARE_SECONDS = 60
CACHE_MIDDLEWARE_KEY_PREFIX = "site"
SESSION_ENGINE = os.environ.get("WEBAPP_SESSION_ENGINE", "django.contrib.sessions.backends.cache")
LOGGING = {
    "version": 1,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}
