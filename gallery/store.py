"""The Gallery: identities and faces in SQL, searched through a vector index.

SQL is the source of truth. A write commits to SQL first (with a row in the
`changes` log) and only then touches the index, so an acknowledged enrolment
survives any crash: start-up loads the newest snapshot and replays the log
after its watermark, or rebuilds the index from SQL (recovery.py).

Writers are serialised; the index and the in-memory face map (face id ->
identity) sit behind a readers-writer lock and change together, so searches
run concurrently and never see a half-applied change.

Several processes may share one PostgreSQL database: each follows the change log
of the others (follow.py). The data-directory lock only keeps two processes off one
data directory (its SQLite file and snapshots); writes are coordinated in the database.

The methods live by responsibility in writes.py, moves.py, reads.py, recovery.py, follow.py,
reindex.py and calibrated.py; this module opens and closes.
"""

from __future__ import annotations

import os
import threading
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock, Timeout
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from .calibrated import Calibrated
from .config import GalleryConfig
from .errors import GalleryError, GalleryLockedError
from .facemap import FaceMap
from .follow import Follow
from .index import Index, build_index
from .migrate import upgrade
from .moves import Moves
from .reads import Reads
from .recovery import Recovery
from .reindex import Reindex
from .rwlock import RWLock
from .sql import bind_model, connect, generation, shown
from .unknown import Unknown
from .writes import Writes


class Gallery(Writes, Moves, Reads, Recovery, Follow, Reindex, Calibrated, Unknown):
    """Open with Gallery.open(); close() (or a with-block) snapshots the index."""

    def __init__(self, engine: Engine, config: GalleryConfig, model_id: str, dimension: int,
                 index: Index, lock: FileLock | None) -> None:
        self.engine = engine
        self.config = config
        self.model_id = model_id
        self.dimension = dimension
        self.index = index
        self.map = FaceMap()
        self._lock_file = lock
        self._write = threading.Lock()
        self._rw = RWLock()
        self._applied_seq = 0
        self._snapshot_seq = 0
        self._closed = False
        # ids a durable index holds and SQL had not committed -> the index timestamp then (reads.py)
        self._orphans = {}
        self._beat_at = datetime.min.replace(tzinfo=timezone.utc)
        self._recovered_at = 0.0
        self.generation = 0
        self.unhealthy_reason = None
        self.on_health = None

    @classmethod
    def open(cls, config: GalleryConfig | None = None, *, model_id: str | None = None,
             dimension: int | None = None, lock: bool = True) -> "Gallery":
        """Open (creating or migrating) the gallery and load or rebuild its index.

        model_id/dimension: the model this process embeds with. A gallery with
        faces of another model is refused (reindex it); an empty one adopts it.
        lock: hold the data directory so that no other process writes it.
        """
        config = config or GalleryConfig.from_env()
        data_dir = Path(config.data_dir)
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise GalleryError(f"cannot create the data directory {data_dir}: {exc}") from None
        if not os.access(data_dir, os.W_OK):
            raise GalleryError(f"the data directory {data_dir} is not writable")
        file_lock = _hold(data_dir) if lock else None
        engine = None
        try:
            engine = connect(config.url)
            try:
                upgrade(engine)
                model_id, dimension = bind_model(engine, model_id, dimension)
                with engine.connect() as conn:
                    current = generation(conn)
            except DBAPIError as exc:  # unreachable server, bad credentials, unwritable file
                raise GalleryError(f"cannot open the database {shown(engine)}: {exc.orig}") from None
            index = build_index(config, dimension, model_id, current)
            gallery = cls(engine, config, model_id, dimension, index, file_lock)
            gallery.generation = current
            gallery.heartbeat(force=True)   # registered at seq 0 first: no log row it may need is pruned meanwhile
            gallery._load_index()
            gallery.heartbeat(force=True)
            gallery.refresh_cutoff()   # later re-read off the caller's thread (calibrated.py)
            return gallery
        except BaseException:
            if engine is not None:
                engine.dispose()
            if file_lock is not None:
                file_lock.release()
            raise

    def close(self, snapshot: bool = True) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if snapshot and self.changes_since_snapshot and self.healthy:
                self.snapshot()
        finally:
            self.index.close()
            self.engine.dispose()
            if self._lock_file is not None:
                self._lock_file.release()

    def __enter__(self) -> "Gallery":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _hold(data_dir: Path) -> FileLock:
    # not thread-local: a service opens its gallery in a worker thread and closes it on the event loop's
    lock = FileLock(str(data_dir / "gallery.lock"), timeout=0, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        holder = (data_dir / "gallery.pid").read_text().strip() if (data_dir / "gallery.pid").exists() else "?"
        raise GalleryLockedError(
            f"the data directory {data_dir} is in use by another process (pid {holder}); stop it, "
            "or send the work through that server (--server)") from None
    (data_dir / "gallery.pid").write_text(str(os.getpid()))
    return lock
