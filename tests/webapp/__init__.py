"""A small Django project served by real ASGI and WSGI servers in the tests."""
