"""The real facesearch-server subprocess, exercised through the Python client.

Most tests share the session's server (tests/conftest.py); the kill -9 and TLS tests start their own."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from PIL import Image

from facesearch.client import FaceSearchClient
from facesearch.testing import ServerProcess
from facesearch.v1 import facesearch_pb2 as pb

from tests.helpers import encode, png_bomb, sample_photo

CROPPED = pb.FACE_MODE_CROPPED
ENROLLED = ["chris_evans", "chris_hemsworth", "robert_downey_jr", "scarlett_johansson"]
STRANGER = "mark_ruffalo"  # the seed rejects 13/13 of his crops at 3.5 when he is not enrolled


@pytest.fixture(scope="module")
def client(server):
    with FaceSearchClient(server.target, timeout=120) as c:
        yield c


def code_of(call, *args, **kwargs) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kwargs)
    return info.value.code(), info.value.details()


@pytest.fixture(scope="module")
def avengers_enrolled(client, avengers_split):
    train, test = avengers_split
    for person in ENROLLED:
        photos = [p.read_bytes() for name, p in train if name == person]
        for start in range(0, len(photos), 10):  # PNG crops: keep each request under 8 MiB
            r = client.enroll(person, photos[start:start + 10], display_name=person.replace("_", " ").title(),
                              face_mode=CROPPED)
            assert r.created == (start == 0) and len(r.face_ids) == len(photos[start:start + 10]) and not r.rejected
        assert client.get_identity(person).face_count == len(photos)
    return test


def test_health_and_reflection(server):
    assert server.health(service="facesearch.v1.FaceSearch") == health_pb2.HealthCheckResponse.SERVING
    with grpc.insecure_channel(server.target) as ch:
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        (reply,) = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = {s.name for s in reply.list_services_response.service}
    assert "facesearch.v1.FaceSearch" in names and "grpc.health.v1.Health" in names


def test_avengers_open_set_through_the_server(client, avengers_enrolled):
    test = avengers_enrolled
    known = [(n, p) for n, p in test if n in ENROLLED]
    requests = [pb.IdentifyRequest(image=p.read_bytes(), face_mode=CROPPED) for _, p in known]
    responses = list(client.identify_stream(requests))  # in request order
    assert len(responses) == len(known)
    top1 = [r.faces[0].matches[0].identity_id if r.faces[0].known else None for r in responses]
    assert np.mean([t == n for t, (n, _) in zip(top1, known)]) >= 0.98
    strangers = [p for n, p in test if n == STRANGER]
    unknown = [not client.identify(p, face_mode=CROPPED).faces[0].known for p in strangers]
    assert np.mean(unknown) >= 0.9


def test_every_rpc(client, samples):
    photo = sample_photo(samples, person="madonna")
    r = client.enroll("madonna", [photo], display_name="Madonna", metadata={"source": "sample"})
    assert r.created and len(r.face_ids) == 1
    other = sample_photo(samples, "train", "madonna")
    v = client.verify("madonna", other)
    assert v.face_found and v.match and 0 <= v.distance < 3.5 and v.face_id == r.face_ids[0]
    emb = client.embed(other)
    assert len(emb.faces) == 1 and emb.faces[0].embedding.model_id == "facenet-128"
    values = np.array(emb.faces[0].embedding.values)
    assert values.shape == (128,) and abs(np.linalg.norm(values) - 1) < 1e-4
    by_embedding = client.identify(embedding=values, model_id="facenet-128", top_k=3)
    assert by_embedding.faces[0].matches[0].identity_id == "madonna"
    assert client.verify("madonna", embedding=values).match
    ident = client.get_identity("madonna")
    assert (ident.display_name, dict(ident.metadata), ident.face_count) == ("Madonna", {"source": "sample"}, 1)
    before = client.info()
    assert before.model_id == "facenet-128" and before.dimension == 128 and before.default_max_distance == 3.5
    assert before.index_type == "flat" and before.version
    r2 = client.enroll("madonna", [other])
    assert not r2.created and client.get_identity("madonna").face_count == 2
    client.delete_face(r2.face_ids[0])
    assert client.info().face_count == before.face_count
    assert client.delete_identity("madonna").faces_deleted == 1
    assert client.info().identity_count == before.identity_count - 1
    assert code_of(client.get_identity, "madonna")[0] == grpc.StatusCode.NOT_FOUND


def test_list_identities_pages(client):
    vec = np.random.default_rng(0).normal(size=(12, 128))
    for i, v in enumerate(vec):
        client.enroll(f"pager-{i:02d}", embeddings=[v])
    seen, token = [], ""
    while True:
        page = client.list_identities(5, token)
        assert len(page.identities) <= 5
        seen += [i.identity_id for i in page.identities]
        if not (token := page.next_page_token):
            break
    assert [s for s in seen if s.startswith("pager-")] == [f"pager-{i:02d}" for i in range(12)]
    assert code_of(client.list_identities, 5, "not-a-token")[0] == grpc.StatusCode.INVALID_ARGUMENT
    for i in range(12):
        client.delete_identity(f"pager-{i:02d}")


def test_bad_input_gets_the_right_status_and_loses_nothing(client, server, samples):
    client.enroll("keeper", [sample_photo(samples, person="jerry_seinfeld")])
    before = client.info()
    jpeg = sample_photo(samples)
    big_sender = FaceSearchClient(server.target, max_message=64 << 20)  # the server must refuse, not the client
    Inv, R, F, N = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED,
                  grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND)
    cases = [
        (Inv, "empty", lambda: client.identify(b"")),
        (Inv, "not a JPEG", lambda: client.identify(b"hello world" * 20)),
        (Inv, "truncated", lambda: client.identify(jpeg[: len(jpeg) // 2])),
        (R, "Received message larger than max", lambda: big_sender.identify(b"\xff" * (9 << 20))),
        (R, "over the limit", lambda: client.identify(png_bomb())),
        (Inv, "has 127 values", lambda: client.identify(embedding=np.ones(127))),
        (Inv, "NaN", lambda: client.identify(embedding=np.full(128, np.nan))),
        (Inv, "NaN", lambda: client.identify(embedding=np.full(128, np.inf))),
        (F, "another|cannot be used", lambda: client.identify(embedding=np.ones(128), model_id="arcface")),
        (Inv, "top_k 1001", lambda: client.identify(jpeg, top_k=1001)),
        (Inv, "max_distance -1", lambda: client.identify(jpeg, max_distance=-1.0)),
        (N, "no identity", lambda: client.verify("nobody", jpeg)),
        (N, "no identity", lambda: client.get_identity("nobody")),
        (N, "no identity", lambda: client.delete_identity("nobody")),
        (N, "no face", lambda: client.delete_face("999999")),
        (Inv, "not a face id", lambda: client.delete_face("abc")),
        (Inv, "nothing to enrol", lambda: client.enroll("someone", [])),
        (Inv, "identity_id is empty", lambda: client.enroll("", [jpeg])),
        (Inv, "10000 characters", lambda: client.enroll("x" * 10_000, [jpeg])),
        (Inv, "control characters", lambda: client.enroll("bad\x07id", [jpeg])),
        (R, "1000 faces in one Enroll", lambda: client.enroll("many", [encode(np.zeros((20, 20, 3), np.uint8))] * 1000)),
        (Inv, "page_token", lambda: client.list_identities(10, "@@@")),
    ]
    for code, text, call in cases:
        got, details = code_of(call)
        assert got == code, (text, got, details)
        assert any(t in details for t in text.split("|")), (text, details)
    big_sender.close()
    assert server.health() == health_pb2.HealthCheckResponse.SERVING
    after = client.info()
    assert (after.identity_count, after.face_count) == (before.identity_count, before.face_count)


def test_enroll_partial_success_says_why(client, samples):
    crowd = np.full((400, 700, 3), 255, np.uint8)
    face = np.asarray(Image.open(io.BytesIO(sample_photo(samples, person="mindy_kaling"))).convert("RGB"))
    crowd[: face.shape[0], : face.shape[1]] = face
    small = face[::2, ::2]
    crowd[: small.shape[0], 450: 450 + small.shape[1]] = small
    blank = encode(np.full((120, 120, 3), 200, np.uint8))
    r = client.enroll("mindy", [encode(crowd), b"garbage!", blank, sample_photo(samples, person="mindy_kaling")])
    assert len(r.face_ids) == 2 and r.created
    reasons = {x.index: x.reason for x in r.rejected}
    assert set(reasons) == {1, 2} and "not a JPEG" in reasons[1] and "no face" in reasons[2]
    assert [w.index for w in r.warnings] == [0] and "faces found" in r.warnings[0].message
    client.delete_identity("mindy")


def test_concurrent_enroll_and_delete_of_one_identity(client, samples):
    photo = sample_photo(samples, person="elton_john", split="train")
    vec = np.array(client.embed(photo).faces[0].embedding.values)
    errors = []

    def enrol():
        for _ in range(15):
            try:
                client.enroll("contested", embeddings=[vec])
            except grpc.RpcError as exc:
                errors.append(exc)

    def remove():
        for _ in range(15):
            try:
                client.delete_identity("contested")
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.NOT_FOUND:
                    errors.append(exc)

    threads = [threading.Thread(target=f) for f in (enrol, enrol, remove)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, [(e.code(), e.details()) for e in errors]
    try:
        ident = client.get_identity("contested")
        assert ident.face_count == len(ident.face_ids) >= 1
        hits = client.identify(embedding=vec, top_k=1).faces[0].matches
        assert hits[0].identity_id == "contested" and hits[0].face_id in ident.face_ids
        client.delete_identity("contested")
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.NOT_FOUND
    assert all(m.identity_id != "contested" for m in client.identify(embedding=vec, top_k=5).faces[0].matches)


def test_client_cancelling_a_stream_leaves_the_server_healthy(client, server, samples):
    photo = sample_photo(samples)
    gate = threading.Event()

    def requests():
        for _ in range(3):
            yield pb.IdentifyRequest(image=photo)
        gate.wait(30)  # hold the stream open until the client cancels
        yield pb.IdentifyRequest(image=photo)

    call = client.identify_stream(requests())
    next(call)
    call.cancel()
    gate.set()
    with pytest.raises(grpc.RpcError) as info:
        list(call)
    assert info.value.code() == grpc.StatusCode.CANCELLED
    assert server.proc.poll() is None, server.log()
    assert server.health() == health_pb2.HealthCheckResponse.SERVING
    assert len(client.identify(photo).faces) == 1


def test_deadlines_are_honoured(client, server, samples):
    code, _ = code_of(client.identify, sample_photo(samples), timeout=0.001)
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert server.health() == health_pb2.HealthCheckResponse.SERVING
    assert len(client.identify(sample_photo(samples)).faces) == 1


def test_metrics_and_the_cli(server, client):
    client.info()
    text = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10).read().decode()
    assert 'facesearch_requests_total{code="OK",method="GetInfo"}' in text
    assert "facesearch_request_seconds_bucket" in text and "facesearch_batch_size_bucket" in text
    assert "facesearch_gallery_faces" in text
    out = subprocess.run([sys.executable, "-m", "facesearch.client.cli", "--server", server.target, "--json", "info"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["model_id"] == "facenet-128"
    assert type(info["identity_count"]) is int and type(info["face_count"]) is int  # uint64 as numbers
    # `facesearch-client ... | head`: the reader is gone before the client writes; it stops quietly
    closed = subprocess.Popen([sys.executable, "-m", "facesearch.client.cli", "--server", server.target, "info"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    closed.stdout.close()
    stderr = closed.stderr.read().decode()
    assert closed.wait(timeout=60) == 141 and stderr == ""
    bad = subprocess.run([sys.executable, "-m", "facesearch.client.cli", "--server", server.target, "delete", "nobody"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "NOT_FOUND" in bad.stderr


def test_kill_9_then_restart_gives_the_same_answers(tmp_path, samples):
    people = ["ben_afflek", "madonna"]                  # a face in every one of their photos
    proc = ServerProcess(tmp_path).start(wait_serving=False)
    try:
        # listening at once, but the model takes seconds to load
        assert proc.health() == health_pb2.HealthCheckResponse.NOT_SERVING
        with FaceSearchClient(proc.target, timeout=30) as c:
            assert code_of(c.info)[0] == grpc.StatusCode.UNAVAILABLE
        proc.wait_serving(180)
        with FaceSearchClient(proc.target, timeout=120) as c:
            for person in people:
                c.enroll(person, [p.read_bytes() for p in sorted((samples / "train" / person).glob("*.jpg"))[:6]])
            queries = [p.read_bytes() for person in people for p in sorted((samples / "val" / person).glob("*.jpg"))[:3]]
            answers = [[(m.identity_id, round(m.distance, 4)) for m in c.identify(q, top_k=2).faces[0].matches]
                       for q in queries]
            counts = (c.info().identity_count, c.info().face_count)
        proc.kill()
        proc.start()
        with FaceSearchClient(proc.target, timeout=120) as c:
            assert (c.info().identity_count, c.info().face_count) == counts == (2, 12)
            again = [[(m.identity_id, round(m.distance, 4)) for m in c.identify(q, top_k=2).faces[0].matches]
                     for q in queries]
        assert again == answers
        assert proc.terminate() == 0                       # SIGTERM: graceful, then a snapshot
        assert (tmp_path / "index" / "MANIFEST.json").is_file()
    finally:
        proc.stop()


def _self_signed(folder):
    if subprocess.run(["openssl", "version"], capture_output=True).returncode != 0:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def test_tls_and_token_auth(tmp_path, samples):
    cert, key = _self_signed(tmp_path)
    proc = ServerProcess(tmp_path / "data", "--tls-cert", str(cert), "--tls-key", str(key),
                         env={"FACESEARCH_AUTH_TOKEN": "s3cret-token"})
    creds = grpc.ssl_channel_credentials(cert.read_bytes())
    proc.start(credentials=creds)
    try:
        assert proc.health(creds) == health_pb2.HealthCheckResponse.SERVING  # health needs no token
        for token, expected in ((None, "needs 'authorization"), ("wrong", "wrong")):
            with FaceSearchClient(proc.target, token=token, ca_cert=str(cert), timeout=60) as c:
                code, details = code_of(c.info)
                assert code == grpc.StatusCode.UNAUTHENTICATED and expected in details
        with FaceSearchClient(proc.target, token="s3cret-token", ca_cert=str(cert), timeout=60) as c:
            assert c.info().model_id == "facenet-128"
        with FaceSearchClient(proc.target, token="s3cret-token", timeout=10) as plain:  # no TLS: refused
            assert code_of(plain.info)[0] == grpc.StatusCode.UNAVAILABLE
        photos = tmp_path / "photos" / "ben"   # the indexer's --server mode speaks TLS too
        photos.mkdir(parents=True)
        (photos / "a.jpg").write_bytes(sample_photo(samples, "train"))
        indexer = [str(Path(sys.executable).with_name("facesearch-indexer")), "add", str(photos.parent),
                   "--server", proc.target, "--token", "s3cret-token", "--tls", "--ca-cert", str(cert)]
        r = subprocess.run(indexer, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        with FaceSearchClient(proc.target, token="s3cret-token", ca_cert=str(cert), timeout=60) as c:
            assert c.get_identity("ben").face_count == 1
    finally:
        proc.stop()


@pytest.mark.parametrize("address", ["0.0.0.0:0", "[::]:0"])
def test_the_server_will_not_listen_beyond_loopback_without_a_token(tmp_path, address):
    server = str(Path(sys.executable).with_name("facesearch-server"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACESEARCH_")}
    r = subprocess.run([server, "--address", address, "--data-dir", str(tmp_path)], capture_output=True, text=True,
                       timeout=120, env=env)
    assert r.returncode == 2
    assert "without a token" in r.stderr and "FACESEARCH_AUTH_TOKEN" in r.stderr and "FACESEARCH_INSECURE=1" in r.stderr
    assert not (tmp_path / "gallery.db").exists(), "it refused before opening anything"


def test_the_log_has_no_retracing_warnings(server):
    """Warm-up traces each TensorFlow function once; neither it nor this module's requests (photos of
    many sizes, batches of many sizes) retrace: TensorFlow would log "triggered tf.function retracing"."""
    assert any('"msg": "serving"' in line for line in server.lines)
    assert not [line for line in server.lines if "retracing" in line.lower()]
