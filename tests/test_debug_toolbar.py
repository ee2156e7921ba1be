"""The real Django Debug Toolbar's cache panel shows this backend's calls in a
rendered page (the toolbar wraps the backend instance's sync methods; nothing of it
is mocked). Invariant: every cache call a view makes is listed, with its key."""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.core.cache import caches
from django.test import Client, override_settings

TOOLBAR_SETTINGS = {
    "DEBUG": True,
    "INSTALLED_APPS": ["django.contrib.contenttypes", "django.contrib.auth",
                       "django.contrib.staticfiles", "debug_toolbar"],
    "MIDDLEWARE": ["debug_toolbar.middleware.DebugToolbarMiddleware"],
    "ROOT_URLCONF": "tests.toolbar.urls",
    "STATIC_URL": "/static/",
    "TEMPLATES": [{"BACKEND": "django.template.backends.django.DjangoTemplates",
                   "APP_DIRS": True, "OPTIONS": {}}],
    "DEBUG_TOOLBAR_CONFIG": {"SHOW_TOOLBAR_CALLBACK": lambda request: True,
                             "IS_RUNNING_TESTS": False, "RENDER_PANELS": True,
                             "DISABLE_PANELS": set()},
}


@pytest.fixture
def toolbar_page(server):
    cache_settings = {"default": {"BACKEND": "django_valkey_fast.cache.ValkeyCache",
                                  "LOCATION": server.url,
                                  "KEY_PREFIX": "toolbar"}}
    with override_settings(CACHES=cache_settings, **TOOLBAR_SETTINGS):
        caches["default"].delete("toolbar-key")
        yield Client().get("/page")


def test_the_cache_panel_lists_every_call_of_the_view(toolbar_page):
    html = toolbar_page.content.decode()
    assert toolbar_page.status_code == 200 and "djDebug" in html  # the toolbar is there
    panel = html[html.index('id="CachePanel"'):]
    words = [word for word in re.sub(r"<[^>]*>", " ", unescape(panel)).split() if word]
    summary = words.index("Summary")
    # Total calls, total time, hits, misses: four calls, one get hit, one get miss.
    assert words[summary + 9] == "4"
    calls = " ".join(words[words.index("Calls"):])
    for call in ("set ('toolbar-key', 'value')", "get ('toolbar-key',)",
                 "get ('toolbar-missing',)",
                 "get_many (['toolbar-key', 'toolbar-missing'],)"):
        assert call in calls, calls[:2000]
    assert calls.count("default (ValkeyCache)") == 4
