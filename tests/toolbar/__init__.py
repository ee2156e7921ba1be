"""A page rendered with the real Django Debug Toolbar (tests/test_debug_toolbar.py)."""
