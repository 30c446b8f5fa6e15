"""Unit tests run without the model or a server (`make test-fast`): asking for one is a mistake."""

import pytest


def _not_here(what: str):
    pytest.fail(f"unit tests run without {what}; a test that needs it belongs in tests/integration or tests/e2e")


@pytest.fixture(scope="session")
def embedder():
    _not_here("the model")


@pytest.fixture(scope="session")
def server():
    _not_here("a server")
