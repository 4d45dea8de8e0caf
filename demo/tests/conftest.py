"""The browser fixtures of the pages' tests, shared with the demo's browser tests."""

from orgs.tests.test_browser import browser, new_page  # noqa: F401
