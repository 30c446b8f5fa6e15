"""The vector index factory and the Gallery's two index lifecycles (no model, no PostgreSQL)."""

from __future__ import annotations

import numpy as np
import pytest

from facesearch import settings
from facesearch.files import sha256_file
from facesearch.gallery import FaissIndex, Gallery, GalleryConfig, GalleryError, IndexConfig, NewFace, build_index
from facesearch.gallery import index as index_module

D = 16


def unit(rng, n):
    x = rng.normal(size=(n, D)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_the_factory_builds_faiss_and_names_what_is_missing(monkeypatch):
    assert isinstance(build_index(GalleryConfig(index=IndexConfig(kind="hnsw")), D), FaissIndex)
    with pytest.raises(GalleryError, match="unknown vector backend 'annoy'"):
        build_index(GalleryConfig.model_construct(vector_backend="annoy"), D)   # past the settings' own check
    monkeypatch.setenv("FACESEARCH_VECTOR_BACKEND", "annoy")
    with pytest.raises(settings.SettingError, match="FACESEARCH_VECTOR_BACKEND='annoy'"):
        GalleryConfig.from_env()
    monkeypatch.setenv("FACESEARCH_VECTOR_BACKEND", "milvus")
    monkeypatch.setenv("FACESEARCH_DATA_DIR", "/srv/fs")
    config = GalleryConfig.from_env()
    assert (config.vector_backend, config.milvus, config.milvus_collection) == \
        ("milvus", "/srv/fs/milvus.db", "facesearch_faces")
    monkeypatch.setenv("FACESEARCH_MILVUS_URI", "http://milvus:19530")
    assert GalleryConfig.from_env().milvus == "http://milvus:19530"


def test_faiss_index_saves_and_loads_its_own_files(tmp_path):
    rng = np.random.default_rng(0)
    x = unit(rng, 50)
    for kind in ("flat", "hnsw"):
        index = FaissIndex(D, IndexConfig(kind=kind, use_gpu=False))
        index.add(np.arange(50), x)
        index.remove(np.array([3, 7]))
        files = index.save(tmp_path, kind)
        assert sorted(files) == ["deleted", "index"] and all((tmp_path / f["name"]).is_file() for f in files.values())
        assert all(sha256_file(tmp_path / f["name"]) == f["sha256"] for f in files.values())   # hashed as written
        again = FaissIndex(D, IndexConfig(kind=kind, use_gpu=False))
        again.load(tmp_path, files)
        assert np.array_equal(again.ids(), index.ids()) and len(again) == 48
        np.testing.assert_array_equal(again.vectors(np.array([9, 4])), x[[9, 4]])
        with pytest.raises(KeyError, match="face 3"):
            again.vectors(np.array([3]))


class Collection(FaissIndex):
    """Stands in for a durable engine (a Milvus collection): its contents outlive the Gallery."""

    durable = True

    def save(self, folder, tag):
        raise AssertionError("a durable index is never snapshotted")

    def load(self, folder, files):
        raise AssertionError("a durable index is never loaded from a snapshot")


def test_a_durable_index_is_reconciled_with_sql_not_snapshotted(tmp_path, monkeypatch):
    server = Collection(D, IndexConfig(use_gpu=False))
    monkeypatch.setitem(index_module.BUILDERS, "durable-test", lambda config, dimension: server)
    config = GalleryConfig.model_construct(data_dir=tmp_path, vector_backend="durable-test")  # a stand-in backend
    rng = np.random.default_rng(1)
    x = unit(rng, 20)
    g = Gallery.open(config, model_id="m", dimension=D)
    ids = [g.add_faces(f"p{i}", [NewFace(v)]).face_ids[0] for i, v in enumerate(x)]
    g.delete_face(ids[0])
    assert g.snapshot() is None
    g.close()
    assert not (tmp_path / "index").exists() or not any((tmp_path / "index").iterdir())
    # As after a crash between a commit and the index: one face missing, one that SQL deleted.
    server.remove(np.array([ids[5]]))
    server.add(np.array([ids[0]]), x[:1])
    with Gallery.open(config, model_id="m", dimension=D) as g:
        assert g.indexed_ids().tolist() == ids[1:]
        assert g.search(x[5], max_distance=None)[0][0].face_id == ids[5]
        assert g.search(x[0], top_k=3, max_distance=None)[0][0].face_id != ids[0]
