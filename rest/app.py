"""The REST/JSON application: the /v1 routes, health, metrics, OpenAPI, the console's static files,
and one error shape for everything that goes wrong."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources
from typing import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException
from starlette.responses import Response

from facesearch import __version__
from facesearch.service import ServiceError

from . import schemas
from .bodies import BodyError
from .errors import error, status_of
from .guard import CODES, Guard
from .routes import BODY_MODELS, router

log = logging.getLogger("facesearch.rest")
STATIC = "static"   # the web console, package data of facesearch.rest (served at /)


@dataclass(frozen=True)
class HttpOptions:
    auth_token: str = ""
    max_body_bytes: int = 8 << 20
    max_concurrent: int = 256
    max_files: int = 257                      # file parts in one multipart body
    metrics: object | None = None             # a prometheus_client registry: served at /metrics
    observe: Callable[[str, str, float], None] | None = None   # (method, status name, seconds)


def create_app(options: HttpOptions = HttpOptions()) -> FastAPI:
    """The app; set app.state.service once the service is loaded (until then /v1 answers 503), and
    app.state.serving for /readyz."""
    app = FastAPI(title="facesearch", version=__version__, openapi_url="/openapi.json", docs_url="/docs",
                  redoc_url=None, description="Face identity search: the REST/JSON form of the facesearch.v1 gRPC "
                  "API (docs/api.md). Errors are {\"code\", \"message\"} with the gRPC status name.")
    app.state.service = None
    app.state.serving = False
    app.state.options = options
    app.include_router(router)
    _health(app, options)
    _errors(app)
    app.openapi = lambda: _openapi(app)
    static = resources.files("facesearch.rest") / STATIC
    if static.is_dir():
        app.mount("/", StaticFiles(directory=str(static), html=True), name="console")
    app.add_middleware(Guard, auth_token=options.auth_token, max_body_bytes=options.max_body_bytes,
                       max_concurrent=options.max_concurrent, observe=options.observe)
    return app


def _health(app: FastAPI, options: HttpOptions) -> None:
    @app.get("/healthz", response_model=schemas.Health, operation_id="healthz", summary="Live: the process answers")
    async def healthz():
        return {"status": "SERVING"}

    @app.get("/readyz", response_model=schemas.Health, operation_id="readyz",
             responses={503: {"model": schemas.Error, "description": "loading, or a batcher or the index is down"}},
             summary="Ready: the model and gallery are loaded and the batchers run")
    async def readyz(request: Request):
        if request.app.state.serving:
            return {"status": "SERVING"}
        return error(503, "UNAVAILABLE", "not serving: loading the model and gallery, or a backend is down "
                     "(see the server log)")

    if options.metrics is not None:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        @app.get("/metrics", include_in_schema=False)
        async def metrics():
            return Response(generate_latest(options.metrics), media_type=CONTENT_TYPE_LATEST)


def _errors(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(request, exc):
        status, code, message = status_of(exc)
        return error(status, code, message)

    @app.exception_handler(BodyError)
    async def body_error(request, exc):
        return error(422, "INVALID_ARGUMENT", str(exc))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc):
        parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]]
        return error(422, "INVALID_ARGUMENT", "; ".join(parts) or "invalid request")

    @app.exception_handler(HTTPException)
    async def http_error(request, exc):
        return error(exc.status_code, CODES.get(exc.status_code, "UNKNOWN"), str(exc.detail), exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request, exc):   # a bug: logged with its traceback; the caller sees only its type
        log.error("unexpected error in %s %s", request.method, request.url.path, exc_info=exc)
        return error(500, "INTERNAL", f"internal error ({type(exc).__name__}); see the server log")


def _openapi(app: FastAPI) -> dict:
    """FastAPI's document, plus the body models of the routes that parse their own bodies (JSON or
    multipart), and the bearer token."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    _, defs = models_json_schema([(m, "validation") for m in BODY_MODELS],
                                 ref_template="#/components/schemas/{model}")
    components = doc.setdefault("components", {})
    components.setdefault("schemas", {}).update(defs.get("$defs", {}))
    if app.state.options.auth_token:   # the document says what this server requires
        components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer",
                                                    "description": "FACESEARCH_AUTH_TOKEN"}}
        for path, operations in doc["paths"].items():
            for operation in operations.values():
                operation["security"] = [] if path in ("/healthz", "/readyz") else [{"bearer": []}]
    app.openapi_schema = doc
    return doc
