"""The Milvus backend's own lifecycle, on Milvus Lite (answers are compared in test_congruence.py)."""

from __future__ import annotations

import numpy as np
import pytest

from facesearch.gallery import Gallery, GalleryConfig, GalleryError, IndexConfig, NewFace

pytest.importorskip("pymilvus", reason="Milvus Lite needs pymilvus[milvus_lite] (the test extra)")

D = 16


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
