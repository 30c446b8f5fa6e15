"""One table from the service's error kinds to gRPC status codes (docs/architecture.md#status-codes)."""

from __future__ import annotations

import grpc

from facesearch.service import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
    as_service_error,
)

CODES = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
}


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str] | None:
    """The status and message for a known error; None for an unexpected one (INTERNAL)."""
    known = as_service_error(exc)
    for kind, code in CODES.items():
        if isinstance(known, kind):
            return code, str(known)
    return None
