"""One alias behind real servers: uvicorn (ASGI) and gunicorn (WSGI), real HTTP.

The same project serves async and sync views through the site-wide cache
middleware, ``cache_page``, and cached sessions (``cache`` and ``cached_db``); the
servers' logs must stay free of errors and warnings (un-awaited coroutines, unclosed
sockets, loop errors).
"""

import concurrent.futures
import http.cookiejar
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
SESSION_ENGINES = ["django.contrib.sessions.backends.cache",
                   "django.contrib.sessions.backends.cached_db"]


def command(kind, port):
    if kind == "asgi":
        return [sys.executable, "-m", "uvicorn", "tests.webapp.asgi:application",
                "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    return [sys.executable, "-m", "gunicorn", "tests.webapp.wsgi:application",
            "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "4",
            "--log-level", "warning"]




@pytest.fixture
def started(server, tmp_path):
    processes = []

    def begin(kind, engine):
        site = start(kind, engine, server, tmp_path / f"{kind}-{len(processes)}")
        processes.append(site)
        return site

    yield begin
    for site in processes:
        site.stop()


class Site:
    """A running web server process and its log."""

    def __init__(self, process, port, log_path):
        self.process, self.port, self.log_path = process, port, log_path

    def url(self, path):
        return f"http://127.0.0.1:{self.port}/{path}"

    def log(self):
        return self.log_path.read_text()

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start(kind, engine, server, directory):
    directory.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, WEBAPP_CACHE_LOCATION=server.url, WEBAPP_SESSION_ENGINE=engine,
               WEBAPP_DB=str(directory / "db.sqlite3"), DJANGO_SETTINGS_MODULE="tests.webapp.settings",
               PYTHONWARNINGS="default", PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-m", "django", "migrate", "-v", "0"], env=env, cwd=ROOT,
                   check=True)
    port = free_port()
    log_path = directory / f"{kind}.log"
    process = subprocess.Popen(command(kind, port), env=env, cwd=ROOT,
                               stdout=log_path.open("w"), stderr=subprocess.STDOUT)
    site = Site(process, port, log_path)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{kind} server exited: {site.log()}")
        try:
            urllib.request.urlopen(site.url("sync-session"), timeout=1).read()
            return site
        except OSError:
            time.sleep(0.1)
    site.stop()
    raise RuntimeError(f"{kind} server did not start: {site.log()}")


def get_json(opener, url):
    with opener.open(url, timeout=10) as response:
        return json.loads(response.read())


def assert_clean(site):
    log = site.log()
    for marker in ("Traceback", "Warning", "never awaited", "Event loop is closed",
                   "attached to a different loop", "Error"):
        assert marker not in log, f"{marker!r} in the server log:\n{log}"


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
@pytest.mark.parametrize("engine", SESSION_ENGINES)
def test_cache_middleware_cache_page_and_sessions(started, server, kind, engine):
    site = started(kind, engine)
    opener = urllib.request.build_opener()
    for path in ("async-page", "sync-page", "async-decorated"):
        first = get_json(opener, site.url(path))
        for _ in range(3):
            assert get_json(opener, site.url(path)) == first, path  # served from the cache
        assert first["renders"] == 1, path

    browser = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    assert [get_json(browser, site.url("async-session"))["visits"] for _ in range(3)] == [1, 2, 3]
    assert get_json(browser, site.url("sync-session"))["visits"] == 4  # one session, both kinds
    other = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    assert get_json(other, site.url("async-session"))["visits"] == 1
    site.stop()
    assert_clean(site)


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_concurrent_requests(started, server, kind):
    site = started(kind, SESSION_ENGINES[0])

    def visit(_):
        browser = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        return [get_json(browser, site.url("async-session"))["visits"] for _ in range(3)]

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(visit, range(48)))
    assert results == [[1, 2, 3]] * 48
    # 144 requests; under WSGI each async view ran on its own event loop. Connections
    # stay bounded: per worker process, the sync pool (<= its threads) and the
    # connections of the loops still alive.
    # (polled: the server notices a connection the client closed a moment later)
    deadline = time.monotonic() + 5
    while server.clients_named("webapp") > 16 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.clients_named("webapp") <= 16
    site.stop()
    assert_clean(site)
