"""Writes: commit to SQL (with a row per face in the change log), then apply to the index.

Writers are serialised by the Gallery's write lock, and across processes sharing the
database by sql.serialise_writes; the index and face map change together under the
write side of the readers-writer lock (Recovery._apply).

A durable index shared by replicas (Milvus) gets a new face before the commit and loses
a deleted one after it: a crash in between leaves only an orphan in the index, which no
face map resolves and the next reconcile removes, never an acknowledged face missing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Callable, ParamSpec, Sequence, TypeVar

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from .errors import NotFoundError, StaleGenerationError
from .records import AddResult, Enrolment, Identity, Metadata, NewFace, dedupe_key, face_row, now
from .schema import changes, faces, identities
from .sql import generation, in_chunks, raise_index_ts, serialise_writes
from .validate import check_identity_id
from .state import GalleryState, Logged

P = ParamSpec("P")
R = TypeVar("R")
# _insert's answer: (positions added, their face ids, their owners, identities created, names, logged)
Inserted = tuple[list[int], list[int], list[int], set[str], dict[int, tuple[str, str]], Logged]


class Writes(GalleryState):
    """Gallery methods that change identities and faces."""

    def add_faces(self, identity_id: str, new_faces: Sequence[NewFace], *, display_name: str | None = None,
                  metadata: Metadata | None = None, model_id: str | None = None) -> AddResult:
        """Add faces to an identity, creating it if new. Returns once committed and searchable."""
        return self.add_batch([Enrolment(identity_id, list(new_faces), display_name, metadata)], model_id=model_id)[0]

    def add_batch(self, enrolments: Sequence[Enrolment], *, model_id: str | None = None) -> list[AddResult]:
        """Several add_faces in one transaction: all are committed, or none.

        Idempotent: a face whose image bytes (source_sha256) or, without them, whose embedding
        its identity already has is not added again but reported in AddResult.duplicates. The
        check runs in the transaction and unique indexes enforce it; a racing writer's duplicate
        (IntegrityError) retries the transaction, which then sees it as a duplicate.

        Fenced by generation: refused (ModelMismatchError) once another process reindexed the
        gallery to another model, even before this one followed (_fenced)."""
        return self._after_following(self._add_batch, enrolments, model_id=model_id)

    def _after_following(self, write: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """write(), or, if another process reindexed since this one last followed, follow and retry
        it once (with the new model and index: an enrolment of the old model is then refused)."""
        try:
            return write(*args, **kwargs)
        except StaleGenerationError:
            self.follow()
            return write(*args, **kwargs)

    def _fenced(self, conn: Connection) -> None:
        """Inside a write transaction, after serialise_writes: refuse it if the gallery was reindexed
        since this process last followed (its embeddings and index would be of the old generation)."""
        current = generation(conn)
        if current != self.generation:
            raise StaleGenerationError(f"the gallery was reindexed (generation {current}, this process has "
                                       f"{self.generation}); follow it first")

    def _add_batch(self, enrolments: Sequence[Enrolment], *, model_id: str | None = None) -> list[AddResult]:
        self.check_model(model_id)
        for e in enrolments:
            check_identity_id(e.identity_id)
        all_faces = [f for e in enrolments for f in e.faces]
        vectors = self._embeddings([f.embedding for f in all_faces]) if all_faces else \
            np.zeros((0, self.dimension), np.float32)
        keys = [dedupe_key(f, v) for f, v in zip(all_faces, vectors)]
        when = now()
        with self._write:
            for attempt in range(3):
                try:
                    added, face_ids, owners, created, names, logged = self._insert(enrolments, all_faces, vectors,
                                                                                   keys, when)
                    break
                except IntegrityError:
                    if attempt == 2:
                        raise

            def change() -> None:
                self.map.names.update(names)
                if face_ids:
                    if not self.index.durable:   # a durable index has them already (_insert)
                        self.index.add(np.array(face_ids, np.int64), vectors[added])
                    self.map.add(face_ids, owners)

            self._apply(change, logged)
        by_position = dict(zip(added, face_ids))
        results, offset, seen = [], 0, set()
        for e in enrolments:
            first = e.identity_id not in seen
            seen.add(e.identity_id)
            span = range(offset, offset + len(e.faces))
            results.append(AddResult(e.identity_id, first and e.identity_id in created,
                                     [by_position[j] for j in span if j in by_position],
                                     [j - offset for j in span if j not in by_position]))
            offset += len(e.faces)
        return results

    def _insert(self, enrolments: Sequence[Enrolment], all_faces: list[NewFace], vectors: npt.NDArray[np.float32],
                keys: list[tuple[str, str]], when: datetime) -> Inserted:
        """The add_batch transaction: (positions added, their face ids, their owners, identities
        created, names, (seq before, last seq) or None)."""
        with self.engine.begin() as conn:
            before = serialise_writes(conn)
            self._fenced(conn)
            pks, created, renamed = self._identities_for(conn, enrolments, when)
            all_owners = [pks[e.identity_id] for e in enrolments for _ in e.faces]
            known = self._known_keys(conn, all_owners, keys)
            added: list[int] = []
            for j, (owner, key) in enumerate(zip(all_owners, keys)):
                if (owner, *key) not in known:
                    known.add((owner, *key))
                    added.append(j)
            face_ids: list[int] = []
            if added:
                rows = [face_row(all_owners[j], all_faces[j], vectors[j], self.model_id, when) for j in added]
                result = conn.execute(insert(faces).returning(faces.c.id, sort_by_parameter_order=True), rows)
                face_ids = [r.id for r in result]
                if self.index.durable:   # before the commit: see the module's docstring
                    self.index.add(np.array(face_ids, np.int64), vectors[added])
                    raise_index_ts(conn, self.index.write_ts)   # every replica's searches wait for it
            last = self._log(conn, "add", face_ids) if face_ids else None
            if renamed:
                last = self._log(conn, "identity", renamed)
            names = {pk: (iid, name) for iid, (pk, name) in self._names_of(conn, pks).items()}
        return added, face_ids, [all_owners[j] for j in added], created, names, \
            (None if last is None else (before, last))

    @staticmethod
    def _known_keys(conn: Connection, owners: list[int], keys: list[tuple[str, str]]) -> set[tuple[int, str, str]]:
        """Which (identity pk, kind, sha256) of these the database already holds."""
        out: set[tuple[int, str, str]] = set()
        for kind, column in (("source", faces.c.source_sha256), ("embedding", faces.c.embedding_sha256)):
            wanted = {(o, k[1]) for o, k in zip(owners, keys) if k[0] == kind}
            for chunk in in_chunks(sorted({sha for _, sha in wanted})):
                # by hash alone (near-unique), so the statement binds no list of identities
                out.update((pk, kind, sha) for pk, sha in conn.execute(
                    select(faces.c.identity_pk, column).where(column.in_(chunk))) if (pk, sha) in wanted)
        return out

    def _identities_for(self, conn: Connection, enrolments: Sequence[Enrolment],
                        when: datetime) -> tuple[dict[str, int], set[str], list[int]]:
        """Primary keys of the enrolments' identities, creating the new ones in one statement;
        and the pks of existing identities given a display name (logged for followers' face maps)."""
        wanted = list(dict.fromkeys(e.identity_id for e in enrolments))
        pks: dict[str, int] = {}
        for chunk in in_chunks(wanted):
            pks.update(conn.execute(select(identities.c.identity_id, identities.c.id)
                                    .where(identities.c.identity_id.in_(chunk))).all())
        first: dict[str, Enrolment] = {}
        for e in enrolments:
            first.setdefault(e.identity_id, e)
        new = [iid for iid in wanted if iid not in pks]
        if new:
            rows = [{"identity_id": iid, "display_name": first[iid].display_name or "",
                     "metadata": dict(first[iid].metadata or {}), "created_at": when, "updated_at": when}
                    for iid in new]
            result = conn.execute(insert(identities).returning(identities.c.identity_id, identities.c.id,
                                                               sort_by_parameter_order=True), rows)
            pks.update({r.identity_id: r.id for r in result})
        renamed: set[int] = set()
        for e in enrolments:  # enrolments of existing identities may rename them
            if e.identity_id not in new or e is not first[e.identity_id]:
                self._update_identity(conn, pks[e.identity_id], e.display_name, e.metadata, when)
                if e.display_name is not None:
                    renamed.add(pks[e.identity_id])
        return pks, set(new), sorted(renamed)

    @staticmethod
    def _names_of(conn: Connection, pks: dict[str, int]) -> dict[str, tuple[int, str]]:
        out: dict[str, tuple[int, str]] = {}
        for chunk in in_chunks(list(pks.values())):
            for r in conn.execute(select(identities.c.id, identities.c.identity_id, identities.c.display_name)
                                  .where(identities.c.id.in_(chunk))):
                out[r.identity_id] = (r.id, r.display_name)
        return out

    @staticmethod
    def _update_identity(conn: Connection, pk: int, display_name: str | None, metadata: Metadata | None,
                         when: datetime) -> None:
        values: dict[str, object] = {}
        if display_name is not None:
            values["display_name"] = display_name
        if metadata is not None:
            values["metadata"] = dict(metadata)
        if values:
            conn.execute(update(identities).where(identities.c.id == pk).values(updated_at=when, **values))

    @staticmethod
    def _log(conn: Connection, op: str, face_ids: list[int]) -> int:
        """Append to the change log (after serialise_writes); the seq of the last row."""
        result = conn.execute(insert(changes).returning(changes.c.seq, sort_by_parameter_order=True),
                              [{"op": op, "face_id": i} for i in face_ids])
        return int(max(r.seq for r in result))

    def delete_face(self, face_id: int) -> None:
        self._after_following(self._delete_face, face_id)

    def _delete_face(self, face_id: int) -> None:
        with self._write:
            with self.engine.begin() as conn:
                before = serialise_writes(conn)
                self._fenced(conn)   # the old generation's collection may be gone: the new one must lose it
                if conn.execute(delete(faces).where(faces.c.id == int(face_id))).rowcount == 0:
                    raise NotFoundError(f"no face {face_id}")
                last = self._log(conn, "delete", [int(face_id)])

            def change() -> None:
                self.index.remove(np.array([face_id], np.int64))
                self.map.remove([face_id])

            self._apply(change, (before, last))
            self._record_index_ts()

    def delete_identity(self, identity_id: str) -> int:
        """Delete an identity and all its faces; returns how many faces went."""
        return self._after_following(self._delete_identity, identity_id)

    def _delete_identity(self, identity_id: str) -> int:
        with self._write:
            with self.engine.begin() as conn:
                before = serialise_writes(conn)
                self._fenced(conn)
                pk = self._pk(conn, identity_id)
                ids = list(conn.execute(select(faces.c.id).where(faces.c.identity_pk == pk)).scalars())
                conn.execute(delete(faces).where(faces.c.identity_pk == pk))
                conn.execute(delete(identities).where(identities.c.id == pk))
                last = self._log(conn, "delete", ids) if ids else None

            def change() -> None:
                self.map.names.pop(pk, None)
                if ids:
                    self.index.remove(np.array(ids, np.int64))
                    self.map.remove(ids)

            self._apply(change, None if last is None else (before, last))
            self._record_index_ts()
        return len(ids)

    def update_identity(self, identity_id: str, *, display_name: str | None = None,
                        metadata: Metadata | None = None) -> Identity:
        with self._write:
            with self.engine.begin() as conn:
                before = serialise_writes(conn)
                pk = self._pk(conn, identity_id)
                self._update_identity(conn, pk, display_name, metadata, now())
                name = str(conn.execute(select(identities.c.display_name).where(identities.c.id == pk)).scalar_one())
                changed = display_name is not None or metadata is not None   # logged: replicas follow every write
                logged = (before, self._log(conn, "identity", [pk])) if changed else None
            self._apply(lambda: self.map.names.__setitem__(pk, (identity_id, name)), logged)
        return self.get_identity(identity_id)

    def _record_index_ts(self) -> None:
        """After a delete reached a shared index (after its commit): its timestamp into SQL, so that
        no replica's search answers from before it."""
        if self.index.durable and self.index.write_ts:
            with self.engine.begin() as conn:
                raise_index_ts(conn, self.index.write_ts)

    @staticmethod
    def _pk(conn: Connection, identity_id: str) -> int:
        pk = conn.execute(select(identities.c.id).where(identities.c.identity_id == identity_id)).scalar()
        if pk is None:
            raise NotFoundError(f"no identity {identity_id!r}")
        return int(pk)
