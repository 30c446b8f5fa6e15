"""Moves: faces change identity (MoveFaces), identities merge into one (MergeIdentities).

No vector changes: neither FAISS nor Milvus holds identities, only the face map (face id ->
identity pk) does. A move is an UPDATE of faces.identity_pk in one transaction, with a "move"
row per face in the change log (followers re-read the face's owner from SQL, follow.py), then
the face map updated under the index lock, so the next search finds the face under its new
identity on every replica.

An identity holds each image (or embedding) once (the schema's unique indexes): a moving face
whose image the target already has, or that an earlier face of the same move brings, is deleted
as a duplicate (logged as a delete), and not counted as moved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, NamedTuple, Sequence

import numpy as np
from sqlalchemy import Column, Connection, Row, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from .errors import InvalidInputError, NotFoundError
from .records import now
from .schema import faces, identities
from .sql import in_chunks, serialise_writes
from .validate import check_identity_id
from .state import GalleryState

Key = tuple[str, str]   # dedupe key: ("source", image sha256) or ("embedding", embedding sha256)
FaceKeys = Row[int, int, str | None, str | None]   # a face's id, identity_pk, source_sha256, embedding_sha256


class Moved(NamedTuple):
    """What one move transaction did, for the log and the face map."""
    target: int            # the target identity's pk
    moved: list[int]       # face ids now under the target
    dropped: list[int]     # face ids deleted as duplicates of the target's
    gone: list[int]        # identity pks deleted (merged sources)


class Moves(GalleryState):
    """Gallery methods that move faces between identities."""

    def move_faces(self, face_ids: Sequence[int], target_identity_id: str, *, create_if_missing: bool = False) -> int:
        """Move faces to an identity (created if missing and create_if_missing); how many moved.
        All faces must exist (NotFoundError otherwise, and nothing moves)."""
        check_identity_id(target_identity_id)
        wanted = sorted({int(i) for i in face_ids})
        if not wanted:
            raise InvalidInputError("no face ids to move")

        def plan(conn: Connection) -> Moved:
            rows = _face_keys(conn, faces.c.id, wanted)
            missing = sorted(set(wanted) - {r.id for r in rows})
            if missing:
                raise NotFoundError(f"no face {missing[0]}" + (f" (nor {len(missing) - 1} more)" if len(missing) > 1
                                                                 else ""))
            target = _target(conn, target_identity_id, create_if_missing)
            return Moved(target, *self._relocate(conn, rows, target), [])

        return self._regroup(plan)

    def merge_identities(self, source_ids: Sequence[str], target_id: str) -> int:
        """Move every face of the sources to the target and delete the sources, in one transaction;
        how many faces moved. The target and every source must exist."""
        check_identity_id(target_id)
        sources = list(dict.fromkeys(check_identity_id(s) for s in source_ids))
        if not sources:
            raise InvalidInputError("no source identities to merge")
        if target_id in sources:
            raise InvalidInputError(f"the target {target_id!r} is also one of the sources")

        def plan(conn: Connection) -> Moved:
            target = self._pk(conn, target_id)
            pks = [self._pk(conn, s) for s in sources]
            moved, dropped = self._relocate(conn, _face_keys(conn, faces.c.identity_pk, pks), target)
            for chunk in in_chunks(pks):
                conn.execute(delete(identities).where(identities.c.id.in_(chunk)))
            return Moved(target, moved, dropped, pks)

        return self._regroup(plan)

    def _regroup(self, plan: Callable[[Connection], Moved]) -> int:
        """Run plan in a write transaction, log what it did, then apply it to the index and face map
        (after following, if another process reindexed: writes.py's fence)."""
        moved: int = self._after_following(self._regroup_once, plan)
        return moved

    def _regroup_once(self, plan: Callable[[Connection], Moved]) -> int:
        with self._write:
            for attempt in range(3):   # a racing writer's duplicate (IntegrityError): plan again
                try:
                    with self.engine.begin() as conn:
                        before = serialise_writes(conn)
                        self._fenced(conn)
                        done = plan(conn)
                        last = None
                        for op, ids in (("move", done.moved), ("delete", done.dropped), ("identity", done.gone)):
                            if ids:
                                last = self._log(conn, op, ids)
                        name = conn.execute(select(identities.c.identity_id, identities.c.display_name)
                                            .where(identities.c.id == done.target)).one()
                    break
                except IntegrityError:
                    if attempt == 2:
                        raise

            def change() -> None:
                self.map.names[done.target] = (name.identity_id, name.display_name)
                if done.dropped:
                    self.index.remove(np.array(done.dropped, np.int64))
                    self.map.remove(done.dropped)
                self.map.move(done.moved, [done.target] * len(done.moved))
                for pk in done.gone:
                    self.map.names.pop(pk, None)

            self._apply(change, None if last is None else (before, last))
            if done.dropped:
                self._record_index_ts()   # every replica's searches wait for the duplicates' removal
        return len(done.moved)

    def _relocate(self, conn: Connection, rows: Sequence[FaceKeys], target: int) -> tuple[list[int], list[int]]:
        """Give these faces (rows of _face_keys, ascending ids) to the target, less those it holds
        already; delete those that duplicate one of its faces. (moved ids, deleted ids)."""
        rows = [r for r in rows if r.identity_pk != target]
        keys = {r.id: _key(r) for r in rows}
        keyed = [k for k in keys.values() if k is not None]
        seen: set[Key] = {(kind, sha) for _, kind, sha in self._known_keys(conn, [target] * len(keyed), keyed)}
        moved, dropped = [], []
        for r in rows:
            key = keys[r.id]
            if key is not None and key in seen:
                dropped.append(r.id)
                continue
            if key is not None:
                seen.add(key)
            moved.append(r.id)
        for chunk in in_chunks(dropped):
            conn.execute(delete(faces).where(faces.c.id.in_(chunk)))
        for chunk in in_chunks(moved):
            conn.execute(update(faces).where(faces.c.id.in_(chunk)).values(identity_pk=target))
        return moved, dropped


def _face_keys(conn: Connection, column: Column[int], values: Sequence[int]) -> list[FaceKeys]:
    """(id, identity_pk, source_sha256, embedding_sha256) of the faces whose column is in values, by id."""
    rows: list[FaceKeys] = []
    for chunk in in_chunks(list(values)):
        rows.extend(conn.execute(select(faces.c.id, faces.c.identity_pk, faces.c.source_sha256,
                                        faces.c.embedding_sha256).where(column.in_(chunk))).all())
    return sorted(rows, key=lambda r: r.id)


def _key(row: FaceKeys) -> Key | None:
    """What makes the face a duplicate within an identity (records.dedupe_key, as stored); None:
    nothing (faces from before migration 0002 may have neither hash)."""
    if row.source_sha256:
        return ("source", row.source_sha256)
    return ("embedding", row.embedding_sha256) if row.embedding_sha256 else None


def _target(conn: Connection, identity_id: str, create: bool) -> int:
    """The pk of the identity, created (no display name or metadata) if missing and create."""
    pk = conn.execute(select(identities.c.id).where(identities.c.identity_id == identity_id)).scalar()
    if pk is not None:
        return int(pk)
    if not create:
        raise NotFoundError(f"no identity {identity_id!r} (set create_if_missing to create it)")
    when = now()
    return int(conn.execute(insert(identities).values(identity_id=identity_id, display_name="", metadata={},
                                                      created_at=when, updated_at=when)
                            .returning(identities.c.id)).scalar_one())
