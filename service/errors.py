"""The service's typed errors. Transports map each kind to their own codes, and nothing else."""

from __future__ import annotations

import functools
import inspect
import logging
from typing import Any, Awaitable, Callable, Coroutine, ParamSpec, TypeVar

from facesearch.embedder import ImageError, ImageTooLargeError
from facesearch.gallery import (
    CalibrationBudgetError,
    DATABASE_UNAVAILABLE,
    CalibrationError,
    IndexUnavailableError,
    InvalidInputError,
    InvalidTargetError,
    ModelMismatchError,
    NotFoundError,
)

P = ParamSpec("P")
R = TypeVar("R")

from .batcher import BatcherStopped, QueueFull

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """A request the service refuses; the message is safe to show the caller."""


class InvalidArgument(ServiceError):
    pass


class NotFound(ServiceError):
    pass


class FailedPrecondition(ServiceError):
    pass


class ResourceExhausted(ServiceError):
    pass


class Overloaded(ResourceExhausted):
    """The server is full (its queues are): retry later. HTTP tells it apart (429) from a request
    over a size limit (413); gRPC answers RESOURCE_EXHAUSTED for both."""


class Unavailable(ServiceError):
    pass


# Domain errors of the embedder and gallery, by what they mean to a caller (most specific first).
_DOMAIN = [
    (ImageTooLargeError, ResourceExhausted),
    (ImageError, InvalidArgument),
    (InvalidInputError, InvalidArgument),
    (InvalidTargetError, InvalidArgument),
    (ModelMismatchError, FailedPrecondition),
    (CalibrationBudgetError, ResourceExhausted),
    (CalibrationError, FailedPrecondition),
    (NotFoundError, NotFound),
    (QueueFull, Overloaded),
    (BatcherStopped, Unavailable),
    (IndexUnavailableError, Unavailable),
]


def as_service_error(exc: BaseException) -> ServiceError | None:
    """exc as a ServiceError, or None when it is unexpected (a bug or an outage: INTERNAL)."""
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, DATABASE_UNAVAILABLE):   # its text would show SQL: name the kind only
        cause = getattr(exc, "orig", None) or exc
        return Unavailable(f"the gallery's database is unavailable ({type(cause).__name__}); retry later")
    if isinstance(exc, IndexUnavailableError):   # the URI and the backend's error stay in the log
        log.warning("%s", exc)
        return Unavailable(exc.public)
    for domain, kind in _DOMAIN:
        if isinstance(exc, domain):
            return kind(str(exc))
    return None


def translated(method: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Raise known domain errors of an async service method as ServiceErrors."""
    assert inspect.iscoroutinefunction(method)

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except ServiceError:
            raise
        except Exception as exc:
            known = as_service_error(exc)
            if known is None:
                raise
            raise known from exc

    return wrapper
