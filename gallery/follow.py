"""Following the change log: several processes (replicas) serving one database.

Each replica applies to its own index and face map what the others committed, in seq
order. sql.serialise_writes makes seqs commit in the order they are drawn, so reading the
rows after the last one applied never passes a commit that lands later. With a durable
index shared by the replicas (Milvus), the writer has put the face in it already: the
follower only learns it in its face map, and a search that meets a face id its map does
not know follows at once (reads.py), so a face acknowledged by one replica is found by
the next Identify on any other.

Each replica records in `replicas` the seq it could restart from. Pruning keeps every row
that a replica seen within REPLICA_TTL_S still needs; one away for longer rebuilds from
SQL when it comes back. A reindex (a new generation) is followed by rebuilding the index.
A "move" row (moves.py) changes only the face map: the face's owner is read again from SQL.
"""

from __future__ import annotations

import logging
import socket
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from sqlalchemy import Connection, Row, delete, func, insert, select, update

from .errors import GalleryError, IndexUnavailableError
from .facemap import GONE
from .schema import changes, faces, identities, replicas
from .sql import database_now, generation, get_meta, in_chunks, last_seq, pruned_through, put_meta, serialise_writes, snapshot
from .state import GalleryState

log = logging.getLogger(__name__)

FOLLOW_CHUNK = 50_000   # change-log rows per statement
REPLICA_TTL_S = 600     # a replica silent for longer no longer holds back pruning
HEARTBEAT_S = 5.0
RECOVER_EVERY_S = 5.0   # while unhealthy (an index server down), how often follow() tries to rebuild


