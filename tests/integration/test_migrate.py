"""facesearch-indexer migrate: SQLite + FAISS into PostgreSQL + Milvus Lite, verified and resumable.

No model: random unit vectors stand in for faces; a few faces carry crops and boxes so that
every column is seen to travel.
"""

from __future__ import annotations

from datetime import timezone

import numpy as np
import pytest
from sqlalchemy import create_engine, select

from facesearch.gallery import Enrolment, Gallery, GalleryConfig, IndexConfig, NewFace
from facesearch.gallery import transfer
from facesearch.gallery.schema import faces, gallery_meta, identities
from facesearch.indexer.cli import main

pytest.importorskip("pymilvus", reason="Milvus Lite needs pymilvus[milvus_lite] (the test extra)")

D = 32


def small_gallery(config: GalleryConfig) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 4, D)).astype(np.float32)
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    with Gallery.open(config, model_id="random-32", dimension=D) as g:
        g.add_batch([Enrolment(f"p{i:02d}", [NewFace(v, source_sha256=f"{i}-{j}", source_path=f"p{i}/{j}.jpg",
                                                     box=(j, 2, 30, 40), detection_score=0.5 + j / 10,
                                                     crop_jpeg=bytes([i, j]) * 50 if i % 7 == 0 else None)
                                           for j, v in enumerate(x[i])], f"Person {i}", {"i": i, "é": "ü"})
                     for i in range(30)])
        g.delete_face(g.get_identity("p05").face_ids[1])   # a gap in the face ids
        g.delete_identity("p06")


def rows(url: str, table) -> list[dict]:
    engine = create_engine(url)
    with engine.connect() as conn:
        out = [dict(r) for r in conn.execute(select(table).order_by(*table.primary_key.columns)).mappings()]
    engine.dispose()
    for r in out:   # SQLite gives naive UTC datetimes, PostgreSQL aware ones
        r.update({k: v.replace(tzinfo=timezone.utc) if hasattr(v, "tzinfo") and v.tzinfo is None else v
                  for k, v in r.items()})
        r.update({k: v.astimezone(timezone.utc) for k, v in r.items() if hasattr(v, "astimezone")})
        r.update({k: bytes(v) for k, v in r.items() if isinstance(v, memoryview)})
    return out


def test_migrate_sqlite_faiss_to_postgresql_milvus_resumes_and_verifies(tmp_path, postgres_url, monkeypatch, capsys):
    for var in ("FACESEARCH_DATABASE_URL", "FACESEARCH_VECTOR_BACKEND", "FACESEARCH_MILVUS_URI", "FACESEARCH_INDEX"):
        monkeypatch.delenv(var, raising=False)
    source = GalleryConfig(data_dir=tmp_path / "var", index=IndexConfig(kind="flat", use_gpu=False))
    small_gallery(source)
    target = source.model_copy(update={"database_url": postgres_url, "vector_backend": "milvus",
                                       "milvus_uri": str(tmp_path / "milvus.db"), "data_dir": tmp_path / "new"})

    class Interrupted(Exception):
        pass

    def stop_midway(table, done, total):
        if table == "faces" and done >= 40:
            raise Interrupted   # as a kill after the second batch of faces was committed

    with pytest.raises(Interrupted):
        transfer.migrate(source, target, batch=20, progress=stop_midway)
    assert len(rows(postgres_url, faces)) == 40 and len(rows(postgres_url, identities)) == 29

    argv = ["--data-dir", str(tmp_path / "var"), "--quiet", "migrate", "--to-database-url", postgres_url,
            "--to-vector-backend", "milvus", "--to-milvus-uri", str(tmp_path / "milvus.db"),
            "--to-data-dir", str(tmp_path / "new"), "--batch-size", "20", "--sample", "50"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "migrated 29 identities and 115 faces (0 and 75 copied in this run" in out, out
    assert "50 sampled searches, 0 with another top-1" in out, out

    sqlite_url = source.url
    for table in (identities, faces):   # every column, the same ids
        assert rows(postgres_url, table) == rows(sqlite_url, table), table.name
    source_meta = rows(sqlite_url, gallery_meta)
    assert "pruned_through" in {r["key"] for r in source_meta}   # the source's log was pruned...
    assert rows(postgres_url, gallery_meta) == [r for r in source_meta if r["key"] not in transfer.LOG_KEYS]
    with Gallery.open(source) as old, Gallery.open(target) as new:
        assert new.index_description == "milvus FLAT" and new.indexed_ids().tolist() == old.indexed_ids().tolist()
        assert new.follow() == 0 and new.healthy   # ...and the copy, without that log, has nothing to catch up
        q = old.indexed_vectors(old.indexed_ids()[[3, 50, 100]])
        assert [[(m.identity_id, m.face_id) for m in ms] for ms in new.search(q, top_k=3, max_distance=None)] == \
               [[(m.identity_id, m.face_id) for m in ms] for ms in old.search(q, top_k=3, max_distance=None)]

    assert main(argv) == 0   # again: nothing left to copy, still verified
    assert "(0 and 0 copied in this run" in capsys.readouterr().out
    with Gallery.open(target) as new:   # PostgreSQL's sequences moved past the copied ids
        assert new.add_faces("newcomer", [NewFace(q[0])]).face_ids[0] > max(new.indexed_ids()[:-1])


def test_migrate_refuses_a_target_holding_another_gallery(tmp_path, monkeypatch):
    monkeypatch.delenv("FACESEARCH_DATABASE_URL", raising=False)
    a = GalleryConfig(data_dir=tmp_path / "a", index=IndexConfig(use_gpu=False))
    b = GalleryConfig(data_dir=tmp_path / "b", index=IndexConfig(use_gpu=False))
    small_gallery(a)
    with Gallery.open(b, model_id="random-32", dimension=D) as g:
        g.add_faces("someone-else", [NewFace(np.eye(D, dtype=np.float32)[0])])
    with pytest.raises(Exception, match="already holds another gallery"):
        transfer.migrate(a, b)


def test_a_replica_already_serving_the_target_follows_the_copy_with_its_generation_and_calibration(
        tmp_path, postgres_url, monkeypatch):
    monkeypatch.delenv("FACESEARCH_DATABASE_URL", raising=False)
    source = GalleryConfig(data_dir=tmp_path / "var", index=IndexConfig(kind="flat", use_gpu=False))
    small_gallery(source)
    engine = create_engine(f"sqlite:///{tmp_path / 'var' / 'gallery.db'}")
    with engine.begin() as conn:   # as a reindex and a Calibrate(apply) leave them
        conn.execute(gallery_meta.insert(), [{"key": "generation", "value": "3"},
                                             {"key": "calibration", "value": '{"max_distance": 0.9}'}])
    engine.dispose()
    target = source.model_copy(update={"database_url": postgres_url, "data_dir": tmp_path / "new"})
    with Gallery.open(target.model_copy(update={"data_dir": tmp_path / "replica"}),
                      model_id="random-32", dimension=D) as replica:   # bound the model: meta not empty
        assert transfer.migrate(source, target, sample=20).ok
        replica.follow()   # the copy came with change-log rows
        with Gallery.open(source) as old:
            assert replica.indexed_count() == old.indexed_count()
        assert replica.generation == 3 and replica.refresh_cutoff() == 0.9
    refused = source.model_copy(update={"database_url": f"sqlite:///{tmp_path / 'other.db'}"})
    with pytest.raises(Exception, match="data directory of its own"):
        transfer.migrate(source, refused)
