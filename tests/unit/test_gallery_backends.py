"""The vector index factory and the Gallery's two index lifecycles (no model, no PostgreSQL)."""

from __future__ import annotations

import numpy as np
import pytest

from facesearch import settings
from facesearch.files import sha256_file
from facesearch.gallery import FaissIndex, Gallery, GalleryConfig, GalleryError, IndexConfig, NewFace, build_index
from facesearch.gallery import index as index_module
from facesearch.gallery import milvus_index
from facesearch.gallery.milvus_names import collection_name

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
        ("milvus", "/srv/fs/milvus.db", "")   # empty: named after the model (milvus_names)
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

    def __init__(self, dimension, config, collection="test"):
        super().__init__(dimension, config)
        self.collection, self.opened_existing, self.write_ts = collection, False, 0

    def probe(self):
        pass

    def read_after(self, ts):
        pass

    def save(self, folder, tag):
        raise AssertionError("a durable index is never snapshotted")

    def load(self, folder, files):
        raise AssertionError("a durable index is never loaded from a snapshot")


def test_a_durable_index_is_reconciled_with_sql_not_snapshotted(tmp_path, monkeypatch):
    server = Collection(D, IndexConfig(use_gpu=False))
    monkeypatch.setitem(index_module.BUILDERS, "durable-test", lambda config, dimension, model_id, generation: server)
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


def test_the_milvus_collection_is_named_after_the_model_and_generation():
    assert collection_name("", "facenet-128", 0) == "facesearch_facenet_128"
    assert collection_name("", "/models/Tuned v2.1", 3) == "facesearch__models_tuned_v2_1_g3"
    assert collection_name("faces", "facenet-128", 0) == "faces"        # set: as given
    assert collection_name("faces", "facenet-128", 2) == "faces_g2"     # then one per reindex
    for bad in ("my-faces", "1faces", "faces!", "x" * 256):
        with pytest.raises(GalleryError, match="FACESEARCH_MILVUS_COLLECTION=.* is not a Milvus collection name"):
            collection_name(bad, "m", 0)
    with pytest.raises(GalleryError, match="model id"):
        collection_name("", "", 0)
    long = collection_name("", "m" * 300, 12)   # cut to 255, a hash keeping cut names apart, the generation kept
    assert len(long) == 255 and long.endswith("_g12") and long.startswith("facesearch_mmm")
    assert long[-13] == "_" and long[-12:-4].isalnum() and long != collection_name("", "m" * 301, 12)
    assert len(collection_name("x" * 255, "m", 1)) == 255


def test_a_milvus_index_follows_the_gallery_s_model_and_generation(tmp_path, monkeypatch):
    built = []

    def collection(dimension, config):
        built.append(config.milvus_collection)
        return Collection(dimension, IndexConfig(use_gpu=False), config.milvus_collection)

    # the real Milvus builder, with a stand-in for the collection: no server, only the name is checked
    monkeypatch.setattr(milvus_index, "MilvusIndex", collection)
    config = GalleryConfig(data_dir=tmp_path, vector_backend="milvus")
    rng = np.random.default_rng(3)
    with Gallery.open(config, model_id="Face/Net", dimension=D) as g:
        g.add_faces("p", [NewFace(v, crop_jpeg=v.tobytes()) for v in unit(rng, 3)])
        g.reindex("other", D, lambda crops: np.stack([np.frombuffer(c, np.float32) for c in crops]))
        assert built == ["facesearch_face_net", "facesearch_other_g1"] and g.generation == 1
        g.model_id, g.generation = "next", 4   # as a replica following another's reindex would
        g._new_index()
        assert built[-1] == "facesearch_next_g4"
    with Gallery.open(config, model_id="other", dimension=D):
        assert built[-1] == "facesearch_other_g1"
    with pytest.raises(GalleryError, match="not a Milvus collection name"):
        Gallery.open(config.model_copy(update={"milvus_collection": "bad-name"}), model_id="other", dimension=D)
