"""The gallery on real FAISS and a real SQLite file."""

import concurrent.futures
import threading

import numpy as np
import pytest
from sqlalchemy import text

from facesearch.gallery import (
    Enrolment,
    FaissIndex,
    Gallery,
    GalleryConfig,
    GalleryError,
    GalleryLockedError,
    IndexConfig,
    InvalidEmbeddingError,
    InvalidInputError,
    ModelMismatchError,
    NewFace,
    NotFoundError,
)

from tests.helpers import unit

D = 128


def noisy(rng, centres, noise=0.35):
    x = centres + noise / np.sqrt(centres.shape[1]) * rng.normal(size=centres.shape)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def open_gallery(path, kind="flat", **kw):
    index = IndexConfig(kind=kind, ivf_train_size=1000, ivf_nlist=32, **kw)
    return Gallery.open(GalleryConfig(data_dir=path, index=index), model_id="test-model", dimension=D)


def enrol_each(g, vectors, prefix="p"):
    """One identity per vector, in one transaction; returns face ids in order."""
    res = g.add_batch([Enrolment(f"{prefix}{i}", [NewFace(v)]) for i, v in enumerate(vectors)])
    return np.array([r.face_ids[0] for r in res])


def test_flat_search_equals_numpy_brute_force_on_10k(tmp_path):
    rng = np.random.default_rng(0)
    x, q = unit(rng, 10_000), unit(rng, 50)
    with open_gallery(tmp_path) as g:
        ids = enrol_each(g, x)
        got = g.search(q, top_k=5, max_distance=None)
        best = g.search(q, top_k=1, max_distance=None)  # the vectorised top-1 path agrees
        assert [[(m.face_id, m.identity_id) for m in b] for b in best] == [[(m[0].face_id, m[0].identity_id)] for m in got]
        np.testing.assert_allclose([b[0].distance for b in best], [m[0].distance for m in got], rtol=1e-5)
    sq = ((q[:, None, :] - x[None]) ** 2).sum(-1)
    order = np.argsort(sq, axis=1)[:, :5]
    for i in range(len(q)):
        assert [m.face_id for m in got[i]] == ids[order[i]].tolist()
        np.testing.assert_allclose([m.distance for m in got[i]], 3 * sq[i, order[i]], rtol=1e-4, atol=1e-4)
        assert [m.identity_id for m in got[i]] == [f"p{j}" for j in order[i]]


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_recall_at_1_vs_flat_on_100k_clustered(kind):
    rng = np.random.default_rng(1)
    centres = unit(rng, 20_000)  # identities with 5 noisy faces each: the realistic case
    x = noisy(rng, np.repeat(centres, 5, 0))
    q = noisy(rng, centres[rng.choice(len(centres), 500, replace=False)])  # new photos of enrolled people
    ids = np.arange(len(x), dtype=np.int64)
    flat, approx = FaissIndex(D), FaissIndex(D, IndexConfig(kind=kind))
    for index in (flat, approx):
        index.add(ids, x)
    assert approx.description.startswith(kind) and "flat until" not in approx.description
    truth, got = flat.search(q, 1)[1][:, 0], approx.search(q, 1)[1][:, 0]
    assert (truth == got).mean() >= 0.99


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_deleted_faces_never_come_back_even_after_restart(tmp_path, kind):
    rng = np.random.default_rng(3)
    x = unit(rng, 2000)
    g = open_gallery(tmp_path, kind)
    ids = enrol_each(g, x)
    doomed = [0, 5, 17, 999, 1500]
    for i in doomed[:3]:
        g.delete_face(int(ids[i]))
    g.delete_identity("p999")
    g.delete_identity("p1500")

    def check(gallery):
        found = gallery.search(x[doomed], top_k=20, max_distance=None)
        assert all(m.face_id not in ids[doomed] for ms in found for m in ms)
        assert [ms[0].face_id for ms in gallery.search(x[[1, 2, 3]], max_distance=None)] == ids[[1, 2, 3]].tolist()
        assert gallery.info().face_count == gallery.indexed_count() == 1995

    check(g)
    g.close()                       # clean shutdown: snapshot
    g = open_gallery(tmp_path, kind)
    check(g)
    g.delete_face(int(ids[7]))
    doomed.append(7)
    g.close(snapshot=False)         # as after a crash: replay the change log
    g = open_gallery(tmp_path, kind)
    found = g.search(x[doomed], top_k=20, max_distance=None)
    assert all(m.face_id not in ids[doomed] for ms in found for m in ms)
    assert g.info().face_count == g.indexed_count() == 1994
    g.close()