class Follow(GalleryState):
    """Gallery methods that follow other processes' writes and prune the log safely."""

    @property
    def replica_name(self) -> str:
        """This process's row in `replicas`: its host and data directory (what a restart reuses)."""
        return f"{socket.gethostname()}:{Path(self.config.data_dir).resolve()}"[-255:]

    @property
    def restart_seq(self) -> int:
        """The change-log seq this process would replay from after a restart."""
        return self._applied_seq if self.index.durable else self._snapshot_seq

    def follow(self) -> int:
        """Apply the changes other processes committed since this one last looked; how many rows.
        Cheap when there are none (one indexed query). Raises on a database error."""
        applied = 0
        with self._write:
            if self._closed:
                return 0
            with self.engine.connect() as conn:
                reindexed = generation(conn) != self.generation
            if reindexed:   # first: the old generation's collection may be gone, so probing it would fail
                self._follow_reindex()
                return 0
            if not self.healthy:
                if time.monotonic() - self._recovered_at >= RECOVER_EVERY_S:
                    self._recovered_at = time.monotonic()
                    self._recover_locked()   # reconciles a durable index: catches up after an outage
                return 0
            if not self._reachable():
                return 0
            with snapshot(self.engine) as conn:   # rows, faces and names as of one moment
                if pruned_through(conn) > self._applied_seq < last_seq(conn):   # rows we need are gone
                    log.warning("the change log was pruned past this replica's seq %d; rebuilding from SQL",
                                self._applied_seq)
                    self._recover_locked()
                    return 0
                while rows := conn.execute(select(changes.c.seq, changes.c.op, changes.c.face_id)
                                           .where(changes.c.seq > self._applied_seq)
                                           .order_by(changes.c.seq).limit(FOLLOW_CHUNK)).all():
                    self._follow_rows(conn, rows)
                    applied += len(rows)
                    self.heartbeat()   # a long catch-up still says this replica is alive
        self.heartbeat()
        return applied

    def _reachable(self) -> bool:
        """A durable index's server answers; else the gallery goes unhealthy (NOT_SERVING) until a
        reconcile succeeds, since writes to SQL may go on while the index misses them."""
        if not self.index.durable:
            return True
        try:
            self.index.probe()
            return True
        except IndexUnavailableError as exc:
            log.error("%s", exc)
            self._set_health(str(exc))
            self._recovered_at = time.monotonic()
            return False

    def _follow_rows(self, conn: Connection, rows: Sequence[Row[Any, Any, Any]]) -> None:   # (seq, op, face_id)
        deleted = {r.face_id for r in rows if r.op == "delete"}
        added = {r.face_id for r in rows if r.op == "add"} - deleted
        renamed = {r.face_id for r in rows if r.op == "identity"}
        ids, vectors, owners = self._stored(conn, added)
        new = self.map.owners(ids) == GONE        # this process's own writes are applied already
        ids, vectors, owners = ids[new], vectors[new], owners[new]
        gone = np.array(sorted(deleted), np.int64)
        gone = gone[self.map.owners(gone) != GONE]
        moved, movers = self._owners_now(conn, {r.face_id for r in rows if r.op == "move"} - deleted)
        wanted = (set(owners.tolist()) - set(self.map.names)) | (set(movers.tolist()) - set(self.map.names)) | renamed
        names = {r.id: (r.identity_id, r.display_name) for chunk in in_chunks(sorted(wanted)) for r in conn.execute(
            select(identities.c.id, identities.c.identity_id, identities.c.display_name)
            .where(identities.c.id.in_(chunk)))}

        def change() -> None:
            if len(gone):
                if not self.index.durable:   # the writer removed it from a shared index
                    self.index.remove(gone)
                self.map.remove(gone)
            if len(ids):
                if not self.index.durable:
                    self.index.add(ids, vectors)
                self.map.add(ids, owners)
            self.map.move(moved, movers)     # a face's identity is in the face map only (moves.py)
            self.map.names.update(names)
            for pk in wanted - set(names):   # deleted since
                self.map.names.pop(pk, None)

        self._apply(change, (self._applied_seq, rows[-1].seq))

    @staticmethod
    def _owners_now(conn: Connection, face_ids: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
        """(face ids, identity pks) of those of these faces SQL still holds: where moved faces are now."""
        found = [(r.id, r.identity_pk) for chunk in in_chunks(sorted(face_ids)) for r in conn.execute(
            select(faces.c.id, faces.c.identity_pk).where(faces.c.id.in_(chunk)))]
        return np.array([f for f, _ in found], np.int64), np.array([o for _, o in found], np.int64)

    def _follow_reindex(self) -> None:
        """Another process reindexed: open the new generation's index first, and only then switch
        to it (model, dimension, generation), so a failure leaves this replica unhealthy (NOT_SERVING,
        retried by the next follow) rather than serving a dropped collection as if healthy."""
        with self.engine.connect() as conn:
            model_id, dimension = get_meta(conn, "model_id"), get_meta(conn, "dimension")
            target = generation(conn)
        if model_id is None or dimension is None:
            raise GalleryError("the gallery was reindexed, and its model is missing from gallery_meta")
        if model_id != self.model_id:
            log.warning("the gallery was reindexed to %s; this process still embeds for %s, so its "
                        "searches and enrolments are refused until it is restarted with that model",
                        model_id, self.model_id)
        self._cutoff_cache = (-np.inf, None)
        if not self.index.durable:
            with self._rw.write():
                self.model_id, self.dimension, self.generation = model_id, int(dimension), target
            self._recover_locked()
            return
        try:   # the reindexer filled the new generation's collection
            fresh = self._new_index(int(dimension), model_id=model_id, generation=target)
        except Exception as exc:
            log.exception("cannot open the index of generation %d", target)
            self._set_health(f"the gallery was reindexed (generation {target}) and its new index cannot be "
                             f"opened here: {exc}")
            return
        old = self.index
        with self._rw.write():
            self.index, self.model_id, self.dimension, self.generation = fresh, model_id, int(dimension), target
            try:
                self._reconcile_all()
                failed = None
            except Exception as exc:
                failed = exc
        old.close()
        if failed is not None:
            log.error("reconciling the new generation's index failed: %r", failed)
            self._set_health(f"the new generation's index could not be reconciled with SQL: {failed!r}")
        else:
            self._set_health(None)

    def heartbeat(self, force: bool = False) -> None:
        """Record this replica's restart seq in `replicas`, at most every HEARTBEAT_S unless forced."""
        now = datetime.now(timezone.utc)
        if not force and (now - self._beat_at).total_seconds() < HEARTBEAT_S:
            return
        with self.engine.begin() as conn:
            self._beat(conn)
        self._beat_at = now

    def _beat(self, conn: Connection) -> datetime:
        now = database_now(conn)
        values = {"seq": self.restart_seq, "seen_at": now}
        if conn.execute(update(replicas).where(replicas.c.name == self.replica_name).values(**values)).rowcount == 0:
            conn.execute(insert(replicas).values(name=self.replica_name, **values))
        return now

    def _prune(self, seq: int) -> None:
        """Delete the change-log rows at or below seq that no live replica still needs."""
        with self.engine.begin() as conn:
            serialise_writes(conn)   # one pruner at a time; pruned_through only grows
            now = self._beat(conn)
            needed = conn.execute(select(func.min(replicas.c.seq))
                                  .where(replicas.c.seen_at >= now - timedelta(seconds=REPLICA_TTL_S))).scalar()
            limit = min(seq, needed if needed is not None else seq, last_seq(conn) - 1)  # keep the newest row
            if limit > pruned_through(conn):
                conn.execute(delete(changes).where(changes.c.seq <= limit))
                put_meta(conn, "pruned_through", str(limit))
        self._beat_at = datetime.now(timezone.utc)
