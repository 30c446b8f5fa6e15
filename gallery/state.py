"""What the Gallery's parts share, declared once.

The Gallery (store.py) is one object whose methods live by responsibility in writes.py,
moves.py, reads.py, recovery.py, follow.py, reindex.py, calibrated.py and unknown.py. Each
part derives from GalleryState, so the state they share is declared here, with its type, and
Gallery.__init__ sets all of it. The methods one part calls on another are declared here too
(for the type checker only): each is defined in the part named beside it.
"""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, ParamSpec, TypeVar

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection
from sqlalchemy.engine import Engine

from .config import GalleryConfig
from .facemap import FaceMap
from .index import Index
from .rwlock import RWLock

if TYPE_CHECKING:
    from .records import Identity

P = ParamSpec("P")
R = TypeVar("R")
# (the last seq committed before a change, its own last seq), or None: recovery.py Recovery._apply
Logged = tuple[int, int] | None


class GalleryState:
    engine: Engine
    config: GalleryConfig
    model_id: str
    dimension: int
    index: Index
    map: FaceMap                         # face id -> identity, changed with the index (facemap.py)
    generation: int                      # gallery_meta's reindex generation, part of the snapshot key
    unhealthy_reason: str | None         # set while the index may miss committed changes
    on_health: Callable[[str | None], None] | None   # called when healthy changes (recovery.py)
    _write: threading.Lock               # this process's writers, one at a time
    _rw: RWLock                          # index and face map: searches read, changes write
    _applied_seq: int                    # the change log applied to the index up to here
    _snapshot_seq: int                   # the watermark of the newest snapshot
    _closed: bool
    _orphans: dict[int, int]             # ids a durable index holds that SQL had not committed -> index ts
    _beat_at: datetime                   # the last heartbeat (follow.py)
    _recovered_at: float                 # monotonic time of follow()'s last rebuild attempt
    _cutoff_cache: tuple[float, float | None]   # (read at, calibrated cutoff): calibrated.py

    if TYPE_CHECKING:
        # writes.py
        def _after_following(self, write: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R: ...
        def _fenced(self, conn: Connection) -> None: ...
        @staticmethod
        def _log(conn: Connection, op: str, face_ids: list[int]) -> int: ...
        @staticmethod
        def _pk(conn: Connection, identity_id: str) -> int: ...
        @staticmethod
        def _known_keys(conn: Connection, owners: list[int],
                        keys: list[tuple[str, str]]) -> set[tuple[int, str, str]]: ...
        def _record_index_ts(self) -> None: ...
        # reads.py
        def check_model(self, model_id: str | None) -> None: ...
        def _embeddings(self, embeddings: object, what: str = "embedding") -> npt.NDArray[np.float32]: ...
        def get_identity(self, identity_id: str) -> Identity: ...
        def face_crops(self, after_id: int = 0, limit: int = 256) -> list[tuple[int, bytes | None]]: ...
        # recovery.py
        def _new_index(self, dimension: int | None = None, *, model_id: str | None = None,
                       generation: int | None = None) -> Index: ...
        @staticmethod
        def _maintain_unshared(index: Index) -> None: ...
        def _apply(self, change: Callable[[], object], logged: Logged) -> None: ...
        def _stored(self, conn: Connection, ids: Iterable[int] | npt.NDArray[np.int64]
                    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32], npt.NDArray[np.int64]]: ...
        def _reconcile_all(self) -> None: ...
        def _recover_locked(self) -> bool: ...
        def _set_health(self, reason: str | None) -> None: ...
        @property
        def healthy(self) -> bool: ...
        def snapshot(self) -> Path | None: ...
        # follow.py
        def follow(self) -> int: ...
        def _follow_reindex(self) -> None: ...
        def _prune(self, seq: int) -> None: ...
        # calibrated.py
        def forget_calibration(self, conn: Connection) -> None: ...
