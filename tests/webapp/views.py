"""Views exercising the cache from sync and async code on one alias."""

from django.core.cache import cache
from django.http import JsonResponse
from django.views.decorators.cache import cache_page, never_cache


async def async_page(request):
    """Cached by the site-wide cache middleware; counts real renders."""
    renders = await cache.aincr("renders:async_page", ignore_key_check=True)
    return JsonResponse({"renders": renders})


def sync_page(request):
    renders = cache.incr("renders:sync_page", ignore_key_check=True)
    return JsonResponse({"renders": renders})


@cache_page(60, key_prefix="decorated")
async def async_decorated(request):
    renders = await cache.aincr("renders:async_decorated", ignore_key_check=True)
    return JsonResponse({"renders": renders})


@never_cache
async def async_session(request):
    visits = await request.session.aget("visits", 0) + 1
    await request.session.aset("visits", visits)
    together = await cache.aget_many(["renders:async_page", "renders:sync_page"])
    return JsonResponse({"visits": visits, "renders": together})


@never_cache
def sync_session(request):
    request.session["visits"] = request.session.get("visits", 0) + 1
    return JsonResponse({"visits": request.session["visits"]})
