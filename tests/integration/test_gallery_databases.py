"""The gallery on each database: what differs between SQLite and PostgreSQL is handled.

Bind-parameter limits (PostgreSQL allows 65535 per statement), migrations, URLs,
timezone-aware timestamps, JSON metadata and 32-bit identity keys. The behaviour
shared by every backend is compared in test_congruence.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import inspect, select, text

from facesearch.gallery import Enrolment, Gallery, GalleryConfig, IndexConfig, InvalidInputError, NewFace
from facesearch.gallery.schema import faces
from facesearch.gallery.sql import connect

D = 8


def open_gallery(path, url, **kw):
    config = GalleryConfig(data_dir=path, database_url=url, index=IndexConfig(use_gpu=False, **kw))
    return Gallery.open(config, model_id="db-test", dimension=D)


def unit(rng, n):
    x = rng.normal(size=(n, D)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_migrations_run_and_types_fit(tmp_path, database_url):
    with open_gallery(tmp_path, database_url) as g:
        with g.engine.connect() as conn:
            assert conn.execute(text("select version_num from alembic_version")).scalar() == "0004"
        tables = set(inspect(g.engine).get_table_names())
        assert {"gallery_meta", "identities", "faces", "changes", "alembic_version"} <= tables
        columns = {c["name"]: c["type"] for c in inspect(g.engine).get_columns("faces")}
        if g.engine.dialect.name == "postgresql":
            assert str(columns["embedding"]) == "BYTEA" and str(columns["id"]) == "BIGINT"
    with open_gallery(tmp_path, database_url) as g:   # a second open finds the schema at head
        assert g.info().identity_count == 0


def test_more_values_than_one_statement_may_bind(tmp_path, database_url):
    """70 000 hashes and a 3 000-face replay go through IN lists in chunks."""
    rng = np.random.default_rng(1)
    hashes = [f"{i:064x}" for i in range(70_000)]
    g = open_gallery(tmp_path, database_url)
    g.add_faces("many", [NewFace(v, source_sha256=hashes[i * 20]) for i, v in enumerate(unit(rng, 3000))])
    assert g.existing_sources("many", hashes) == {hashes[i * 20] for i in range(3000)}
    g.close(snapshot=False)   # the reopen replays 3000 added faces from the change log
    with open_gallery(tmp_path, database_url) as g:
        assert g.indexed_count() == g.info().face_count == 3000
        assert g.changes_since_snapshot == 3000   # replayed, not rebuilt


def test_timestamps_are_utc_aware_and_metadata_round_trips(tmp_path, database_url):
    meta = {"team": "Avengers", "tags": ["a", "ü", "名前"], "nested": {"n": 1, "x": None}, "f": 1.5}
    with open_gallery(tmp_path, database_url) as g:
        g.add_batch([Enrolment("a", [NewFace(np.ones(D))], "Ä", meta)])
        ident = g.get_identity("a")
        assert ident.metadata == meta and ident.display_name == "Ä"
        assert ident.created_at.utcoffset().total_seconds() == 0
        assert ident.updated_at == ident.created_at
        listed = g.list_identities()[0][0]
        assert (listed.created_at, listed.metadata) == (ident.created_at, meta)


def test_page_tokens_beyond_the_key_range_are_refused_alike(tmp_path, database_url):
    import base64

    with open_gallery(tmp_path, database_url) as g:
        g.add_faces("a", [NewFace(np.ones(D))])
        largest = base64.urlsafe_b64encode(f"i:{2**31 - 1}".encode()).decode().rstrip("=")
        assert g.list_identities(10, largest) == ([], "")
        for pk in (2**31, 2**63):
            token = base64.urlsafe_b64encode(f"i:{pk}".encode()).decode().rstrip("=")
            with pytest.raises(InvalidInputError, match="page_token"):
                g.list_identities(10, token)


def test_reindex_rewrites_the_embeddings(tmp_path, database_url):
    rng = np.random.default_rng(2)
    x = unit(rng, 12)
    with open_gallery(tmp_path, database_url) as g:
        g.add_batch([Enrolment(f"p{i}", [NewFace(v, crop_jpeg=v.tobytes())]) for i, v in enumerate(x)])
        assert g.reindex("half", 4, lambda crops: np.stack([np.frombuffer(c, np.float32)[:4] for c in crops])) == 12
        with g.engine.connect() as conn:
            assert {len(bytes(b)) for b in conn.execute(select(faces.c.embedding)).scalars()} == {16}
        assert g.search(x[3, :4], max_distance=None)[0][0].identity_id == "p3"


def test_a_plain_postgresql_url_uses_psycopg(postgres_url):
    engine = connect(postgres_url.replace("postgresql+psycopg://", "postgresql://", 1))
    try:
        assert engine.dialect.driver == "psycopg"
        with engine.connect() as conn:
            assert conn.execute(text("select 1")).scalar() == 1
    finally:
        engine.dispose()


def test_sqlite_gets_its_pragmas_and_postgresql_none(tmp_path, database_url):
    with open_gallery(tmp_path, database_url) as g:
        if g.engine.dialect.name == "sqlite":
            with g.engine.connect() as conn:
                assert conn.execute(text("pragma journal_mode")).scalar() == "wal"
                assert conn.execute(text("pragma foreign_keys")).scalar() == 1
        else:
            assert not (tmp_path / "gallery.db").exists()   # the data directory holds only the index


def test_an_unreachable_database_is_a_gallery_error_without_the_password(tmp_path):
    from facesearch.gallery import GalleryError

    url = "postgresql+psycopg://someone:hunter2@127.0.0.1:1/facesearch?connect_timeout=5"
    with pytest.raises(GalleryError, match="cannot open the database") as caught:
        Gallery.open(GalleryConfig(data_dir=tmp_path, database_url=url), model_id="m", dimension=D)
    assert "hunter2" not in str(caught.value)
    Gallery.open(GalleryConfig(data_dir=tmp_path), model_id="m", dimension=D).close()   # the lock was released


def test_migration_0002_keeps_earlier_duplicates_and_enforces_uniqueness_from_then_on(tmp_path, database_url):
    """A gallery at 0001 holding the same image and the same embedding twice for one identity."""
    import datetime

    from sqlalchemy.exc import IntegrityError

    from facesearch.gallery.migrate import upgrade
    from facesearch.gallery.schema import gallery_meta, identities

    url = database_url or f"sqlite:///{tmp_path}/gallery.db"
    engine = connect(url)
    upgrade(engine, "0001")
    v = unit(np.random.default_rng(7), 2)
    when = datetime.datetime.now(datetime.timezone.utc)
    with engine.begin() as conn:
        conn.execute(gallery_meta.insert(), [{"key": "model_id", "value": "db-test"}, {"key": "dimension", "value": str(D)}])
        pk = conn.execute(identities.insert().values(identity_id="a", display_name="", metadata={},
                                                     created_at=when, updated_at=when)).inserted_primary_key[0]
        for vec, sha in [(v[0], "a" * 64), (v[0], "a" * 64), (v[1], None), (v[1], None)]:
            conn.execute(text("insert into faces (identity_pk, embedding, model_id, source_sha256, created_at) "
                              "values (:pk, :e, 'db-test', :s, :t)"),
                         {"pk": pk, "e": vec.astype("<f4").tobytes(), "s": sha, "t": when})
    engine.dispose()
    with open_gallery(tmp_path, url) as g:
        assert g.info().face_count == g.indexed_count() == 4   # nothing is lost
        with g.engine.connect() as conn:
            rows = conn.execute(select(faces.c.source_sha256, faces.c.embedding_sha256).order_by(faces.c.id)).all()
        assert [r.source_sha256 for r in rows] == ["a" * 64, None, None, None]
        assert rows[2].embedding_sha256 is not None and rows[3].embedding_sha256 is None
        again = g.add_faces("a", [NewFace(v[0], source_sha256="a" * 64), NewFace(v[1])])
        assert again.duplicates == [0, 1]
        with pytest.raises(IntegrityError), g.engine.begin() as conn:   # the database itself refuses
            conn.execute(text("insert into faces (identity_pk, embedding, model_id, source_sha256, created_at) "
                              "values (:pk, :e, 'db-test', :s, :t)"),
                         {"pk": pk, "e": b"x", "s": "a" * 64, "t": when})


def test_prefix_filter_and_face_pages_agree_on_both_databases(tmp_path, database_url):
    """The prefix is case-sensitive and counts characters, not bytes, on SQLite and PostgreSQL alike;
    a face page token is refused as an identity page token, and beyond BIGINT."""
    import base64

    rng = np.random.default_rng(3)
    with open_gallery(tmp_path, database_url) as g:
        for i, (iid, name) in enumerate([("emile", "Émile"), ("eve", "eve"), ("x_1", "Ève"), ("50%", "a_b")]):
            g.add_faces(iid, [NewFace(v) for v in unit(rng, 3)] if i == 0 else [NewFace(unit(rng, 1)[0])],
                        display_name=name)

        def ids(prefix):
            return [i.identity_id for i in g.list_identities(100, prefix=prefix)[0]]

        assert (ids("É"), ids("e"), ids("Ève"), ids("E"), ids("5"), ids("%"), ids("a_")) == \
            (["emile"], ["emile", "eve"], ["x_1"], [], ["50%"], [], ["50%"])
        first, token = g.list_faces("emile", 2)
        rest, end = g.list_faces("emile", 2, token)
        assert [f.face_id for f in first + rest] == g.get_identity("emile").face_ids and end == ""
        with pytest.raises(InvalidInputError, match="page_token"):
            g.list_identities(10, token)
        beyond = base64.urlsafe_b64encode(f"f:{2**63}".encode()).decode().rstrip("=")
        with pytest.raises(InvalidInputError, match="page_token"):
            g.list_faces("emile", 10, beyond)
