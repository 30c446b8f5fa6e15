"""The REST adapter's own rules, without a model: the guard (token, body size, requests in flight),
the error table and shape, readiness, and the OpenAPI document's coverage of the DESIGN paths.
What the endpoints answer with the real service is in tests/e2e/test_rest.py."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from facesearch.embedder import ImageTooLargeError
from facesearch.rest import HttpOptions, create_app
from facesearch.rest.errors import status_of
from facesearch.service import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted, Unavailable
from facesearch.service.batcher import QueueFull

TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# The shared design's "Third wave: REST/JSON" contract: every path and method.
DESIGN = {
    "/v1/identify": {"post"}, "/v1/verify": {"post"}, "/v1/embed": {"post"}, "/v1/calibrate": {"post"},
    "/v1/info": {"get"}, "/v1/identities": {"get", "post"}, "/v1/identities/{identity_id}": {"get", "patch", "delete"},
    "/v1/identities/{identity_id}/faces": {"get", "post"}, "/v1/identities/{identity_id}:merge": {"post"},
    "/v1/faces:move": {"post"}, "/v1/faces/{face_id}": {"get", "delete"}, "/v1/faces/{face_id}/image": {"get"},
    "/healthz": {"get"}, "/readyz": {"get"},
    # issue #23: unknown faces
    "/v1/unknown/clusters": {"get", "delete"}, "/v1/unknown/clusters/{cluster_id}": {"delete"},
    "/v1/unknown/clusters/{cluster_id}:enroll": {"post"}, "/v1/unknown/faces/{face_id}/image": {"get"},
}


@pytest.fixture(scope="module")
def client():
    return TestClient(create_app(HttpOptions(auth_token=TOKEN, max_body_bytes=4096)))


def test_the_document_has_every_design_path_and_documents_its_errors(client):
    doc = client.get("/openapi.json", headers=AUTH).json()
    assert {path: set(ops) for path, ops in doc["paths"].items()} == DESIGN
    for path, ops in doc["paths"].items():
        for op in ops.values():
            if path.startswith("/v1"):
                assert {"400", "401", "404", "409", "413", "422", "429", "503"} <= set(op["responses"]), path
    identify = doc["paths"]["/v1/identify"]["post"]["requestBody"]["content"]
    assert set(identify) == {"application/json", "multipart/form-data"}
    assert identify["multipart/form-data"]["schema"]["properties"]["image"]["format"] == "binary"


def test_health_is_open_and_readiness_waits_for_the_service(client):
    assert client.get("/healthz").json() == {"status": "SERVING"}
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json()["code"] == "UNAVAILABLE"


@pytest.mark.parametrize("headers, message", [({}, "needs an 'Authorization: Bearer"),
                                              ({"Authorization": "Bearer wrong"}, "wrong"),
                                              ({"Authorization": TOKEN}, "wrong")])
def test_the_token_is_required_everywhere_but_health(client, headers, message):
    for method, path in (("GET", "/v1/info"), ("POST", "/v1/identify"), ("GET", "/openapi.json"), ("GET", "/docs"),
                         ("GET", "/v1/no-such-thing")):
        r = client.request(method, path, headers=headers)
        assert r.status_code == 401, (path, r.text)
        assert r.json()["code"] == "UNAUTHENTICATED" and message in r.json()["message"]
        assert r.headers["www-authenticate"] == "Bearer"


def test_loading_answers_503_with_the_token(client):
    r = client.get("/v1/info", headers=AUTH)
    assert r.status_code == 503 and r.json() == {
        "code": "UNAVAILABLE", "message": "the server is loading its model and gallery; retry shortly"}


def test_a_body_over_the_limit_is_413_before_anything_reads_it(client):
    r = client.post("/v1/identify", headers=AUTH, content=b"x" * 5000)
    assert r.status_code == 413 and r.json()["code"] == "RESOURCE_EXHAUSTED" and "4096 bytes" in r.json()["message"]


def test_bad_bodies_are_4xx_with_the_error_shape(client):
    cases = [
        ({"content": b"{not json", "headers": {"Content-Type": "application/json"}}, 422, "not valid JSON"),
        ({"content": b"[" * 1500 + b"]" * 1500, "headers": {"Content-Type": "application/json"}}, 422, "JSON"),
        ({"files": {"image": ("a.jpg", b"x")}, "data": {"embedding": "[" * 1500}}, 422, "embedding"),
        ({"json": {"top_k": -1}}, 422, "top_k"),
        ({"json": {"surprise": 1}}, 422, "surprise"),
        ({"json": {"max_distance": "NaN"}}, 422, "max_distance"),
        ({"json": {"image": "%%%"}}, 400, "not valid base64"),
        ({"content": b"a=b", "headers": {"Content-Type": "text/plain"}}, 400, "multipart/form-data"),
        ({"files": {"image": ("a.jpg", b"x")}, "data": {"top_k": "many"}}, 422, "top_k"),
        ({"files": {"top_k": ("a", b"1")}, "data": {"image": "aGVsbG8="}}, 422, "image: a file part"),
    ]
    for kwargs, status, words in cases:
        headers = {**AUTH, **kwargs.pop("headers", {})}
        r = client.post("/v1/identify", headers=headers, **kwargs)
        assert r.status_code == status, (kwargs, r.text)
        assert r.json()["code"] == "INVALID_ARGUMENT" and words in r.json()["message"], r.text


def test_unknown_paths_and_methods_answer_json(client):
    r = client.get("/v1/nothing-here", headers=AUTH)
    assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND"
    r = client.put("/v1/info", headers=AUTH)
    assert r.status_code == 405 and set(r.json()) == {"code", "message"}


def test_requests_beyond_the_limit_in_flight_answer_429():
    full = TestClient(create_app(HttpOptions(max_concurrent=0)))
    r = full.get("/v1/info")
    assert r.status_code == 429 and r.json()["code"] == "RESOURCE_EXHAUSTED" and r.headers["retry-after"] == "1"
    assert full.get("/healthz").status_code == 200   # probes are never turned away


@pytest.mark.parametrize("error, status, code", [
    (InvalidArgument("x"), 400, "INVALID_ARGUMENT"),
    (NotFound("x"), 404, "NOT_FOUND"),
    (FailedPrecondition("x"), 409, "FAILED_PRECONDITION"),
    (ResourceExhausted("x"), 413, "RESOURCE_EXHAUSTED"),        # over a limit: images per enrolment
    (ImageTooLargeError("x"), 413, "RESOURCE_EXHAUSTED"),       # the pixel limit
    (QueueFull("x"), 429, "RESOURCE_EXHAUSTED"),                # the server is full
    (Unavailable("x"), 503, "UNAVAILABLE"),
])
def test_one_error_table(error, status, code):
    assert status_of(error) == (status, code, "x")
    assert status_of(RuntimeError("bug")) is None   # 500 INTERNAL, logged


def test_uvicorn_in_the_callers_loop_serves_on_an_ephemeral_port_and_stops():
    import asyncio
    import socket

    import httpx

    from facesearch.rest import HttpServer
    from facesearch.rest.serve import listener

    async def scenario():
        server = HttpServer(create_app(), "127.0.0.1:0")
        address = await server.start()
        try:
            async with httpx.AsyncClient(base_url=f"http://{address}") as c:
                assert (await c.get("/healthz")).json() == {"status": "SERVING"}
        finally:
            await server.stop()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://{address}/healthz", timeout=5)

    asyncio.run(scenario())
    # Nagle off on every connection (asyncio sets TCP_NODELAY only where the socket says TCP):
    # with it on, each small answer waited ~40 ms for the client's delayed ACK.
    sock = listener("127.0.0.1", 0, socket.AF_INET)
    try:
        assert sock.proto == socket.IPPROTO_TCP and sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        sock.close()


def test_the_http_port_follows_the_grpc_security_rules(monkeypatch):
    from facesearch.server.config import ServerConfig
    from facesearch.settings import SettingError

    for name in ("FACESEARCH_AUTH_TOKEN", "FACESEARCH_INSECURE", "FACESEARCH_ADDRESS", "FACESEARCH_HTTP_ADDRESS",
                 "FACESEARCH_NO_GRPC", "FACESEARCH_TLS_CERT", "FACESEARCH_TLS_KEY"):
        monkeypatch.delenv(name, raising=False)
    default = ServerConfig.from_env()
    assert default.http_address == "127.0.0.1:8080" and default.addresses == ["127.0.0.1:50051", "127.0.0.1:8080"]
    monkeypatch.setenv("FACESEARCH_HTTP_ADDRESS", "0.0.0.0:8080")   # gRPC stays on loopback
    with pytest.raises(SettingError, match="refusing to serve 0.0.0.0:8080 beyond loopback without a token"):
        ServerConfig.from_env()
    monkeypatch.setenv("FACESEARCH_AUTH_TOKEN", TOKEN)
    assert ServerConfig.from_env().plaintext_token                  # the loud warning: a token without TLS
    monkeypatch.setenv("FACESEARCH_HTTP_ADDRESS", "")
    assert ServerConfig.from_env().addresses == ["127.0.0.1:50051"]  # empty: no HTTP
    monkeypatch.setenv("FACESEARCH_NO_GRPC", "1")
    with pytest.raises(SettingError, match="--no-grpc needs FACESEARCH_HTTP_ADDRESS"):
        ServerConfig.from_env()
