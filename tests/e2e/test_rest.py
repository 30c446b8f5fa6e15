"""REST and gRPC give the same answers for the same calls: one real server (the session's), both
transports, every use case, and the same errors mapped to HTTP statuses (docs/api.md#errors).

Identity ids here start with "rest-" so that other tests sharing the server are not disturbed."""

from __future__ import annotations

import base64
from datetime import datetime

import grpc
import httpx
import numpy as np
import pytest
from google.protobuf.json_format import MessageToDict

from facesearch.client import FaceSearchClient

from tests.helpers import png_bomb, sample_photo

INT64 = {"identity_count", "face_count", "changes_since_calibration", "identities", "genuine_comparisons",
         "impostor_comparisons", "faces"}


@pytest.fixture(scope="module")
def rest(server):
    with httpx.Client(base_url=server.http_url, timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def rpc(server):
    with FaceSearchClient(server.target, timeout=120) as c:
        yield c


def plain(message) -> dict:
    """A proto message as the REST API writes it: proto field names, every field, numbers as numbers."""
    return normal(MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True))


def normal(value, key: str = ""):
    """Floats to 4 places (gRPC sends float32), int64 strings as numbers, times as datetimes; a null
    (an unset message field in proto, e.g. the box of an embedding query) left out."""
    if isinstance(value, dict):
        return {k: normal(v, k) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [normal(v, key) for v in value]
    if key in INT64 and isinstance(value, str):
        return int(value)
    if key == "created_at":
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, float):
        return round(value, 4)
    return value


def ok(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    return normal(response.json())


def grpc_error(call, *args, **kwargs) -> str:
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kwargs)
    return info.value.code().name


def rest_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message"} and body["message"]
    return body["code"]


def photos(samples, person: str, split: str = "train", n: int = 2) -> list[bytes]:
    return [p.read_bytes() for p in sorted((samples / split / person).glob("*.jpg"))[:n]]


@pytest.fixture(scope="module")
def enrolled(rest, rpc, samples):
    """rest-ben enrolled through REST (multipart), rest-elton through gRPC, the same kind of photos."""
    files = [("images", (f"{i}.jpg", data, "image/jpeg")) for i, data in enumerate(photos(samples, "ben_afflek"))]
    r = ok(rest.post("/v1/identities", data={"identity_id": "rest-ben", "display_name": "Ben",
                                               "metadata": '{"team": "a"}'}, files=files))
    assert r["created"] and len(r["face_ids"]) == 2 and not r["rejected"]
    g = rpc.enroll("rest-elton", photos(samples, "elton_john"), display_name="Elton", metadata={"team": "b"})
    assert g.created and len(g.face_ids) == 2
    # the same enrolment again through each transport: duplicates, answered alike
    again_rest = ok(rest.post("/v1/identities", json={
        "identity_id": "rest-elton", "images": [base64.b64encode(d).decode() for d in photos(samples, "elton_john")]}))
    again_rpc = plain(rpc.enroll("rest-elton", photos(samples, "elton_john")))
    assert again_rest == again_rpc and again_rest["duplicates"] == [0, 1]
    return r


def test_identify_verify_and_embed_agree(rest, rpc, samples, enrolled):
    photo = sample_photo(samples, "val", "ben_afflek")
    by_rpc = plain(rpc.identify(photo, top_k=2))
    assert ok(rest.post("/v1/identify", files={"image": ("a.jpg", photo)}, data={"top_k": "2"})) == by_rpc
    assert ok(rest.post("/v1/identify", json={"image": base64.b64encode(photo).decode(), "top_k": 2})) == by_rpc
    assert by_rpc["faces"][0]["known"] and by_rpc["faces"][0]["matches"][0]["identity_id"] == "rest-ben"

    crop = ok(rest.post("/v1/embed", files={"image": ("a.jpg", photo)}))
    assert crop == plain(rpc.embed(photo))
    vector = rest.post("/v1/embed", files={"image": ("a.jpg", photo)}).json()["faces"][0]["embedding"]
    assert ok(rest.post("/v1/identify", json={"embedding": vector, "top_k": 3})) == plain(
        rpc.identify(embedding=np.array(vector["values"], np.float32), model_id=vector["model_id"], top_k=3))

    for person in ("rest-ben", "rest-elton"):
        assert ok(rest.post("/v1/verify", files={"image": ("a.jpg", photo)}, data={"identity_id": person})) == plain(
            rpc.verify(person, photo))
    assert ok(rest.get("/v1/info")) == plain(rpc.info())


