"""A database that cannot be reached is UNAVAILABLE to a caller, never INTERNAL, and its SQL is not shown."""

from __future__ import annotations

from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from facesearch.service.errors import Unavailable, as_service_error


class ConnectionTimeout(Exception):
    pass


def test_database_errors_are_unavailable_without_their_sql():
    lost = as_service_error(OperationalError("SELECT value FROM gallery_meta WHERE key = %s", {"key": "x"},
                                             ConnectionTimeout("connection timeout expired")))
    assert isinstance(lost, Unavailable) and "ConnectionTimeout" in str(lost) and "SELECT" not in str(lost)
    assert isinstance(as_service_error(PoolTimeoutError("QueuePool limit reached")), Unavailable)
