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
    with pytest.raises(GalleryError, match="reindex is not supported yet"):
        g.reindex("other", D, lambda crops: np.zeros((len(crops), D)))
    g.close()
    assert not (tmp_path / "index").exists() or not any((tmp_path / "index").iterdir())   # no FAISS snapshot
    with Gallery.open(config, model_id="m", dimension=D) as g:
        assert g.indexed_ids().tolist() == ids[:4] + ids[5:]
        assert g.search(x[9], max_distance=None)[0][0].face_id == ids[9]
        assert g.index_description == "milvus HNSW"


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