def test_identity_reads_and_admin_writes_agree(rest, rpc, samples, enrolled):
    for who in ("rest-ben", "rest-elton"):
        assert ok(rest.get(f"/v1/identities/{who}")) == plain(rpc.get_identity(who))
        assert ok(rest.get(f"/v1/identities/{who}/faces", params={"page_size": 1})) == plain(
            rpc.list_faces(who, page_size=1))
    page = ok(rest.get("/v1/identities", params={"prefix": "rest-", "page_size": 1}))
    assert page == plain(rpc.list_identities(1, prefix="rest-"))
    assert ok(rest.get("/v1/identities", params={"prefix": "rest-", "page_token": page["next_page_token"]})) == plain(
        rpc.list_identities(0, page["next_page_token"], prefix="rest-"))

    face = enrolled["face_ids"][0]
    record = ok(rest.get(f"/v1/faces/{face}"))
    assert record == plain(rpc.list_faces("rest-ben", page_size=1).faces[0]) and record["has_image"]
    image = rest.get(f"/v1/faces/{face}/image")
    assert image.headers["content-type"] == "image/jpeg" and image.content == rpc.face_image(face)

    # PATCH sets what it is given, and null or empty clears; gRPC sees it
    renamed = ok(rest.patch("/v1/identities/rest-ben", json={"display_name": "Ben A."}))
    assert renamed["display_name"] == "Ben A." and renamed["metadata"] == {"team": "a"}
    assert ok(rest.patch("/v1/identities/rest-ben", json={"metadata": None})) == plain(rpc.get_identity("rest-ben"))
    assert plain(rpc.get_identity("rest-ben"))["metadata"] == {}

    # move one face through REST, merge through gRPC; both views agree at each step
    moved = ok(rest.post("/v1/faces:move", json={"face_ids": [face], "target_identity_id": "rest-moved",
                                                   "create_if_missing": True}))
    assert moved == {"faces_moved": 1}
    assert ok(rest.get("/v1/identities/rest-moved")) == plain(rpc.get_identity("rest-moved"))
    assert ok(rest.post("/v1/identities/rest-ben:merge", json={"source_ids": ["rest-moved"]})) == {"faces_moved": 1}
    assert rpc.get_identity("rest-ben").face_count == 2
    assert grpc_error(rpc.get_identity, "rest-moved") == rest_error(rest.get("/v1/identities/rest-moved"), 404)


def test_the_same_errors_with_their_http_statuses(rest, rpc, samples, enrolled):
    cases = [  # (gRPC call, REST call, HTTP status)
        (lambda: rpc.get_identity("rest-nobody"), lambda: rest.get("/v1/identities/rest-nobody"), 404),
        (lambda: rpc.delete_face("999999999"), lambda: rest.delete("/v1/faces/999999999"), 404),
        (lambda: rpc.delete_face("x"), lambda: rest.delete("/v1/faces/x"), 400),
        (lambda: rpc.identify(b"not an image"),
         lambda: rest.post("/v1/identify", files={"image": ("a", b"nope")}), 400),
        (lambda: rpc.identify(embedding=[0.1] * 128, model_id="another-model"),
         lambda: rest.post("/v1/identify", json={"embedding": {"values": [0.1] * 128, "model_id": "another-model"}}),
         409),
        (lambda: rpc.identify(png_bomb()), lambda: rest.post("/v1/identify", files={"image": ("b.png", png_bomb())}),
         413),
        (lambda: rpc.identify(sample_photo(samples), top_k=5000),
         lambda: rest.post("/v1/identify", files={"image": ("a.jpg", sample_photo(samples))}, data={"top_k": "5000"}),
         400),
        (lambda: rpc.enroll("rest-bad\x00id", [sample_photo(samples)]),
         lambda: rest.post("/v1/identities", files={"images": ("a.jpg", sample_photo(samples))},
                           data={"identity_id": "rest-bad\x00id"}), 400),
        (lambda: rpc.merge_identities(["rest-ben"], "rest-ben"),
         lambda: rest.post("/v1/identities/rest-ben:merge", json={"source_ids": ["rest-ben"]}), 400),
    ]
    for call_rpc, call_rest, status in cases:
        assert grpc_error(call_rpc) == rest_error(call_rest(), status)
    too_big = rest.post("/v1/identify", files={"image": ("a.jpg", b"\xff" * (9 << 20))})
    assert rest_error(too_big, 413) == "RESOURCE_EXHAUSTED"


def test_deletes_agree(rest, rpc, enrolled):
    faces = rpc.get_identity("rest-elton").face_ids
    assert ok(rest.delete(f"/v1/faces/{faces[0]}")) == {}
    assert list(rpc.get_identity("rest-elton").face_ids) == list(faces[1:])
    assert ok(rest.delete("/v1/identities/rest-elton")) == {"faces_deleted": len(faces) - 1}
    assert grpc_error(rpc.get_identity, "rest-elton") == "NOT_FOUND"


def test_health_readiness_and_metrics_on_the_http_port(rest, enrolled):
    assert ok(rest.get("/healthz")) == {"status": "SERVING"} and ok(rest.get("/readyz")) == {"status": "SERVING"}
    assert rest.get("/v1/identities/rest-nobody").status_code == 404
    metrics = rest.get("/metrics")   # the session's server has --metrics-port: the same registry here
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    assert 'facesearch_requests_total{code="OK",method="POST /v1/identities"}' in metrics.text
    assert 'facesearch_requests_total{code="NOT_FOUND",method="GET /v1/identities/{identity_id}"}' in metrics.text
    assert 'method="Enroll"' in metrics.text   # gRPC's calls in the same counter
