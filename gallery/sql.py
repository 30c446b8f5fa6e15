"""The database: one engine per gallery, with each dialect's setup in this one place.

SQLite (the default, a file in the data directory) and PostgreSQL (psycopg 3) are
supported; the same migrations and queries run on both. What differs:

- SQLite gets its PRAGMAs on every connection (WAL, synchronous=FULL, foreign keys,
  a busy timeout); PostgreSQL needs none.
- `postgresql://` URLs are sent to psycopg 3 (`postgresql+psycopg://`), the driver
  the project installs, rather than SQLAlchemy's default psycopg2.
- PostgreSQL allows at most 65535 bind parameters per statement, so long IN lists
  go through in_chunks().
- Writers of every process sharing a PostgreSQL database take one transaction-scoped
  advisory lock (serialise_writes), so change-log seqs commit in order; SQLite's own
  database lock does the same for it.
- A reader that must see several tables as of one moment (opening, rebuilding, following)
  uses snapshot(): REPEATABLE READ on PostgreSQL, an explicit BEGIN on SQLite (pysqlite
  starts none for SELECTs, and WAL then gives the transaction one snapshot).
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Iterator, Sequence, TypeVar

from sqlalchemy import create_engine, delete, event, func, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url

from .errors import GalleryError, ModelMismatchError
from .schema import changes, faces, gallery_meta

T = TypeVar("T")

IN_CHUNK = 1000   # values per IN (...) list: far below any dialect's bind-parameter limit
WRITE_LOCK = 0x66616365   # the advisory lock of gallery writes ("face")
REINDEX_LOCK = 0x72656978   # the session advisory lock a reindex holds throughout ("reix")
CONNECT_TIMEOUT_S = 5     # a PostgreSQL server that does not answer is an error, not a stalled server
POOL_TIMEOUT_S = 10       # waiting for a pooled connection
INDEX_TS = "index_ts"     # gallery_meta: the newest committed write's timestamp in a shared index (Milvus)


def connect(url: str) -> Engine:
    """An engine for url with its dialect's per-connection setup."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    postgres = parsed.get_backend_name() == "postgresql"
    extra = {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}, "pool_timeout": POOL_TIMEOUT_S} if postgres else {}
    try:
        # hide_parameters: SQL logs and errors never show values (embeddings, names, metadata)
        engine = create_engine(parsed, pool_pre_ping=postgres, hide_parameters=True, **extra)
    except Exception as exc:  # unknown dialect, driver not installed
        raise GalleryError(f"cannot use the database {parsed.render_as_string(hide_password=True)}: {exc}") from None
    if engine.dialect.name == "sqlite":
        _sqlite_pragmas(engine)
    return engine


def shown(engine: Engine) -> str:
    """The engine's URL for messages, password hidden."""
    return engine.url.render_as_string(hide_password=True)


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: object) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")   # an acknowledged commit survives power loss too
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()


@contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction that sees every table as of one moment, so a face map, an index
    and a last seq read in it agree however other processes write meanwhile."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn
        else:
            conn.exec_driver_sql("BEGIN")
            try:
                yield conn
            finally:
                conn.rollback()


def in_chunks(values: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    """values in slices short enough for one IN (...) list on every dialect."""
    for i in range(0, len(values), size):
        yield values[i:i + size]


def bind_model(engine: Engine, model_id: str | None, dimension: int | None) -> tuple[str, int]:
    """The gallery's model: the stored one, or (for a gallery without faces) the one given."""
    with engine.begin() as conn:
        serialise_writes(conn)   # replicas opening a new gallery together: one binds, the others read it
        meta = dict(conn.execute(select(gallery_meta.c.key, gallery_meta.c.value)).all())
        has_faces = conn.execute(select(faces.c.id).limit(1)).first() is not None
        if "model_id" in meta and (has_faces or model_id is None):
            stored = (meta["model_id"], int(meta["dimension"]))
            if model_id is not None and (model_id, dimension or stored[1]) != stored:
                raise ModelMismatchError(
                    f"this gallery holds faces embedded by {stored[0]!r} ({stored[1]}-d), not {model_id!r}; "
                    f"run `facesearch-indexer reindex --model {model_id}` to switch it")
            return stored
        if model_id is None or dimension is None:
            raise GalleryError("a new gallery needs the model id and dimension it will hold")
        set_meta(conn, model_id, dimension)
        return model_id, dimension


def serialise_writes(conn: Connection) -> int:
    """First thing in a write transaction: wait for the other writers of every process, so that
    seqs commit in the order they are drawn and a follower reading the log in seq order never
    passes a seq that commits later. Returns the last seq committed before this transaction."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": WRITE_LOCK})
    return last_seq(conn)


def last_seq(conn: Connection) -> int:
    return conn.execute(select(func.max(changes.c.seq))).scalar() or 0


def get_meta(conn: Connection, key: str) -> str | None:
    return conn.execute(select(gallery_meta.c.value).where(gallery_meta.c.key == key)).scalar()


def _upsert(conn: Connection) -> postgresql.Insert | sqlite.Insert:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(gallery_meta)
    return sqlite.insert(gallery_meta)


def put_meta(conn: Connection, key: str, value: str) -> None:
    """Set key to value in one statement (INSERT .. ON CONFLICT), so two writers at once cannot collide."""
    stmt = _upsert(conn).values(key=key, value=value)
    conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"value": stmt.excluded.value}))


def raise_index_ts(conn: Connection, ts: int) -> None:
    """Raise the shared index's newest-write timestamp to ts (never lower it): the guarantee
    timestamp every replica's search waits for (milvus_index.py). Zero-padded, so text order
    is number order on every dialect and the compare happens in the one statement."""
    if ts <= 0:
        return
    stmt = _upsert(conn).values(key=INDEX_TS, value=f"{ts:020d}")
    conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"value": stmt.excluded.value},
                                            where=gallery_meta.c.value < stmt.excluded.value))


def index_ts(conn: Connection) -> int:
    """The newest committed write's timestamp in the shared index (0: none recorded)."""
    return int(get_meta(conn, INDEX_TS) or 0)


def pruned_through(conn: Connection) -> int:
    """The change log holds no row at or below this seq any more (0: never pruned)."""
    return int(get_meta(conn, "pruned_through") or 0)


def generation(conn: Connection) -> int:
    """How many times the gallery was reindexed: part of the snapshot key, since a reindex to the
    same model id rewrites every embedding and writes no change-log row."""
    return int(get_meta(conn, "generation") or 0)


def bump_generation(conn: Connection) -> int:
    """Within the reindex transaction: the next generation."""
    new = generation(conn) + 1
    put_meta(conn, "generation", str(new))
    return new


def set_meta(conn: Connection, model_id: str, dimension: int) -> None:
    conn.execute(delete(gallery_meta).where(gallery_meta.c.key.in_(["model_id", "dimension"])))
    conn.execute(insert(gallery_meta), [{"key": "model_id", "value": model_id},
                                        {"key": "dimension", "value": str(dimension)}])


def database_now(conn: Connection) -> datetime:
    """The database's clock, UTC-aware: one clock for every replica, whatever their hosts' clocks say."""
    now: datetime = conn.execute(select(func.current_timestamp())).scalar_one()
    return (now if now.tzinfo is not None else now.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
