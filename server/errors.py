"""One table from domain errors to gRPC status codes (DESIGN.md §2)."""

from __future__ import annotations

import grpc

from facesearch.embedder import ImageError, ImageTooLargeError
from facesearch.gallery import (
    CalibrationError,
    InvalidEmbeddingError,
    InvalidTargetError,
    ModelMismatchError,
    NotFoundError,
)


class RequestError(Exception):
    """A bad request found by the servicer itself."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


def invalid(message: str) -> RequestError:
    return RequestError(grpc.StatusCode.INVALID_ARGUMENT, message)


def status_of(exc: BaseException) -> grpc.StatusCode | None:
    """The status for a known error; None for an unexpected one (INTERNAL)."""
    if isinstance(exc, RequestError):
        return exc.code
    if isinstance(exc, ImageTooLargeError):
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    if isinstance(exc, (ImageError, InvalidEmbeddingError, InvalidTargetError)):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(exc, (ModelMismatchError, CalibrationError)):
        return grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(exc, NotFoundError):
        return grpc.StatusCode.NOT_FOUND
    return None
