"""One gallery scenario on every backend combination, all answers compared with the reference.

In the style of qdrant-client's congruence tests: the same writes and reads run on
each vector backend (FAISS, Milvus Lite) and index type (flat, ivf trained for real,
hnsw) and each database (SQLite, PostgreSQL), and every answer must equal FAISS
flat + SQLite's: the same
identities and face ids in the same order, distances within 1e-4. The admin writes (moves,
a merge, a rename) are part of the scenario, before a restart and before a replay. ivf probes every
list and hnsw searches a wide beam, so the exact answer is the expected one.
No model: clustered random unit vectors stand in for faces.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from facesearch.gallery import Enrolment, Gallery, GalleryConfig, IndexConfig, NewFace

D = 64
IDENTITIES = 40
FACES_EACH = 6          # 240 faces: ivf trains at 200, during the last enrolment batch
INDEXES = {
    "flat": IndexConfig(kind="flat", use_gpu=False),
    # below the setting's floor of 1000 on purpose (so the test stays small): built unvalidated
    "ivf": IndexConfig.model_construct(kind="ivf", ivf_train_size=200, ivf_nlist=4, ivf_nprobe=4, use_gpu=False),
    "hnsw": IndexConfig(kind="hnsw", hnsw_ef_search=256, use_gpu=False),
}
DATABASES = ["sqlite", "postgresql"]
# milvus: Milvus Lite, a real engine in-process; milvus-server: a Milvus 2.3 standalone server
# (one per test session, tests/conftest.py), each test in a collection of its own
BACKENDS = ["faiss", "milvus", "milvus-server"]
REFERENCE = ("flat", "sqlite")


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def data():
    rng = np.random.default_rng(12)
    centres = unit(rng.normal(size=(IDENTITIES, D)))
    faces = unit(np.repeat(centres, FACES_EACH, 0) + 0.35 / math.sqrt(D) * rng.normal(size=(IDENTITIES * FACES_EACH, D)))
    known = unit(centres[[0, 3, 5, 9, 17, 31, 39]] + 0.35 / math.sqrt(D) * rng.normal(size=(7, D)))
    unknown = unit(rng.normal(size=(5, D)))
    return faces.reshape(IDENTITIES, FACES_EACH, D), known, unknown


def answers(g: Gallery, known, unknown) -> dict:
    """Everything the scenario compares, as plain values."""
    def matches(result):
        return [[(m.identity_id, m.display_name, m.face_id, m.distance) for m in ms] for ms in result]

    pages, token = [], ""
    while True:
        page, token = g.list_identities(7, token)
        pages.append([(i.identity_id, i.display_name, i.metadata, i.face_ids) for i in page])
        if not token:
            break
    info = g.info()
    v = g.verify(known[1], "id03")
    faces, token = [], ""
    while True:   # an identity that admin() gives moved faces
        page, token = g.list_faces("id00", 3, token)
        faces.append([(f.face_id, f.identity_id, f.model_id, f.box, f.has_image) for f in page])
        if not token:
            break
    return {
        "top3": matches(g.search(np.vstack([known, unknown]), top_k=3, max_distance=None)),
        "top1_cutoff": matches(g.search(np.vstack([known, unknown]))),   # unknown faces: no match
        "top50": matches(g.search(known[:2], top_k=50, max_distance=None)),
        "pages": pages,
        "identity": (lambda i: (i.identity_id, i.display_name, i.metadata, i.face_ids,
                                i.created_at.tzinfo is not None))(g.get_identity("id09")),
        "verify": (v.identity_id, v.face_id, v.distance),
        "counts": (info.identity_count, info.face_count, g.indexed_count(), g.indexed_ids().tolist()),
        "faces": faces,
        "prefix": [i.identity_id for i in g.list_identities(100, prefix="id3")[0]],
    }


def admin(g: Gallery, faces) -> dict:
    """The admin writes: moves (one creating its target), a merge dropping a duplicate, a rename."""
    g.add_faces("id09", [NewFace(faces[20][0])])   # id20's first face: a duplicate once merged into id09
    return {
        "moved": g.move_faces(g.get_identity("id31").face_ids[:2], "id00"),
        "created": g.move_faces(g.get_identity("id39").face_ids[:1], "id3-new", create_if_missing=True),
        "merged": g.merge_identities(["id20", "id21"], "id09"),
        "renamed": g.update_identity("id00", display_name="", metadata={}).display_name,
    }


def scenario(data_dir: Path, database_url: str, index: IndexConfig, backend: str = "faiss", **milvus) -> dict:
    faces, known, unknown = data()
    config = GalleryConfig(data_dir=data_dir, database_url=database_url, index=index, vector_backend=backend,
                           **milvus)
    out: dict = {}
    g = Gallery.open(config, model_id="congruence", dimension=D)
    for start in range(0, IDENTITIES, 10):   # four transactions: ivf trains inside the last one
        g.add_batch([Enrolment(f"id{i:02d}", [NewFace(v) for v in faces[i]], f"Person {i}", {"n": i, "é": "ü"})
                     for i in range(start, start + 10)])
    out["description"] = g.index_description
    out["enrolled"] = answers(g, known, unknown)

    g.delete_face(out["enrolled"]["top3"][1][0][2])   # id03's face nearest its query: the next one answers
    out["deleted_face"] = g.delete_identity("id05")
    g.update_identity("id09", display_name="Renamed", metadata={"team": "x"})
    out["after_deletes"] = answers(g, known, unknown)
    out["admin"] = admin(g, faces)
    out["after_admin"] = answers(g, known, unknown)

    g.close()                                   # clean restart: from the snapshot
    g = Gallery.open(config, model_id="congruence", dimension=D)
    out["after_restart"] = answers(g, known, unknown)
    g.add_faces("id05", [NewFace(faces[5][0])], display_name="Back")
    g.delete_face(g.get_identity("id17").face_ids[-1])
    g.move_faces(g.get_identity("id17").face_ids[:1], "id05")
    g.close(snapshot=False)                     # as after a crash: replay the change log
    g = Gallery.open(config, model_id="congruence", dimension=D)
    out["after_replay"] = answers(g, known, unknown)
    g.close()
    return out


def assert_congruent(expected, got, path="result"):
    """Equal structures; floats within 1e-4."""
    if isinstance(expected, float) or isinstance(got, float):
        assert got == pytest.approx(expected, abs=1e-4), f"{path}: {got} != {expected}"
    elif isinstance(expected, (list, tuple)):
        assert isinstance(got, (list, tuple)) and len(got) == len(expected), f"{path}: {got!r} != {expected!r}"
        for i, (e, g) in enumerate(zip(expected, got)):
            assert_congruent(e, g, f"{path}[{i}]")
    elif isinstance(expected, dict):
        assert isinstance(got, dict) and set(got) == set(expected), f"{path}: keys {sorted(got)} != {sorted(expected)}"
        for k in expected:
            assert_congruent(expected[k], got[k], f"{path}.{k}")
    else:
        assert got == expected, f"{path}: {got!r} != {expected!r}"


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    kind, _ = REFERENCE
    return scenario(tmp_path_factory.mktemp("reference"), "", INDEXES[kind])


# Every index kind on both databases in-process; the Milvus server (15-30 s a case) takes each
# index kind once, across both databases, to keep `make test` within its time.
CASES = [(b, k, d) for b in BACKENDS[:2] for k in INDEXES for d in DATABASES] + \
    [("milvus-server", "flat", "sqlite"), ("milvus-server", "ivf", "postgresql"), ("milvus-server", "hnsw", "postgresql")]


@pytest.mark.parametrize("backend, kind, database", CASES)
def test_every_backend_answers_like_flat_on_sqlite(backend, kind, database, reference, tmp_path, request):
    milvus = {}
    if backend.startswith("milvus"):
        pytest.importorskip("pymilvus", reason="Milvus needs pymilvus (the test extra)")
    if backend == "milvus-server":
        milvus = {"milvus_uri": request.getfixturevalue("milvus_server_uri"),
                  "milvus_collection": f"congruence_{kind}_{database}"}
    url = "" if database == "sqlite" else request.getfixturevalue("postgres_url")
    got = scenario(tmp_path, url, INDEXES[kind], backend.split("-")[0], **milvus)
    if backend.startswith("milvus"):
        assert got["description"] == f"milvus {dict(flat='FLAT', ivf='IVF_FLAT', hnsw='HNSW')[kind]}"
    elif kind == "ivf":
        assert got["description"] == "ivf(nlist=4,nprobe=4)", "ivf did not train: the test would compare flat"
    assert got["enrolled"]["top1_cutoff"][-5:] == [[]] * 5, "unknown faces matched someone"
    assert got["enrolled"]["identity"][-1], "created_at is not timezone-aware"
    assert got["admin"] == {"moved": 2, "created": 1, "merged": FACES_EACH * 2 - 1, "renamed": ""}
    assert got["after_admin"]["prefix"] == ["id30", "id31", "id32", "id33", "id34", "id35", "id36", "id37", "id38",
                                            "id39", "id3-new"]
    moved_in = [f for page in got["after_admin"]["faces"] for f in page]
    assert len(moved_in) == FACES_EACH + 2 and {f[1] for f in moved_in} == {"id00"}
    assert_congruent({k: v for k, v in reference.items() if k != "description"},
                     {k: v for k, v in got.items() if k != "description"})
