"""Hardening of the gallery (issue #13): failures after a commit, reindex generations,
idempotent enrolment, replay at scale, long operations beside the lock, GPU k limits."""

import threading

import numpy as np
import pytest

from facesearch.gallery import Enrolment, FaissIndex, Gallery, GalleryConfig, GalleryError, IndexConfig, NewFace

D = 32


def unit(rng, n, d=D):
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def open_gallery(path, kind="flat", model_id="test-model", **kw):
    index = IndexConfig(kind=kind, ivf_train_size=1000, ivf_nlist=8, **kw)
    return Gallery.open(GalleryConfig(data_dir=path, index=index), model_id=model_id, dimension=D)


def enrol_each(g, vectors, prefix="p"):
    res = g.add_batch([Enrolment(f"{prefix}{i}", [NewFace(v)]) for i, v in enumerate(vectors)])
    return [r.face_ids[0] for r in res]


def test_a_failed_update_and_rebuild_leave_the_gallery_unhealthy_until_a_rebuild_succeeds(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    x = unit(rng, 30)
    g = open_gallery(tmp_path)
    seen = []
    g.on_health = seen.append
    first = enrol_each(g, x[:20])
    g.snapshot()
    manifest = (tmp_path / "index" / "MANIFEST.json").read_text()

    def broken(self, ids, vectors):
        raise RuntimeError("out of memory")

    real_add = FaissIndex.add
    monkeypatch.setattr(FaissIndex, "add", broken)   # the change fails, and so does the rebuild
    later = enrol_each(g, x[20:25], prefix="q")      # committed: the caller is not failed
    assert not g.healthy and "rebuild" in g.unhealthy_reason
    assert seen and seen[-1] is not None
    with pytest.raises(GalleryError, match="unhealthy"):
        g.snapshot()                                  # never saved under a current watermark
    assert (tmp_path / "index" / "MANIFEST.json").read_text() == manifest
    # the previous index is intact and still answers
    assert sorted(g.indexed_ids().tolist()) == sorted(first)
    assert g.search(x[:1], max_distance=None)[0][0].face_id == first[0]

    monkeypatch.setattr(FaissIndex, "add", real_add)
    assert g.recover()
    assert g.healthy and seen[-1] is None
    assert sorted(g.indexed_ids().tolist()) == sorted(first + later)
    g.close()
    with open_gallery(tmp_path) as g:
        assert sorted(g.indexed_ids().tolist()) == sorted(first + later)


def test_the_next_write_retries_the_rebuild(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    x = unit(rng, 10)
    with open_gallery(tmp_path) as g:
        real_add = FaissIndex.add
        monkeypatch.setattr(FaissIndex, "add", lambda *a: (_ for _ in ()).throw(RuntimeError("boom")))
        a = enrol_each(g, x[:3])
        assert not g.healthy
        monkeypatch.setattr(FaissIndex, "add", real_add)
        b = enrol_each(g, x[3:6], prefix="q")
        assert g.healthy
        assert sorted(g.indexed_ids().tolist()) == sorted(a + b)
        assert g.changes_since_snapshot > 0


def runtime_for(g, snapshot_every=1):
    from types import SimpleNamespace

    from facesearch.embedder import EmbedderConfig
    from facesearch.service import Runtime

    embedder = SimpleNamespace(config=EmbedderConfig(), dimension=D, model_id="test-model",
                               embed_crops=lambda crops: np.zeros((len(crops), D), np.float32))
    return Runtime(embedder, g, snapshot_every=snapshot_every)


def test_a_failing_snapshot_never_fails_the_committed_write(tmp_path, monkeypatch, caplog):
    import asyncio

    rng = np.random.default_rng(2)
    x = unit(rng, 4)
    with open_gallery(tmp_path) as g:
        runtime = runtime_for(g)
        calls = []

        def full_disk():
            calls.append(1)
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(g, "snapshot", full_disk)

        async def main():
            result = await runtime.write(g.add_faces, "a", [NewFace(x[0])])
            if runtime._maintenance is not None:
                runtime._maintenance.result()
            again = await runtime.write(g.add_faces, "a", [NewFace(x[1])])   # tried again later
            runtime._maintenance.result()
            await runtime.stop()
            return result, again

        result, again = asyncio.run(main())
        assert result.face_ids and again.face_ids
        assert len(calls) == 2
        assert "background snapshot failed" in caplog.text
        monkeypatch.undo()


def test_a_search_runs_while_a_snapshot_is_being_written(tmp_path, monkeypatch):
    from facesearch.gallery import snapshot as snapshot_module

    rng = np.random.default_rng(3)
    x = unit(rng, 20)
    with open_gallery(tmp_path) as g:
        enrol_each(g, x)
        started, release = threading.Event(), threading.Event()
        real_write = snapshot_module.write

        def slow_write(*a, **kw):
            started.set()
            assert release.wait(30)
            return real_write(*a, **kw)

        monkeypatch.setattr(snapshot_module, "write", slow_write)
        t = threading.Thread(target=g.snapshot)
        t.start()
        assert started.wait(30)
        # a writer queued behind the snapshot must not hold searches up either
        w = threading.Thread(target=lambda: g.add_faces("late", [NewFace(x[0])]))
        w.start()
        found, searched = [], threading.Event()

        def search():
            found.extend(g.search(x[:1], max_distance=None))
            searched.set()

        threading.Thread(target=search, daemon=True).start()
        ran = searched.wait(30)   # a liveness bound, not a timing check: it blocks until release otherwise
        release.set()
        assert ran, "the search waited for the snapshot"
        t.join(30)
        w.join(30)
        assert found[0][0].identity_id == "p0"


def test_a_crash_after_reindexing_to_the_same_model_id_never_serves_the_old_vectors(tmp_path, monkeypatch):
    rng = np.random.default_rng(4)
    x = unit(rng, 12)
    crops = {}
    g = open_gallery(tmp_path)
    res = g.add_batch([Enrolment(f"p{i}", [NewFace(v, crop_jpeg=bytes([i]))]) for i, v in enumerate(x)])
    ids = [r.face_ids[0] for r in res]
    g.snapshot()
    new = unit(rng, 12)
    crops.update({bytes([i]): new[i] for i in range(12)})

    def crash():
        raise KeyboardInterrupt("killed before the snapshot")

    monkeypatch.setattr(g, "snapshot", crash)
    with pytest.raises(KeyboardInterrupt):
        g.reindex("test-model", D, lambda batch: np.stack([crops[c] for c in batch]))
    g.close(snapshot=False)
    with open_gallery(tmp_path) as g:
        assert g.generation == 1
        np.testing.assert_allclose(g.indexed_vectors(ids), new, atol=1e-6)   # what Verify reads from SQL
        assert g.search(new[:1], max_distance=None)[0][0].face_id == ids[0]
    with open_gallery(tmp_path) as g:   # its own snapshot is reused from now on
        np.testing.assert_allclose(g.indexed_vectors(ids), new, atol=1e-6)


def test_enrolling_the_same_image_or_embedding_again_is_a_duplicate_not_a_new_face(tmp_path):
    rng = np.random.default_rng(5)
    x = unit(rng, 4)
    with open_gallery(tmp_path) as g:
        first = g.add_faces("a", [NewFace(x[0]), NewFace(x[1], source_sha256="f" * 64)])
        again = g.add_faces("a", [NewFace(x[0] * 2), NewFace(x[2], source_sha256="f" * 64), NewFace(x[3]),
                                  NewFace(x[3])])
        assert len(first.face_ids) == 2 and first.duplicates == []
        assert again.duplicates == [0, 1, 3] and len(again.face_ids) == 1   # same embedding, same bytes, repeat
        other = g.add_faces("b", [NewFace(x[0]), NewFace(x[1], source_sha256="f" * 64)])   # another identity
        assert len(other.face_ids) == 2
        assert g.info().face_count == g.indexed_count() == 5


def test_a_racing_duplicate_ends_as_a_duplicate(tmp_path, monkeypatch):
    """The check before the insert misses a row a racing writer committed: the unique index refuses
    it, and the retried transaction reports a duplicate rather than an error."""
    from facesearch.gallery.writes import Writes

    rng = np.random.default_rng(6)
    x = unit(rng, 2)
    with open_gallery(tmp_path) as g:
        g.add_faces("a", [NewFace(x[0]), NewFace(x[1], source_sha256="e" * 64)])
        real, calls = Writes._known_keys, []

        def blind_once(conn, owners, keys):
            calls.append(1)
            return set() if len(calls) == 1 else real(conn, owners, keys)

        monkeypatch.setattr(Writes, "_known_keys", staticmethod(blind_once))
        again = g.add_faces("a", [NewFace(x[0]), NewFace(x[1], source_sha256="e" * 64)])
        assert again.duplicates == [0, 1] and again.face_ids == [] and len(calls) == 2
        assert g.info().face_count == 2


def test_replay_reads_the_change_log_in_bounded_chunks(tmp_path, monkeypatch):
    from sqlalchemy import event

    from facesearch.gallery import recovery

    rng = np.random.default_rng(8)
    x = unit(rng, 600)
    g = open_gallery(tmp_path)
    ids = enrol_each(g, x[:300])
    g.snapshot()
    ids += enrol_each(g, x[300:], prefix="q")
    for fid in ids[250:450:3]:          # deletes of faces from the snapshot and from the log
        g.delete_face(fid)
    g.close(snapshot=False)
    kept = sorted(set(ids) - set(ids[250:450:3]))

    monkeypatch.setattr(recovery, "REPLAY_CHUNK", 50, raising=False)
    statements = []
    real_connect = recovery.Recovery._replay

    def spy(self, conn, watermark):
        event.listen(self.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        return real_connect(self, conn, watermark)

    monkeypatch.setattr(recovery.Recovery, "_replay", spy)
    with open_gallery(tmp_path) as g:
        assert g.indexed_ids().tolist() == kept
        assert g.changes_since_snapshot == 300 + len(ids[250:450:3])
    reads = [s for s in statements if s.startswith("SELECT changes.")]   # the replay's reads of the log
    assert len(reads) > 300 // 50 and all("LIMIT" in s for s in reads)


def test_a_long_local_add_snapshots_as_it_goes(tmp_path):
    from types import SimpleNamespace

    import cv2

    from facesearch.embedder import EmbedderConfig, FaceMode
    from facesearch.indexer.add import add_local
    from facesearch.sources import Item

    rng = np.random.default_rng(9)
    items = []
    for i in range(40):
        path = tmp_path / "img" / f"{i}.jpg"
        path.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(path), rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
        items.append(Item(path, f"p{i}"))
    embedder = SimpleNamespace(config=EmbedderConfig(), dimension=D, model_id="test-model",
                               embed_crops=lambda crops: unit(rng, len(crops)))
    g = open_gallery(tmp_path / "g")
    summary = add_local(items, g, embedder, FaceMode.CROPPED, workers=0, batch_size=5, progress=False,
                        snapshot_every=10)
    assert summary.added == 40
    assert g.changes_since_snapshot < 10      # a crash now replays less than snapshot_every changes
    g.close(snapshot=False)


class FakeGpu:
    """Stands in for a faiss-gpu index: refuses k above the limit, counts uploads."""
    uploads = 0

    def __init__(self, cpu, limit):
        import faiss

        FakeGpu.uploads += 1
        self.index, self.limit = faiss.clone_index(cpu), limit

    def search(self, queries, k):
        if k > self.limit:
            raise RuntimeError(f"k {k} > {self.limit}: not supported on the GPU")
        return self.index.search(queries, k)

    def add_with_ids(self, vectors, ids):
        self.index.add_with_ids(vectors, ids)


def test_gpu_searches_beyond_its_k_limit_fall_back_to_the_cpu_and_writes_do_not_reupload(monkeypatch):
    import faiss

    from facesearch.gallery import faiss_index

    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1)
    monkeypatch.setattr(faiss, "index_cpu_to_all_gpus", lambda cpu: FakeGpu(cpu, 8))
    monkeypatch.setattr(faiss_index, "GPU_K_LIMIT", 8, raising=False)
    FakeGpu.uploads = 0
    rng = np.random.default_rng(10)
    x, q = unit(rng, 100), unit(rng, 3)
    index = FaissIndex(D, IndexConfig(kind="flat", use_gpu=True))
    index.add(np.arange(100, dtype=np.int64), x[:100])
    exact = ((q[:, None] - x[None]) ** 2).sum(-1).argsort(1)
    _, small = index.search(q, 5)                  # on the (fake) GPU
    _, large = index.search(q, 40)                 # above its limit: the CPU index answers
    np.testing.assert_array_equal(small, exact[:, :5])
    np.testing.assert_array_equal(large, exact[:, :40])
    more = unit(rng, 5)
    for i, v in enumerate(more):                   # writes keep the GPU copy in step
        index.add(np.array([100 + i], np.int64), v[None])
    _, again = index.search(more, 1)
    assert again[:, 0].tolist() == list(range(100, 105))
    assert FakeGpu.uploads == 1
    index.remove(np.array([100, 101]))             # deletes are masked on the GPU copy, not uploaded again
    _, after = index.search(more, 3)
    assert after[:, 0].tolist() == [exact_first for exact_first in _nearest(x[:100], more[:2])] + [102, 103, 104]
    assert not np.isin(after, [100, 101]).any() and FakeGpu.uploads == 1
    index.remove(np.arange(0, 70))                 # past GPU_STALE_SHARE: the next search uploads afresh
    _, left = index.search(q, 5)
    remaining = np.r_[70:100, 102:105]
    vectors = np.vstack([x[:100], more])[remaining]
    expected = remaining[((q[:, None] - vectors[None]) ** 2).sum(-1).argsort(1)[:, :5]]
    np.testing.assert_array_equal(left, expected)
    assert FakeGpu.uploads == 2


def _nearest(x, q):
    return ((q[:, None] - x[None]) ** 2).sum(-1).argmin(1).tolist()


def test_batched_searches_apply_each_requests_top_k(tmp_path, monkeypatch):
    rng = np.random.default_rng(11)
    x = unit(rng, 50)
    with open_gallery(tmp_path) as g:
        enrol_each(g, x)
        runtime = runtime_for(g)
        asked = []
        real = g.search
        monkeypatch.setattr(g, "search", lambda v, top_k, max_distance, model_id: asked.append(top_k) or real(
            v, top_k=top_k, max_distance=max_distance, model_id=model_id))
        out = runtime._search_batch([(x[0], 1, 12.0, None), (x[1], 30, 12.0, None), (x[2], 1, 12.0, None)])
        assert [len(m) for m in out] == [1, 30, 1]
        assert out[0][0].identity_id == "p0" and out[2][0].identity_id == "p2"
        assert sorted(asked) == [1, 30]            # the top_k=1 requests are not widened to 30
        runtime._writes.shutdown()
        runtime._background.shutdown()


def searches_go_on_during(g, start_slow_write, started, release, query):
    """Run the write that starts a slow rebuild in a thread; a search must finish while it waits."""
    writer = threading.Thread(target=start_slow_write)
    writer.start()
    try:
        assert started.wait(30)
        found, searched = [], threading.Event()

        def search():
            found.extend(g.search(query, max_distance=None))
            searched.set()

        threading.Thread(target=search, daemon=True).start()
        ran = searched.wait(15)   # a liveness bound, not a timing check: blocked until release otherwise
    finally:
        release.set()
        writer.join(60)
    assert ran, "the search waited for the rebuild"
    return found


def test_searches_go_on_while_ivf_is_trained(tmp_path, monkeypatch):
    import faiss

    rng = np.random.default_rng(12)
    x = unit(rng, 1000)
    started, release = threading.Event(), threading.Event()

    class SlowIVF(faiss.IndexIVFFlat):
        def train(self, *a):
            started.set()
            assert release.wait(60)
            return super().train(*a)

    with open_gallery(tmp_path, kind="ivf") as g:
        enrol_each(g, x[:999])
        monkeypatch.setattr(faiss, "IndexIVFFlat", SlowIVF)
        found = searches_go_on_during(g, lambda: enrol_each(g, x[999:], prefix="last"), started, release, x[:1])
        assert found[0][0].identity_id == "p0"
        assert "ivf(nlist=" in g.index_description     # trained and swapped in
        assert g.search(x[999:], max_distance=None)[0][0].identity_id == "last0"


def test_searches_go_on_while_hnsw_is_compacted(tmp_path, monkeypatch):
    rng = np.random.default_rng(13)
    x = unit(rng, 20)
    started, release = threading.Event(), threading.Event()
    with open_gallery(tmp_path, kind="hnsw", hnsw_compact_ratio=0.3) as g:
        ids = enrol_each(g, x)
        for fid in ids[:6]:
            g.delete_face(fid)
        real_empty = FaissIndex._empty

        def slow_empty(self):
            started.set()
            assert release.wait(60)
            return real_empty(self)

        monkeypatch.setattr(FaissIndex, "_empty", slow_empty)
        found = searches_go_on_during(g, lambda: g.delete_face(ids[6]), started, release, x[10:11])
        assert found[0][0].identity_id == "p10"
        monkeypatch.undo()
        assert g.indexed_ids().tolist() == sorted(ids[7:])
        assert len(g.index.deleted) == 0               # compacted
