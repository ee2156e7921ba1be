"""The page, and the toolbar's own URLs."""

from debug_toolbar.toolbar import debug_toolbar_urls
from django.core.cache import caches
from django.http import HttpResponse
from django.urls import path


def page(request):
    """A page that uses the cache: a set, a hit, a miss and a get_many."""
    cache = caches["default"]
    cache.set("toolbar-key", "value")
    found = cache.get("toolbar-key")
    cache.get("toolbar-missing")
    cache.get_many(["toolbar-key", "toolbar-missing"])
    return HttpResponse(f"<html><body><p>{found}</p></body></html>")


urlpatterns = [path("page", page), *debug_toolbar_urls()]
