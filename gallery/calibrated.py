"""The Gallery's calibration: fit the cutoff to the enrolled faces, store it in SQL for every
process, and tell how stale it is (docs/calibration.md). The estimates are gallery/calibration.py."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
from sqlalchemy import Connection, delete, func, select

from . import calibration
from .calibration import Calibration
from .errors import CalibrationBudgetError, CalibrationError
from .schema import faces, gallery_meta
from .sql import get_meta, last_seq, put_meta
from .state import GalleryState

log = logging.getLogger(__name__)

CALIBRATION_KEY = "calibration"   # gallery_meta row: the applied calibration as JSON
CALIBRATION_TTL_S = 2.0           # how stale a process's copy of the applied cutoff may be (other writers)
_REFRESHING = threading.Lock()    # starts at most one background re-read per gallery at a time


@dataclass(frozen=True)
class AppliedCalibration:
    """A calibration stored in gallery_meta, with when it was applied and the change it saw last."""
    calibration: Calibration
    calibrated_at: datetime
    seq: int                       # the change log's last seq when the faces were read
    changes_since: int = 0         # faces enrolled or deleted since (filled in by calibration_status)

    @property
    def stale(self) -> bool:
        return self.changes_since > 0


class Calibrated(GalleryState):
    """Gallery methods (mixed into Gallery)."""

    _cutoff_cache: tuple[float, float | None] = (-np.inf, None)   # (read at, calibrated cutoff)
    _cutoff_refresh: threading.Thread | None = None   # the running refresh_cutoff thread, if any

    def labelled_vectors(self) -> tuple[np.ndarray, np.ndarray, int]:
        """(identity pk per face, unit vectors, last change seq) of every face, read from SQL in one snapshot."""
        with self.engine.connect() as conn, conn.begin():
            seq = last_seq(conn)
            # plain driver tuples: SQLAlchemy rows cost seconds at 100k faces
            rows = conn.exec_driver_sql("SELECT identity_pk, embedding FROM faces").fetchall()
        labels = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        vectors = np.frombuffer(b"".join(bytes(r[1]) for r in rows), "<f4").reshape(len(rows), self.dimension)
        return labels, vectors.astype(np.float32), seq

    def calibrate(self, target_fpir: float = 0.0, target_fnir: float = 0.0, apply: bool = False,
                  cancel: threading.Event | None = None) -> Calibration:
        """Fit the cutoff to the enrolled faces; apply: store it for every process.

        Raises InvalidTargetError for a target outside [0, 1), CalibrationBudgetError when it would
        compare more than calibration.MAX_PAIRS pairs (checked on the face count, before any work),
        CalibrationError when there is not enough data or no cutoff reaches the target, and
        CalibrationCancelled once `cancel` is set.
        """
        target_fpir, target_fnir = calibration.targets(target_fpir, target_fnir)
        with self.engine.connect() as conn:
            calibration.check_budget(conn.execute(select(func.count()).select_from(faces)).scalar() or 0, target_fpir)
        labels, vectors, seq = self.labelled_vectors()
        result = calibration.calibrate(vectors, labels, target_fpir, target_fnir, cancel=cancel)
        if apply:
            record = {**result.to_dict(), "calibrated_at": datetime.now(timezone.utc).isoformat(), "seq": seq,
                      "model_id": self.model_id}
            with self.engine.begin() as conn:
                put_meta(conn, CALIBRATION_KEY, json.dumps(record))
            self._cutoff_cache = (time.monotonic(), result.max_distance)
            log.info("calibrated: max_distance %.4f (FPIR %.4f, FNIR %.4f) on %d faces of %d identities",
                     result.max_distance, result.expected_fpir, result.expected_fnir, result.faces, result.identities)
        return result

    def calibration_status(self) -> AppliedCalibration | None:
        """The applied calibration with how many faces changed since (from the change log); None if none."""
        with self.engine.connect() as conn:
            raw = get_meta(conn, CALIBRATION_KEY)
            if raw is None:
                return None
            last = last_seq(conn)
        record = json.loads(raw)
        return AppliedCalibration(Calibration.from_dict(record), datetime.fromisoformat(record["calibrated_at"]),
                                  record["seq"], max(0, last - record["seq"]))

    def calibrated_cutoff(self) -> float | None:
        """The applied calibration's cutoff (None if none) as last read: no SQL on the caller's thread
        (the service calls it on its event loop). Read at open; once older than CALIBRATION_TTL_S it
        is re-read in the background (another process may have calibrated) and this call answers
        the copy it has meanwhile."""
        read_at, cutoff = self._cutoff_cache
        if time.monotonic() - read_at >= CALIBRATION_TTL_S:
            self._refresh_cutoff_aside()
        return cutoff

    def refresh_cutoff(self) -> float | None:
        """Re-read the applied calibration's cutoff from SQL now."""
        now = time.monotonic()
        with self.engine.connect() as conn:
            raw = get_meta(conn, CALIBRATION_KEY)
        cutoff = float(json.loads(raw)["max_distance"]) if raw is not None else None
        self._cutoff_cache = (now, cutoff)
        return cutoff

    def _refresh_cutoff_aside(self) -> None:
        """refresh_cutoff() in a thread of its own, one at a time; a failure keeps the old copy."""
        with _REFRESHING:
            if self._cutoff_refresh is not None and self._cutoff_refresh.is_alive():
                return

            def refresh() -> None:
                try:
                    self.refresh_cutoff()
                except Exception:
                    log.warning("re-reading the applied calibration failed; keeping the cutoff read before",
                                exc_info=True)

            self._cutoff_refresh = threading.Thread(target=refresh, name="calibration-refresh", daemon=True)
            self._cutoff_refresh.start()

    def forget_calibration(self, conn: Connection) -> None:
        """Inside a transaction that changes the model: a cutoff fitted to other distances means nothing."""
        conn.execute(delete(gallery_meta).where(gallery_meta.c.key == CALIBRATION_KEY))
        self._cutoff_cache = (-np.inf, None)

    def recalibrate_if_due(self, every: int, cancel: threading.Event | None = None) -> Calibration | None:
        """Recalibrate with the applied calibration's targets once `every` faces changed since; else None."""
        status = self.calibration_status()
        if every <= 0 or status is None or status.changes_since < every:
            return None
        c = status.calibration
        try:
            return self.calibrate(c.target_fpir, c.target_fnir, apply=True, cancel=cancel)
        except (CalibrationError, CalibrationBudgetError) as exc:
            log.warning("recalibration after %d changes failed, keeping max_distance %.4f: %s",
                        status.changes_since, c.max_distance, exc)
            return None
