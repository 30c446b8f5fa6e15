"""Stateless replicas: facesearch-server processes sharing one PostgreSQL database (and one Milvus
collection), each taking writes, none losing what it acknowledged when it is killed.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np

from facesearch.client import FaceSearchClient
from facesearch.testing import ServerProcess

D = 128


def unit(rng, n):
    x = rng.normal(size=(n, D)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def replica(folder, url, **env) -> ServerProcess:
    return ServerProcess(folder, "--snapshot-every", "25", env={"FACESEARCH_DATABASE_URL": url, **env})


def started(*servers: ServerProcess) -> None:
    """Start them side by side: most of a start is loading the model."""
    for s in servers:
        s.start(wait_serving=False)
    for s in servers:
        s.wait_serving(180)


def nearest(client, vector) -> str | None:
    """The face id an exact query of this vector finds, or None."""
    faces = client.identify(embedding=vector, max_distance=0.01).faces
    return faces[0].matches[0].face_id if faces and faces[0].matches else None


def owner(client, vector) -> str | None:
    """The identity an exact query of this vector finds, or None."""
    faces = client.identify(embedding=vector, max_distance=0.01).faces
    return faces[0].matches[0].identity_id if faces and faces[0].matches else None


def test_a_faiss_replica_follows_the_writes_of_another(tmp_path, postgres_url):
    rng = np.random.default_rng(1)
    x = unit(rng, 3)
    a, b = replica(tmp_path / "a", postgres_url), replica(tmp_path / "b", postgres_url)
    started(a, b)
    try:
        with FaceSearchClient(a.target, timeout=60) as ca, FaceSearchClient(b.target, timeout=60) as cb:
            face = ca.enroll("ann", embeddings=[x[0]], display_name="Ann").face_ids[0]
            deadline = time.monotonic() + 30   # follow_ms is 250 ms; bench/backends.py measures the lag
            while nearest(cb, x[0]) != face and time.monotonic() < deadline:
                time.sleep(0.05)
            assert nearest(cb, x[0]) == face
            other = cb.enroll("bob", embeddings=[x[1]]).face_ids[0]
            ca.delete_face(face)
            deadline = time.monotonic() + 30
            while (nearest(ca, x[1]), nearest(cb, x[0])) != (other, None) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert (nearest(ca, x[1]), nearest(cb, x[0])) == (other, None)
            assert cb.move_faces([other], "cat", create_if_missing=True) == 1   # an admin write, followed too
            deadline = time.monotonic() + 30
            while owner(ca, x[1]) != "cat" and time.monotonic() < deadline:
                time.sleep(0.05)
            assert owner(ca, x[1]) == "cat"
    finally:
        a.stop()
        b.stop()


def test_replicas_on_milvus_read_their_writes_and_a_killed_one_loses_nothing(tmp_path, postgres_url,
                                                                             milvus_server_uri):
    env = {"FACESEARCH_VECTOR_BACKEND": "milvus", "FACESEARCH_MILVUS_URI": milvus_server_uri,
           "FACESEARCH_MILVUS_COLLECTION": f"replicas_{uuid.uuid4().hex[:12]}"}
    a, b = replica(tmp_path / "a", postgres_url, **env), replica(tmp_path / "b", postgres_url, **env)
    started(a, b)
    rng = np.random.default_rng(2)
    x = unit(rng, 240)
    acked: dict[int, str] = {}   # vector index -> face id, as acknowledged
    lock = threading.Lock()
    try:
        with FaceSearchClient(a.target, timeout=60) as ca, FaceSearchClient(b.target, timeout=60) as cb:
            face = ca.enroll("first", embeddings=[x[0]]).face_ids[0]
            assert nearest(cb, x[0]) == face          # read your writes: the next Identify, on the other replica
            acked[0] = face

            # Read your writes at the guarantee timestamp, not Strong: 500 enrolments, each followed at
            # once by an Identify on the other replica, 8 at a time in both directions.
            y = unit(np.random.default_rng(3), 500)

            def enrol_then_identify(i):
                writer, reader = (ca, cb) if i % 2 else (cb, ca)
                enrolled = writer.enroll(f"ryw{i}", embeddings=[y[i]]).face_ids[0]
                return nearest(reader, y[i]) == enrolled

            with ThreadPoolExecutor(8) as pool:
                assert sum(pool.map(enrol_then_identify, range(len(y)))) == len(y)

            def enrol_through(client, start):
                for i in range(start, len(x), 2):
                    try:
                        r = client.enroll(f"p{i % 37}", embeddings=[x[i]], timeout=10)
                    except grpc.RpcError:   # the killed replica: unacknowledged, so nothing is owed
                        continue
                    with lock:
                        acked[i] = r.face_ids[0]

            writers = [threading.Thread(target=enrol_through, args=(c, s)) for c, s in ((ca, 1), (cb, 2))]
            for w in writers:
                w.start()
            while len(acked) < 40:
                time.sleep(0.01)
            a.kill()                                   # SIGKILL mid-stream
            for w in writers:
                w.join()
        assert len(acked) > 120
        a.start()
        with FaceSearchClient(a.target, timeout=60) as ca, FaceSearchClient(b.target, timeout=60) as cb, \
                ThreadPoolExecutor(32) as pool:   # concurrent: the server batches them into few Milvus searches
            for client in (ca, cb):
                found = dict(zip(acked, pool.map(lambda i: nearest(client, x[i]), acked)))
                assert found == acked
            assert ca.info().face_count == cb.info().face_count >= len(acked)
    finally:
        a.stop()
        b.stop()
