"""One table from the service's error kinds to HTTP statuses, and errors as {"code", "message"}
(the gRPC status names, so a caller reads the same codes from either transport)."""

from __future__ import annotations

from starlette.responses import JSONResponse

from facesearch.service import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Overloaded,
    ResourceExhausted,
    Unavailable,
    as_service_error,
)

# Most specific first: Overloaded is a ResourceExhausted.
STATUSES = [
    (InvalidArgument, 400, "INVALID_ARGUMENT"),
    (NotFound, 404, "NOT_FOUND"),
    (FailedPrecondition, 409, "FAILED_PRECONDITION"),
    (Overloaded, 429, "RESOURCE_EXHAUSTED"),        # the server is full: retry later
    (ResourceExhausted, 413, "RESOURCE_EXHAUSTED"),  # over a size limit: body, pixels, images per enrolment
    (Unavailable, 503, "UNAVAILABLE"),
]
# What every /v1 operation may answer besides its success (the OpenAPI document lists them).
ERROR_STATUSES = {
    400: "bad input (INVALID_ARGUMENT)",
    401: "a token is required and missing or wrong (UNAUTHENTICATED)",
    404: "no such identity or face, or path (NOT_FOUND)",
    409: "an embedding of another model, or a conflicting change (FAILED_PRECONDITION)",
    413: "a body, image or enrolment over its limit (RESOURCE_EXHAUSTED)",
    422: "a body or parameter that does not fit the schema (INVALID_ARGUMENT)",
    429: "the server is full; retry later (RESOURCE_EXHAUSTED)",
    503: "still loading the model and gallery, or a backend is down (UNAVAILABLE)",
}
LOADING = "the server is loading its model and gallery; retry shortly"


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status, headers=headers)


def status_of(exc: BaseException) -> tuple[int, str, str] | None:
    """(HTTP status, code name, message) for a known error; None for an unexpected one (500)."""
    known = as_service_error(exc)
    for kind, status, code in STATUSES:
        if isinstance(known, kind):
            return status, code, str(known)
    return None
