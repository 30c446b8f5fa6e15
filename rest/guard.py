"""What every HTTP request passes before the API sees it: the bearer token, the body-size limit and
the limit on requests in flight; then one metrics sample and one log line per request.

A plain ASGI middleware (no per-request task or copy beyond the body it buffers).
"""

from __future__ import annotations

import hmac
import logging
import time
from typing import Callable

from .errors import error

log = logging.getLogger("facesearch.rest")
# Everything else (the console's static files, /healthz, /readyz) is open.
PROTECTED = ("/v1/", "/v1:", "/metrics", "/openapi.json", "/docs", "/redoc")
CODES = {200: "OK", 204: "OK", 400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 404: "NOT_FOUND",
         405: "UNIMPLEMENTED", 409: "FAILED_PRECONDITION", 413: "RESOURCE_EXHAUSTED", 422: "INVALID_ARGUMENT",
         429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}


def protected(path: str) -> bool:
    return path.startswith(PROTECTED) or path == "/v1"


class Guard:
    def __init__(self, app, *, auth_token: str = "", max_body_bytes: int = 8 << 20, max_concurrent: int = 256,
                 observe: Callable[[str, str, float], None] | None = None):
        self.app = app
        self.expected = f"Bearer {auth_token}".encode() if auth_token else None
        self.max_body_bytes = max_body_bytes
        self.max_concurrent = max_concurrent
        self.observe = observe
        self.in_flight = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), [0]

        async def sending(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        guarded = protected(scope["path"])
        try:
            if guarded and (refusal := self._refusal(scope)) is not None:
                return await refusal(scope, receive, sending)
            body = await self._body(receive)
            if body is None:
                return await error(413, "RESOURCE_EXHAUSTED", f"the request body is over the limit of "
                                   f"{self.max_body_bytes} bytes (--max-message-bytes)")(scope, receive, sending)
            if guarded and self.in_flight >= self.max_concurrent:
                return await error(429, "RESOURCE_EXHAUSTED", f"the server has {self.in_flight} requests in flight, "
                                   "its limit (--max-concurrent-rpcs); retry later",
                                   {"Retry-After": "1"})(scope, receive, sending)
            self.in_flight += 1
            try:
                await self.app(scope, _replay(body, receive), sending)
            finally:
                self.in_flight -= 1
        finally:
            if guarded:
                self._record(scope, status[0], time.perf_counter() - start)

    def _refusal(self, scope):
        if self.expected is None:
            return None
        for key, value in scope["headers"]:
            if key == b"authorization":
                # compare_digest: the time taken does not reveal how much of the token matched
                if hmac.compare_digest(value, self.expected):
                    return None
                return error(401, "UNAUTHENTICATED", "the bearer token is wrong", {"WWW-Authenticate": "Bearer"})
        return error(401, "UNAUTHENTICATED", "this server needs an 'Authorization: Bearer <token>' header",
                     {"WWW-Authenticate": "Bearer"})

    async def _body(self, receive) -> bytes | None:
        """The whole body, or None once it passes the limit (nothing more is read)."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":   # the client went away
                return b""
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _record(self, scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        name = f"{scope['method']} {route.path if route is not None else 'unmatched'}"
        code = CODES.get(status, str(status))
        if self.observe is not None:
            self.observe(name, code, seconds)
        log.info("http", extra={"rpc": name, "code": code, "status": status, "ms": round(seconds * 1000, 2),
                                "peer": "%s:%s" % tuple(scope.get("client") or ("", ""))})


def _replay(body: bytes, receive):
    sent = False

    async def replayed():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
