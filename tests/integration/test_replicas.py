"""Galleries of several processes sharing one database follow each other's writes (gallery/follow.py).

Two Gallery objects with their own data directories stand for two replicas: each has its
own index (FAISS in-process, or its own client of one Milvus collection) and face map,
and only the database connects them. Server processes are tested in tests/e2e/test_replicas.py.
"""

from __future__ import annotations

import time
import uuid
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from sqlalchemy import select, update

from facesearch.gallery import Gallery, GalleryConfig, IndexConfig, NewFace
from facesearch.gallery.schema import changes, faces, replicas
from facesearch.gallery.sql import pruned_through

D = 8


def unit(rng, n):
    x = rng.normal(size=(n, D)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def shared_url(tmp_path, database_url) -> str:
    """One database for both replicas: PostgreSQL, or an SQLite file outside either data directory."""
    return database_url or f"sqlite:///{tmp_path / 'shared.db'}"


def replica(tmp_path, name, url, **kw) -> Gallery:
    config = GalleryConfig(data_dir=tmp_path / name, database_url=url, index=IndexConfig(use_gpu=False), **kw)
    return Gallery.open(config, model_id="replicas", dimension=D)


@contextmanager
def two_replicas(tmp_path, url, **kw):
    """Galleries a and b, each with its own data directory, on one database; closed afterwards."""
    with ExitStack() as stack:
        yield tuple(stack.enter_context(replica(tmp_path, name, url, **kw)) for name in "ab")


def state(g: Gallery) -> tuple[list[int], dict[int, str]]:
    """What a replica serves: its indexed ids, and each live face's identity by search."""
    ids = g.indexed_ids().tolist()
    vectors = g.indexed_vectors(ids) if ids else np.zeros((0, D), np.float32)
    found = {i: m[0].identity_id for i, m in zip(ids, g.search(vectors, max_distance=None))} if ids else {}
    return ids, found


def test_a_write_on_one_replica_is_followed_by_the_other(tmp_path, shared_url):
    rng = np.random.default_rng(1)
    x = unit(rng, 6)
    with two_replicas(tmp_path, shared_url) as (a, b):
        fa = a.add_faces("ann", [NewFace(x[0]), NewFace(x[1])], display_name="Ann").face_ids
        assert b.search(x[0])[0] == []          # not followed yet
        assert b.follow() == 2
        hit = b.search(x[1])[0][0]
        assert (hit.identity_id, hit.display_name, hit.face_id) == ("ann", "Ann", fa[1])
        assert b.follow() == 0                  # nothing new: nothing applied

        fb = b.add_faces("bob", [NewFace(x[2])]).face_ids   # B's own write, searchable at once on B
        assert b.search(x[2])[0][0].face_id == fb[0]
        a.delete_face(fa[0])
        a.update_identity("ann", display_name="Ann R.")
        a.follow()
        b.follow()
        assert b.search(x[0], max_distance=1e-3)[0] == []
        assert b.search(x[1])[0][0].display_name == "Ann R."
        assert state(a) == state(b) == ([fa[1], fb[0]], {fa[1]: "ann", fb[0]: "bob"})

        b.delete_identity("ann")
        a.follow()
        assert state(a) == state(b) == ([fb[0]], {fb[0]: "bob"})


def test_admin_writes_on_one_replica_are_followed_by_the_other(tmp_path, shared_url):
    """Moves, renames and merges change only SQL and the writer's face map; the other replica
    follows the change log and finds each face under its new identity."""
    rng = np.random.default_rng(7)
    x = unit(rng, 4)
    with two_replicas(tmp_path, shared_url) as (a, b):
        ann = a.add_faces("ann", [NewFace(x[0]), NewFace(x[1]), NewFace(x[2])], display_name="Ann").face_ids
        bob = a.add_faces("bob", [NewFace(x[3]), NewFace(x[0])]).face_ids   # x[0]: ann has it too
        b.follow()
        assert a.move_faces([ann[2]], "cat", create_if_missing=True) == 1
        a.update_identity("bob", display_name="Bob B.")
        assert b.search(x[2])[0][0].identity_id == "ann"     # not followed yet
        b.follow()
        assert b.search(x[2])[0][0].identity_id == "cat"
        assert b.search(x[3])[0][0].display_name == "Bob B."
        assert a.merge_identities(["bob"], "ann") == 1      # bob's x[0] duplicates ann's: dropped, not moved
        b.follow()
        expected = ([*ann, bob[0]], {ann[0]: "ann", ann[1]: "ann", ann[2]: "cat", bob[0]: "ann"})
        assert state(a) == state(b) == expected
        assert b.search(x[3])[0][0].display_name == "Ann"
        b.move_faces([bob[0]], "cat")                        # and back the other way
        a.follow()
        assert a.search(x[3])[0][0].identity_id == "cat"
        b.close(snapshot=False)                              # a restart replays: the face map comes from SQL
        with replica(tmp_path, "b", shared_url) as again:
            assert state(again) == state(a)


def test_interleaved_writes_of_both_replicas_end_identical(tmp_path, shared_url):
    """Each applies its own writes at once and the other's when it follows; neither skips a seq."""
    rng = np.random.default_rng(2)
    x = unit(rng, 40)
    with two_replicas(tmp_path, shared_url) as (a, b):
        for i in range(0, 40, 2):
            a.add_faces(f"p{i % 7}", [NewFace(x[i])])
            b.add_faces(f"p{i % 5}", [NewFace(x[i + 1])])
            if i % 6 == 0:
                a.follow()
            if i % 10 == 0:
                victim = b.indexed_ids()[0]
                b.delete_face(int(victim))
        a.follow()
        b.follow()
        with a.engine.connect() as conn:
            in_sql = sorted(conn.execute(select(faces.c.id)).scalars())
        assert state(a) == state(b)
        assert state(a)[0] == in_sql
        assert len(in_sql) == 36   # 40 added, 4 deleted: 44 seqs, every one applied by both
        assert a.changes_since_snapshot == b.changes_since_snapshot == 44


def test_pruning_keeps_what_a_live_replica_needs_and_a_replica_away_too_long_rebuilds(tmp_path, shared_url):
    rng = np.random.default_rng(3)
    x = unit(rng, 12)
    with two_replicas(tmp_path, shared_url) as (a, b):
        ids = [a.add_faces(f"p{i}", [NewFace(v)]).face_ids[0] for i, v in enumerate(x[:6])]
        a.snapshot()   # B has applied nothing yet: its row holds the log
        with a.engine.connect() as conn:
            assert pruned_through(conn) == 0
            assert conn.execute(select(changes.c.seq)).scalars().all()[0] == 1
        assert b.follow() == 6
        b.snapshot()
        a.snapshot()   # now both have seq 6: everything but the newest row goes
        with a.engine.connect() as conn:
            assert pruned_through(conn) == 5

        ids += [a.add_faces(f"q{i}", [NewFace(v)]).face_ids[0] for i, v in enumerate(x[6:])]
        with a.engine.begin() as conn:   # B silent for longer than the TTL: no longer waited for
            conn.execute(update(replicas).where(replicas.c.name == b.replica_name)
                         .values(seen_at=datetime.now(timezone.utc) - timedelta(hours=1)))
        a.snapshot()
        with a.engine.connect() as conn:
            assert pruned_through(conn) == 11 > b._applied_seq
        assert b.follow() == 0   # the rows it needs are gone: rebuilt from SQL instead
        assert state(b) == state(a) and state(b)[0] == ids


def test_a_reindex_on_one_replica_is_followed_by_the_other(tmp_path, shared_url):
    rng = np.random.default_rng(4)
    x = unit(rng, 5)
    with two_replicas(tmp_path, shared_url) as (a, b):
        ids = [a.add_faces(f"p{i}", [NewFace(v, crop_jpeg=b"crop%d" % i)]).face_ids[0] for i, v in enumerate(x)]
        b.follow()
        rotated = -x   # "the new model": every vector changes
        a.reindex("replicas", D, lambda crops: rotated[[int(c[4:]) for c in crops]])
        b.follow()
        assert b.generation == a.generation == 1
        np.testing.assert_allclose(b.indexed_vectors(ids), rotated, atol=1e-6)
        assert b.search(rotated[3])[0][0].face_id == ids[3]


def test_on_a_shared_milvus_collection_a_write_is_found_at_once_by_the_other_replica(tmp_path, milvus_server_uri,
                                                                                      postgres_url):
    """Read your writes: B's search meets A's new face id in the collection and follows at once."""
    rng = np.random.default_rng(5)
    x = unit(rng, 4)
    shared = {"vector_backend": "milvus", "milvus_uri": milvus_server_uri,
              "milvus_collection": f"replicas_{uuid.uuid4().hex[:12]}"}
    with two_replicas(tmp_path, postgres_url, **shared) as (a, b):
        face = a.add_faces("ann", [NewFace(x[0])], display_name="Ann").face_ids[0]
        hit = b.search(x[0])[0][0]   # no follow() call: the unknown id made B follow
        assert (hit.identity_id, hit.display_name, hit.face_id) == ("ann", "Ann", face)
        # not Strong: B searched at the timestamp of A's write, which it read from SQL
        assert b.index.consistency == "Customized" and b.index.read_ts >= a.index.write_ts > 0
        a.delete_face(face)
        assert b.search(x[0], max_distance=1e-3)[0] == []
        assert b.index.read_ts >= a.index.write_ts   # the delete's timestamp, recorded after its commit
        other = b.add_faces("bob", [NewFace(x[1])]).face_ids[0]
        assert a.search(x[1])[0][0].face_id == other
        b.move_faces([other], "cat", create_if_missing=True)   # only the face map changes: followed from the log
        a.follow()
        assert a.search(x[1])[0][0].identity_id == "cat"


def test_while_milvus_is_unreachable_the_gallery_says_so_loses_nothing_and_catches_up(tmp_path, milvus_server_uri,
                                                                                      monkeypatch):
    """Searches and enrolments fail with the URI named; health goes bad; a delete committed meanwhile
    reaches the collection once Milvus is back (follow() reconciles)."""
    from urllib.parse import urlparse

    from facesearch.gallery import IndexUnavailableError, follow
    from tests.helpers import Outage

    monkeypatch.setattr(follow, "RECOVER_EVERY_S", 0.0)
    upstream = urlparse(milvus_server_uri)
    outage = Outage(upstream.hostname, upstream.port).restore()
    rng = np.random.default_rng(6)
    x = unit(rng, 3)
    g = replica(tmp_path, "a", "", vector_backend="milvus", milvus_uri=outage.uri,
                milvus_collection=f"outage_{uuid.uuid4().hex[:12]}", milvus_timeout_s=2.0)
    health = []
    g.on_health = health.append
    try:
        kept, dropped = (g.add_faces(f"p{i}", [NewFace(x[i])]).face_ids[0] for i in range(2))
        outage.cut()
        with pytest.raises(IndexUnavailableError, match=f"Milvus at {outage.uri} is unavailable"):
            g.search(x[0])
        with pytest.raises(IndexUnavailableError, match=outage.uri):
            g.add_faces("p2", [NewFace(x[2])])
        assert g.info().face_count == 2                   # refused before its commit: nothing half-done
        g.delete_face(dropped)                            # committed in SQL; the collection missed it
        assert g.info().face_count == 1
        assert g.follow() == 0 and not g.healthy and outage.uri in g.unhealthy_reason
        assert health and outage.uri in health[-1]

        outage.restore()
        deadline = time.monotonic() + 60                  # the client reconnects with a backoff
        while not g.healthy and time.monotonic() < deadline:
            g.follow()                                    # reconciles: healthy, the delete applied
            time.sleep(0.5)
        assert g.healthy and health[-1] is None
        assert g.indexed_ids().tolist() == [kept]
        assert g.search(x[0])[0][0].face_id == kept
        assert g.search(x[1], max_distance=1e-3)[0] == []
    finally:
        outage.restore() if outage._listener.fileno() == -1 else None
        g.close()


def test_replicas_opening_a_new_database_together_migrate_and_bind_it_once(tmp_path, postgres_url):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:   # without the advisory locks they raced into errors or a deadlock
        galleries = [f.result(timeout=120) for f in [pool.submit(replica, tmp_path, n, postgres_url) for n in "abcd"]]
    try:
        assert {(g.model_id, g.dimension, g.info().face_count) for g in galleries} == {("replicas", D, 0)}
    finally:
        for g in galleries:
            g.close()
