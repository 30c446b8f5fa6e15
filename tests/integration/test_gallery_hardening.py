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