@pytest.mark.parametrize("damage", ["missing", "corrupt", "other-type"])
def test_damaged_or_foreign_snapshot_is_rebuilt_with_identical_results(tmp_path, damage):
    rng = np.random.default_rng(4)
    x = unit(rng, 3000)
    q = noisy(rng, x[rng.choice(3000, 20, replace=False)])
    with open_gallery(tmp_path) as g:
        enrol_each(g, x)
        before = g.search(q, top_k=3, max_distance=None)
    snap = tmp_path / "index"
    index_file = next(snap.glob("index-*.faiss"))
    if damage == "missing":
        index_file.unlink()
    elif damage == "corrupt":
        with open(index_file, "r+b") as f:
            f.seek(1000)
            f.write(b"\xff" * 64)
    kind = "hnsw" if damage == "other-type" else "flat"
    with open_gallery(tmp_path, kind) as g:
        after = g.search(q, top_k=3, max_distance=None)
    if kind == "flat":
        assert after == before
    else:  # hnsw is approximate: same top-1
        assert [a[0].face_id for a in after] == [b[0].face_id for b in before]
    assert (snap / "MANIFEST.json").is_file()


def test_search_groups_by_identity_and_applies_the_cutoff(tmp_path):
    rng = np.random.default_rng(5)
    base = unit(rng, 3)
    with open_gallery(tmp_path) as g:
        near = [b + 0.05 * unit(rng, 1)[0] for b in (base[0], base[0], base[0])]
        g.add_faces("alice", [NewFace(v) for v in near], display_name="Alice")
        g.add_faces("bob", [NewFace(base[1])], display_name="Bob")
        (matches,) = g.search(base[0], top_k=5, max_distance=None)
        assert [m.identity_id for m in matches] == ["alice", "bob"]  # alice once, with her best face
        assert matches[0].distance < 0.05 and matches[0].display_name == "Alice"
        assert matches[0].distance <= min(3 * float(np.sum((v / np.linalg.norm(v) - base[0]) ** 2)) for v in near) + 1e-4
        assert [m.identity_id for m in g.search(base[0], top_k=5)[0]] == ["alice"]  # bob beyond 3.5
        assert g.search(base[2], top_k=3)[0] == []
        v = g.verify(base[1], "bob")
        assert v.identity_id == "bob" and v.distance < 1e-5


def test_model_guard_and_bad_embeddings(tmp_path):
    with open_gallery(tmp_path) as g:
        g.add_faces("a", [NewFace(unit(np.random.default_rng(6), 1)[0])])
        with pytest.raises(ModelMismatchError, match="'other'"):
            g.search(np.ones(D), model_id="other")
        with pytest.raises(ModelMismatchError):
            g.add_faces("b", [NewFace(np.ones(D))], model_id="other")
        with pytest.raises(InvalidEmbeddingError, match="512 values"):
            g.search(np.ones(512))
        with pytest.raises(InvalidEmbeddingError, match="NaN"):
            g.search(np.full(D, np.nan))
        with pytest.raises(InvalidEmbeddingError, match="zeros"):
            g.add_faces("c", [NewFace(np.zeros(D))])
        assert g.info().face_count == 1  # nothing half-written by the refused calls
    with pytest.raises(ModelMismatchError, match="reindex"):
        Gallery.open(GalleryConfig(data_dir=tmp_path), model_id="facenet-512", dimension=512)
    with Gallery.open(GalleryConfig(data_dir=tmp_path)) as g:  # no model given: adopts the stored one
        assert (g.model_id, g.dimension) == ("test-model", D)


def test_identity_crud_and_stable_paging(tmp_path):
    rng = np.random.default_rng(7)
    with open_gallery(tmp_path) as g:
        for i in range(25):
            g.add_faces(f"id{i:02d}", [NewFace(v) for v in unit(rng, 2)], display_name=f"N{i}", metadata={"n": str(i)})
        page, token = g.list_identities(10)
        assert [p.identity_id for p in page] == [f"id{i:02d}" for i in range(10)] and token
        g.delete_identity("id12")                        # changes behind the cursor do not shift it
        g.add_faces("late", [NewFace(unit(rng, 1)[0])])
        seen = [p.identity_id for p in page]
        while token:
            page, token = g.list_identities(10, token)
            seen += [p.identity_id for p in page]
        assert seen == [f"id{i:02d}" for i in range(25) if i != 12] + ["late"]
        ident = g.update_identity("id03", display_name="Renamed", metadata={"team": "x"})
        assert (ident.display_name, ident.metadata, ident.face_count) == ("Renamed", {"team": "x"}, 2)
        assert g.search(g.indexed_vectors(g.indexed_ids()[:1]))[0][0].display_name in {"N0", "Renamed"}
        with pytest.raises(NotFoundError):
            g.get_identity("id12")
        with pytest.raises(NotFoundError):
            g.delete_face(10**9)
        with pytest.raises(InvalidInputError, match="page_token"):
            g.list_identities(10, "garbage!")
        assert g.info().identity_count == 25


