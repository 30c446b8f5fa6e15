"""Races between replicas sharing one database, each forced deterministically: a hook runs the other
replica's write at the exact point between two reads (or inside a transaction), no sleeps.

Two Gallery objects with their own data directories stand for two replicas (as in test_replicas.py).
"""

from __future__ import annotations

from contextlib import ExitStack

import numpy as np
import pytest

from facesearch.gallery import Gallery, GalleryConfig, IndexConfig, NewFace
from facesearch.gallery.recovery import Recovery
from facesearch.gallery.sql import database_now

D = 8


def unit(rng, n):
    x = rng.normal(size=(n, D)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def shared_url(tmp_path, database_url) -> str:
    return database_url or f"sqlite:///{tmp_path / 'shared.db'}"


def replica(tmp_path, name, url, **kw) -> Gallery:
    config = GalleryConfig(data_dir=tmp_path / name, database_url=url, index=IndexConfig(use_gpu=False), **kw)
    return Gallery.open(config, model_id="races", dimension=D)


def after(monkeypatch, cls, name, action):
    """Run action() once, right after the next call of cls.name returns (the interleaving point)."""
    original = getattr(cls, name)
    fired = []

    def hooked(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        if not fired:
            fired.append(True)
            action()
        return out

    monkeypatch.setattr(cls, name, hooked)
    return fired


@pytest.mark.parametrize("moment", ["open", "rebuild"])
def test_a_face_committed_while_a_replica_reads_its_map_and_index_is_found(tmp_path, shared_url, monkeypatch,
                                                                          moment):
    """Open reads the face map then rebuilds; a rebuild after a failure rebuilds then reads the map.
    Another replica's enrolment between the two reads once left the face in one and not the other,
    with last_seq past it: that replica never found the acknowledged face."""
    x = unit(np.random.default_rng(1), 3)
    with ExitStack() as stack:
        a = stack.enter_context(replica(tmp_path, "a", shared_url))
        a.add_faces("ann", [NewFace(x[0])])
        late = []

        def enrol():
            late.append(a.add_faces("bob", [NewFace(x[1])], display_name="Bob").face_ids[0])

        if moment == "open":
            fired = after(monkeypatch, Recovery, "_load_map", enrol)
            b = stack.enter_context(replica(tmp_path, "b", shared_url))
        else:
            b = stack.enter_context(replica(tmp_path, "b", shared_url))
            fired = after(monkeypatch, Recovery, "_rebuild", enrol)
            with b._write:
                assert b._recover_locked()
        assert fired and late
        b.follow()
        hit = b.search(x[1], max_distance=1e-3)[0]
        assert [(m.identity_id, m.face_id) for m in hit] == [("bob", late[0])]
        assert sorted(b.indexed_ids().tolist()) == sorted(a.indexed_ids().tolist())   # none indexed twice


@pytest.mark.parametrize("new_model", ["m2", "races"])
def test_a_write_from_a_replica_that_missed_a_reindex_is_refused_or_retried_never_mixed(tmp_path, shared_url,
                                                                                          new_model):
    """B has not followed A's reindex when it enrols: the generation check inside B's transaction
    refuses it; B follows and retries, so an old-model face is refused and a same-model one lands in
    the new generation. An image query embedded by the old model is refused too, never answered."""
    from types import SimpleNamespace

    from sqlalchemy import select

    from facesearch.gallery import ModelMismatchError
    from facesearch.gallery.schema import faces
    from facesearch.service.runtime import Runtime

    x = unit(np.random.default_rng(2), 4)
    with replica(tmp_path, "a", shared_url) as a, replica(tmp_path, "b", shared_url) as b:
        for i in range(2):
            a.add_faces(f"p{i}", [NewFace(x[i], crop_jpeg=b"crop%d" % i)])
        b.follow()
        a.reindex(new_model, D, lambda crops: -x[[int(c[4:]) for c in crops]])
        assert b.generation == 0   # not followed yet
        late = [NewFace(x[2], crop_jpeg=b"crop2")]
        if new_model == "m2":
            with pytest.raises(ModelMismatchError):
                b.add_faces("late", late, model_id="races")
            with pytest.raises(ModelMismatchError):   # the runtime passes the embedder's model with the query
                Runtime._search_batch(SimpleNamespace(gallery=b), [(-x[0], 1, 12.0, "races")])
        else:
            face = b.add_faces("late", late, model_id="races").face_ids[0]
            a.follow()
            assert a.search(x[2], max_distance=1e-3)[0][0].face_id == face
        assert b.generation == 1
        with a.engine.connect() as conn:
            assert set(conn.execute(select(faces.c.model_id)).scalars()) == {new_model}


def test_reindexes_are_serialised_across_processes(tmp_path, shared_url):
    from facesearch.gallery import GalleryError

    x = unit(np.random.default_rng(3), 2)
    with replica(tmp_path, "a", shared_url) as a, replica(tmp_path, "b", shared_url) as b:
        a.add_faces("p0", [NewFace(x[0], crop_jpeg=b"crop0")])
        with a._reindexing():   # A's reindex in progress
            with pytest.raises(GalleryError, match="another process is reindexing"):
                b.reindex("m2", D, lambda crops: -x[:len(crops)])
        assert b.reindex("m2", D, lambda crops: -x[:len(crops)]) == 1   # once it is done, B's may run
        a.follow()
        assert (a.model_id, a.generation) == ("m2", 1)


@pytest.fixture
def on_milvus(milvus_server_uri):
    import uuid

    return {"vector_backend": "milvus", "milvus_uri": milvus_server_uri,
            "milvus_collection": f"races_{uuid.uuid4().hex[:12]}", "milvus_timeout_s": 10.0}


def test_a_replica_that_cannot_open_the_new_generation_says_so_and_recovers(tmp_path, postgres_url, on_milvus,
                                                                           monkeypatch):
    """A reindexed (dropping the old collection); B's first try to open the new one fails (as a load past
    its timeout would). B stays on its generation and NOT_SERVING, not healthy on a dropped collection,
    and the next follow switches it over."""
    from facesearch.gallery import IndexUnavailableError, follow

    monkeypatch.setattr(follow, "RECOVER_EVERY_S", 0.0)
    x = unit(np.random.default_rng(4), 2)
    with replica(tmp_path, "a", postgres_url, **on_milvus) as a, replica(tmp_path, "b", postgres_url, **on_milvus) as b:
        face = a.add_faces("p0", [NewFace(x[0], crop_jpeg=b"crop0")]).face_ids[0]
        b.follow()
        a.reindex("races", D, lambda crops: -x[:len(crops)])
        real, failures = b._new_index, []

        def failing_once(*args, **kwargs):
            if not failures:
                failures.append(True)
                raise IndexUnavailableError("loading the collection timed out")
            return real(*args, **kwargs)

        monkeypatch.setattr(b, "_new_index", failing_once)
        b.follow()
        assert failures and not b.healthy and "timed out" in b.unhealthy_reason and b.generation == 0
        b.follow()
        assert b.healthy and b.generation == 1
        assert b.search(-x[0], max_distance=1e-3)[0][0].face_id == face


def test_a_dropped_collection_is_not_serving_until_rebuilt_from_sql(tmp_path, postgres_url, on_milvus,
                                                                     monkeypatch):
    from facesearch.gallery import follow

    monkeypatch.setattr(follow, "RECOVER_EVERY_S", 0.0)
    x = unit(np.random.default_rng(5), 1)
    with replica(tmp_path, "a", postgres_url, **on_milvus) as a:
        face = a.add_faces("p0", [NewFace(x[0])]).face_ids[0]
        a.index.client.drop_collection(a.index.collection)   # an operator's mistake
        a.follow()
        assert not a.healthy and "is gone" in a.unhealthy_reason
        a.follow()   # recreated and reconciled from SQL, the source of truth
        assert a.healthy
        assert a.search(x[0], max_distance=1e-3)[0][0].face_id == face


def test_two_processes_setting_one_meta_key_at_once_both_succeed(postgres_url):
    """put_meta (Calibrate apply, pruning) is one upsert: the second writer waits for the first and
    overwrites, where delete-then-insert raised IntegrityError (INTERNAL) once the first committed."""
    import threading

    from sqlalchemy import text

    from facesearch.gallery.migrate import upgrade
    from facesearch.gallery.sql import connect, get_meta, put_meta

    engine = connect(postgres_url)
    upgrade(engine)
    try:
        errors = []
        with engine.connect() as first:
            first.begin()
            put_meta(first, "calibration", "first")   # uncommitted: holds the key

            def second():
                try:
                    with engine.begin() as conn:
                        put_meta(conn, "calibration", "second")
                except Exception as exc:
                    errors.append(exc)

            thread = threading.Thread(target=second)
            thread.start()
            with engine.connect() as watch:   # until the second writer waits on the first's row
                while not watch.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar():
                    thread.join(0.01)
            first.commit()
        thread.join(30)
        assert errors == []
        with engine.connect() as conn:
            assert get_meta(conn, "calibration") == "second"
    finally:
        engine.dispose()


def test_a_replica_whose_host_clock_is_behind_still_holds_back_pruning(tmp_path, shared_url, monkeypatch):
    """seen_at is the database's time: B's host clock an hour slow once made its fresh heartbeat look
    older than REPLICA_TTL_S, so A pruned rows B still needed."""
    from datetime import datetime, timedelta, timezone

    from facesearch.gallery import follow
    from facesearch.gallery.sql import pruned_through

    x = unit(np.random.default_rng(6), 4)
    with replica(tmp_path, "a", shared_url) as a, replica(tmp_path, "b", shared_url) as b:
        for i in range(4):
            a.add_faces(f"p{i}", [NewFace(x[i])])

        class SlowClock(datetime):
            @classmethod
            def now(cls, tz=None):
                return datetime.now(tz) - timedelta(hours=1)

        monkeypatch.setattr(follow, "datetime", SlowClock)
        b.heartbeat(force=True)   # B has applied nothing: its row holds the whole log
        monkeypatch.setattr(follow, "datetime", datetime)
        a.snapshot()
        with a.engine.connect() as conn:
            assert pruned_through(conn) == 0
        assert b.follow() == 4 and len(b.indexed_ids()) == 4
        with a.engine.connect() as conn:
            assert abs(database_now(conn) - datetime.now(timezone.utc)) < timedelta(minutes=1)


def test_a_replica_is_registered_before_it_loads_so_the_log_it_needs_is_kept(tmp_path, shared_url, monkeypatch):
    from facesearch.gallery.sql import pruned_through

    x = unit(np.random.default_rng(7), 5)
    with ExitStack() as stack:
        a = stack.enter_context(replica(tmp_path, "a", shared_url))
        a.add_faces("p0", [NewFace(x[0])])

        def others_write_and_prune():
            for i in (1, 2, 3):
                a.add_faces(f"p{i}", [NewFace(x[i])])
            a.snapshot()   # prunes below the oldest live replica's seq

        fired = after(monkeypatch, Recovery, "_load_map", others_write_and_prune)
        b = stack.enter_context(replica(tmp_path, "b", shared_url))
        assert fired
        with a.engine.connect() as conn:
            assert pruned_through(conn) <= b._applied_seq   # what B read up to is all it needs kept
        assert b.follow() == 3 and len(b.indexed_ids()) == 4


def test_a_milvus_outage_fails_a_search_batch_once_not_once_per_request(tmp_path, milvus_server_uri):
    """Eight Identify searches in one batch while Milvus is cut off: one search call (one timeout)
    answers all of them UNAVAILABLE, instead of the batch and then each request alone."""
    import asyncio
    import uuid
    from types import SimpleNamespace
    from urllib.parse import urlparse

    from facesearch.embedder import EmbedderConfig
    from facesearch.gallery import IndexUnavailableError
    from facesearch.service import Runtime
    from tests.helpers import Outage

    upstream = urlparse(milvus_server_uri)
    outage = Outage(upstream.hostname, upstream.port).restore()
    x = unit(np.random.default_rng(8), 8)
    g = replica(tmp_path, "a", "", vector_backend="milvus", milvus_uri=outage.uri,
                milvus_collection=f"outage_{uuid.uuid4().hex[:12]}", milvus_timeout_s=2.0)
    try:
        g.add_faces("p0", [NewFace(x[0])])
        calls = []
        real = g.search
        g.search = lambda *a, **k: calls.append(1) or real(*a, **k)
        embedder = SimpleNamespace(config=EmbedderConfig(), dimension=D, model_id="races", embed_crops=None)
        runtime = Runtime(embedder, g, follow_s=0)

        async def main():
            runtime.start()
            try:
                return await asyncio.gather(*(runtime.search(x[i:i + 1], 1, 12.0) for i in range(8)),
                                            return_exceptions=True)
            finally:
                await runtime.stop()

        outage.cut()
        results = asyncio.run(main())
        assert all(isinstance(r, IndexUnavailableError) for r in results)
        assert len(calls) == 1
    finally:
        outage.restore()
        g.close()
