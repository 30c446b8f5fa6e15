"""The Milvus backend's own lifecycle, on Milvus Lite (answers are compared in test_congruence.py)."""

from __future__ import annotations

import numpy as np
import pytest

from facesearch.gallery import Gallery, GalleryConfig, GalleryError, IndexConfig, NewFace

pymilvus = pytest.importorskip("pymilvus", reason="Milvus Lite needs pymilvus[milvus_lite] (the test extra)")

D = 16


def unit(rng, n):
    x = rng.normal(size=(n, D)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def collections(config: GalleryConfig) -> list[str]:
    client = pymilvus.MilvusClient(uri=config.milvus)
    try:
        return sorted(client.list_collections())
    finally:
        client.close()


def enrol(g: Gallery, x: np.ndarray) -> list[int]:
    """One face each; the crop bytes carry the vector, for a stand-in model to re-embed."""
    return [g.add_faces(f"p{i}", [NewFace(v, crop_jpeg=v.tobytes())]).face_ids[0] for i, v in enumerate(x)]


def rotating(r: np.ndarray):
    """A stand-in model: the old vector, rotated."""
    return lambda crops: np.stack([np.frombuffer(c, np.float32) @ r for c in crops])


def test_the_collection_outlives_the_gallery_and_is_reconciled(tmp_path):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(30, D)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    config = GalleryConfig(data_dir=tmp_path, vector_backend="milvus", index=IndexConfig(kind="hnsw"))
    g = Gallery.open(config, model_id="m", dimension=D)
    ids = [g.add_faces(f"p{i}", [NewFace(v)]).face_ids[0] for i, v in enumerate(x)]
    g.delete_identity("p4")
    assert g.indexed_count() == 29 and g.snapshot() is None
    np.testing.assert_allclose(g.indexed_vectors([ids[7]])[0], x[7], atol=1e-6)
    g.close()
    assert not (tmp_path / "index").exists() or not any((tmp_path / "index").iterdir())   # no FAISS snapshot
    with Gallery.open(config, model_id="m", dimension=D) as g:
        assert g.indexed_ids().tolist() == ids[:4] + ids[5:]
        assert g.search(x[9], max_distance=None)[0][0].face_id == ids[9]
        assert g.index_description == "milvus HNSW"


def test_reindex_fills_a_new_collection_and_drops_the_old_one(tmp_path):
    rng = np.random.default_rng(6)
    x = unit(rng, 20)
    r = np.linalg.qr(rng.normal(size=(D, D)))[0].astype(np.float32)
    new = x @ r
    config = GalleryConfig(data_dir=tmp_path, vector_backend="milvus")
    with Gallery.open(config, model_id="facenet-128", dimension=D) as g:
        ids = enrol(g, x)
        assert g.index.collection == "facesearch_facenet_128"
        assert g.reindex("Tuned/v2", D, rotating(r), batch_size=7) == 20
        assert (g.model_id, g.generation, g.index.collection) == ("Tuned/v2", 1, "facesearch_tuned_v2_g1")
        got = g.search(new[3], max_distance=None)[0][0]
        assert got.face_id == ids[3] and got.distance < 1e-4
        np.testing.assert_allclose(g.indexed_vectors(ids), new, atol=1e-5)
        assert collections(config) == ["facesearch_tuned_v2_g1"]   # the old one is dropped
    with Gallery.open(config, model_id="Tuned/v2", dimension=D) as g:
        assert g.index.collection == "facesearch_tuned_v2_g1" and g.indexed_ids().tolist() == ids
        assert g.search(new[11], max_distance=None)[0][0].face_id == ids[11]


def test_a_failed_reindex_leaves_the_old_collection_serving(tmp_path, monkeypatch):
    from facesearch.gallery.milvus_index import MilvusIndex

    rng = np.random.default_rng(7)
    x = unit(rng, 12)
    r = np.linalg.qr(rng.normal(size=(D, D)))[0].astype(np.float32)
    config = GalleryConfig(data_dir=tmp_path, vector_backend="milvus")
    g = Gallery.open(config, model_id="m_g1", dimension=D)
    ids = enrol(g, x)

    def unchanged():
        assert (g.model_id, g.generation, g.index.collection) == ("m_g1", 0, "facesearch_m_g1")
        assert collections(config) == ["facesearch_m_g1"]
        assert g.search(x[5], max_distance=None)[0][0].face_id == ids[5]
        np.testing.assert_allclose(g.indexed_vectors(ids), x, atol=1e-6)

    calls = []

    def crashing(crops):   # the model fails half-way
        calls.append(len(crops))
        if len(calls) == 2:
            raise RuntimeError("the model crashed")
        return rotating(r)(crops)

    with pytest.raises(RuntimeError, match="crashed"):
        g.reindex("other", D, crashing, batch_size=5)
    unchanged()
    with pytest.raises(GalleryError, match="would be facesearch_m_g1, the one in use"):
        g.reindex("m", D, rotating(r))   # m at generation 1 names the collection in use: never dropped
    unchanged()

    def failing(conn):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(g, "forget_calibration", failing)   # inside the transaction, the collection filled
    with pytest.raises(RuntimeError, match="went away"):
        g.reindex("other", D, rotating(r))
    unchanged()
    monkeypatch.undo()
    stale = MilvusIndex(D, config.model_copy(update={"milvus_collection": "facesearch_other_g1"}))
    stale.add(np.array([10**9]), x[:1])   # as a reindex killed before its commit leaves it
    stale.close()
    assert g.reindex("other", D, rotating(r)) == 12
    assert collections(config) == ["facesearch_other_g1"] and g.indexed_ids().tolist() == ids
    g.close()


def test_a_collection_under_the_old_fixed_name_is_followed_by_one_named_after_the_model(tmp_path):
    rng = np.random.default_rng(8)
    x = unit(rng, 10)
    old = GalleryConfig(data_dir=tmp_path, vector_backend="milvus", milvus_collection="facesearch_faces")
    with Gallery.open(old, model_id="m", dimension=D) as g:
        ids = enrol(g, x)
    with Gallery.open(old.model_copy(update={"milvus_collection": ""}), model_id="m", dimension=D) as g:
        assert g.index.collection == "facesearch_m" and g.indexed_ids().tolist() == ids   # filled from SQL
        assert g.search(x[2], max_distance=None)[0][0].face_id == ids[2]
    assert collections(old) == ["facesearch_faces", "facesearch_m"]   # the old one is left to the operator
