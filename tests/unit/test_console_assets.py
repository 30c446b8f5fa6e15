"""The web console's files (rest/static), read as text: they ship inside the package and work offline.

The browser tests (tests/e2e/test_console.py) check what the pages do; these check, without a
browser, what they must never need: another host, a build step, a cookie or localStorage.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from importlib import resources

STATIC = resources.files("facesearch.rest") / "static"
ASSETS = ("index.html", "app.js", "style.css")


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.links += [value for name, value in attrs if name in ("src", "href") and value]


def text(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


def test_the_page_loads_only_its_own_files():
    parser = _Links()
    parser.feed(text("index.html"))
    local = [link for link in parser.links if not link.startswith(("#", "data:"))]
    assert sorted(local) == ["app.js", "style.css"], parser.links
    for name in ASSETS:
        assert (STATIC / name).is_file(), f"{name} is not in the installed package"


def test_nothing_is_fetched_from_another_host():
    for name in ASSETS:
        found = re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}", text(name))
        assert not found, f"{name} refers to another host: {found}"
        assert "@import" not in text(name)


def test_the_token_lives_in_session_storage_and_the_authorization_header_only():
    js = text("app.js")
    assert "sessionStorage" in js and '"Bearer " + token()' in js
    assert "localStorage" not in js and "document.cookie" not in js
    assert 'credentials: "omit"' in js    # and no cookie goes with a request either
