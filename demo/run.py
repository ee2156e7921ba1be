"""A small Django project on django-valkey-fast, against a Valkey server it starts.

Run it with ``bash scripts/demo.sh``. It serves three views through Django's full
request stack (cache middleware, cached sessions, ``cache_page``) and prints what
the cache did: misses, hits, a session surviving across requests, an atomic
counter, and the raw keys in the server.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.servers import Server  # noqa: E402  (the same launcher the tests use)


def configure(location):
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY="demo",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.sessions"],
        MIDDLEWARE=[
            "django.middleware.cache.UpdateCacheMiddleware",
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.cache.FetchFromCacheMiddleware",
        ],
        CACHES={
            "default": {
                "BACKEND": "django_valkey_fast.cache.ValkeyCache",
                "LOCATION": location,
                "KEY_PREFIX": "demo",
                "OPTIONS": {
                    "COMPRESSOR": "django_valkey_fast.compressors.zlib.ZlibCompressor",
                },
            }
        },
        SESSION_ENGINE="django.contrib.sessions.backends.cache",
        CACHE_MIDDLEWARE_SECONDS=30,
        DATABASES={},
    )
    django.setup()


def slow_report(request):
    from django.http import JsonResponse

    time.sleep(0.2)  # an expensive page: the cache middleware serves repeats
    return JsonResponse({"rows": list(range(50)), "made_at": time.time()})


def visit(request):
    from django.core.cache import cache
    from django.http import JsonResponse
    from django.views.decorators.cache import never_cache

    @never_cache
    def view(request):
        request.session["visits"] = request.session.get("visits", 0) + 1
        total = cache.incr("total-visits", ignore_key_check=True)
        return JsonResponse({"your_visits": request.session["visits"], "all_visits": total})

    return view(request)


urlpatterns = []


def main():
    server = Server()
    try:
        configure(server.url)
        from django.core.cache import cache
        from django.test import Client
        from django.urls import path

        import django_valkey_fast

        urlpatterns.extend([path("report", slow_report), path("visit", visit)])
        impl = "compiled" if django_valkey_fast.COMPILED else "pure-Python"
        print(f"django-valkey-fast {django_valkey_fast.__version__} ({impl}) "
              f"on a valkey-server at {server.url}")

        browser = Client()
        first_made_at = None
        for attempt in (1, 2, 3):
            started = time.perf_counter()
            response = browser.get("/report")
            took = (time.perf_counter() - started) * 1000
            made_at = response.json()["made_at"]
            first_made_at = first_made_at or made_at
            source = "the cache" if made_at == first_made_at and attempt > 1 else "the view"
            print(f"GET /report #{attempt}: {response.status_code} in {took:6.1f} ms "
                  f"(from {source})")

        for _ in range(3):
            data = browser.get("/visit").json()
        print(f"GET /visit x3: session says {data['your_visits']} visits, "
              f"atomic counter says {data['all_visits']}")
        other = Client().get("/visit").json()
        print(f"another browser: its own session ({other['your_visits']} visit), "
              f"shared counter {other['all_visits']}")

        cache.set("greeting", {"hello": "world"}, timeout=60)
        print(f"cache.get('greeting') = {cache.get('greeting')}, ttl = {cache.ttl('greeting')}s")
        keys = sorted(key.decode() for key in cache.client.get_client().keys("*"))
        print(f"{len(keys)} keys in the server, e.g. {keys[0]!r}")
        print("demo finished: every request above went through django-valkey-fast.")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