def test_data_dir_is_held_by_one_process_and_schema_is_migrated(tmp_path):
    g = open_gallery(tmp_path)
    with pytest.raises(GalleryLockedError, match="in use by another process"):
        open_gallery(tmp_path)
    with g.engine.connect() as conn:
        assert conn.execute(text("select version_num from alembic_version")).scalar() == "0004"
        assert conn.execute(text("pragma journal_mode")).scalar() == "wal"
        assert conn.execute(text("pragma foreign_keys")).scalar() == 1
    g.close()
    open_gallery(tmp_path).close()  # released on close


def test_a_gallery_opened_in_one_thread_and_closed_in_another_lets_go_of_its_data_dir(tmp_path):
    """The server opens its gallery in a worker thread and closes it on the event loop's thread."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        g = pool.submit(open_gallery, tmp_path).result()
    g.close()
    open_gallery(tmp_path).close()


def test_concurrent_searches_while_adding_and_deleting(tmp_path):
    rng = np.random.default_rng(8)
    stable = unit(rng, 200)
    churn = unit(rng, 400)
    with open_gallery(tmp_path) as g:
        stable_ids = enrol_each(g, stable, "s")
        errors, stop = [], threading.Event()

        def searcher(seed):
            r = np.random.default_rng(seed)
            try:
                while not stop.is_set():
                    pick = r.choice(len(stable), 16)
                    got = g.search(stable[pick], top_k=1, max_distance=None)
                    assert [m[0].face_id for m in got] == stable_ids[pick].tolist()
            except Exception as exc:
                errors.append(exc)

        def writer(part):
            try:
                for i in range(part, len(churn), 2):
                    res = g.add_faces(f"c{i}", [NewFace(churn[i])])
                    if i % 3 == 0:
                        g.delete_face(res.face_ids[0])
            except Exception as exc:
                errors.append(exc)

        searchers = [threading.Thread(target=searcher, args=(s,)) for s in range(3)]
        writers = [threading.Thread(target=writer, args=(p,)) for p in range(2)]
        for t in searchers + writers:
            t.start()
        for t in writers:
            t.join()
        stop.set()
        for t in searchers:
            t.join()
        assert not errors, errors[:3]
        assert g.info().face_count == g.indexed_count() == 200 + 400 - len(range(0, 400, 3))


def test_reindex_switches_model_atomically(tmp_path):
    rng = np.random.default_rng(9)
    x = unit(rng, 30)
    with open_gallery(tmp_path) as g:
        res = g.add_batch([Enrolment(f"p{i}", [NewFace(v, crop_jpeg=v.tobytes())]) for i, v in enumerate(x)])
        # narrow stand-in model: the crop bytes carry the old vector; the new model keeps 64 of its values
        new = lambda crops: np.stack([np.frombuffer(c, np.float32)[:64] for c in crops])  # noqa: E731
        assert g.reindex("half-model", 64, new, batch_size=7) == 30
        assert (g.model_id, g.dimension, g.info().model_id) == ("half-model", 64, "half-model")
        got = g.search(x[4, :64], max_distance=None)
        assert got[0][0].face_id == res[4].face_ids[0] and got[0][0].distance < 1e-4
        with pytest.raises(InvalidEmbeddingError):
            g.search(x[4])
    with Gallery.open(GalleryConfig(data_dir=tmp_path), model_id="half-model", dimension=64) as g:
        assert g.indexed_count() == 30
        g.add_faces("nocrop", [NewFace(np.ones(64))])
        with pytest.raises(GalleryError, match="1 of 31 faces have no stored crop"):
            g.reindex("other", 64, new)
        assert g.model_id == "half-model"


def test_add_batch_in_one_transaction_with_repeats_and_renames(tmp_path):
    rng = np.random.default_rng(11)
    x = unit(rng, 6)
    with open_gallery(tmp_path) as g:
        g.add_faces("old", [NewFace(x[0])], display_name="Old name")
        res = g.add_batch([Enrolment("new", [NewFace(x[1])], "New"), Enrolment("old", [NewFace(x[2])], "Renamed"),
                           Enrolment("new", [NewFace(x[3]), NewFace(x[4])])])
        assert [(r.identity_id, r.created, len(r.face_ids)) for r in res] == [("new", True, 1), ("old", False, 1),
                                                                              ("new", False, 2)]
        assert g.get_identity("new").face_count == 3
        assert g.search(x[0])[0][0].display_name == "Renamed"   # the search sees the rename at once
        g.update_identity("new", display_name="Newer")
        assert g.search(x[4])[0][0].display_name == "Newer"
        with pytest.raises(InvalidEmbeddingError):   # one bad face: nothing of the batch is written
            g.add_batch([Enrolment("x", [NewFace(x[5])]), Enrolment("y", [NewFace(np.zeros(D))])])
        assert g.info().identity_count == 2 and g.info().face_count == 5
