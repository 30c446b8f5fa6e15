"""Keeping the faces Identify answered as unknown (--keep-unknown-days; off by default), off the request path.

Identify only puts (crop, embedding, source) on a bounded queue and never waits: when the queue
is full the face is dropped, not the request slowed. One background thread encodes the crops,
inserts them (gallery/unknown.py), clusters what waits, and purges what expired or overflows
--keep-unknown-max. Nothing here can fail an Identify: errors are logged.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from facesearch.embedder.images import encode_jpeg
from facesearch.gallery import Gallery, UnknownFace

Offered = tuple[np.ndarray | None, np.ndarray, str]   # (crop, embedding, source) of an unknown face

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Retention:
    """What to keep of unknown faces and how they are clustered (server flags --keep-unknown-*)."""
    keep_days: float = 0.0           # 0: keep nothing (the default)
    max_faces: int = 100_000         # the table's bound; the oldest go first
    max_distance: float = 2.4        # clustering, as `facesearch-indexer cluster` (docs/clustering.md)
    min_faces: int = 2
    cluster_every_s: float = 2.0     # at most one clustering pass this often, when faces wait
    purge_every_s: float = 600.0
    queue_size: int = 256            # faces waiting to be written; more are dropped

    @property
    def on(self) -> bool:
        return self.keep_days > 0


def keeper_for(gallery: Gallery, retention: Retention) -> "UnknownKeeper | None":
    """The keeper a service gets: None (nothing kept) unless retention is on."""
    return UnknownKeeper(gallery, retention) if retention.on else None


class UnknownKeeper:
    def __init__(self, gallery: Gallery, retention: Retention):
        self.gallery, self.retention = gallery, retention
        self._queue: queue.Queue[Offered] = queue.Queue(retention.queue_size)
        self._stopping = threading.Event()
        self._work = threading.Lock()   # one step at a time: the thread's, or a caller's (tests, shutdown)
        self._thread = threading.Thread(target=self._run, name="unknown-faces", daemon=True)
        self._dirty = False
        self._clustered_at = self._purged_at = -float("inf")
        self._over = 0          # faces kept since the last purge
        self.dropped = 0        # faces not kept because the queue was full
        self._dropped_logged_at = -float("inf")

    def offer(self, crop: np.ndarray | None, vector: np.ndarray, source: str) -> None:
        """From Identify: keep this face, later. Never blocks, never raises."""
        try:
            self._queue.put_nowait((crop, vector, source))
        except queue.Full:
            self.dropped += 1
            if time.monotonic() - self._dropped_logged_at > 60:
                self._dropped_logged_at = time.monotonic()
                log.warning("unknown faces arrive faster than they are written: %d dropped so far", self.dropped)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Write what is queued, then stop the thread (blocking)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        self.step()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                first = [self._queue.get(timeout=min(1.0, self.retention.cluster_every_s))]
            except queue.Empty:
                first = []
            self.step(taken=first)

    def step(self, now: datetime | None = None, *, force: bool = False, taken: list[Offered] | None = None) -> None:
        """Write what is queued; cluster and purge when due (force: now). now: the purge's clock
        (default: the database's). Errors are logged, never raised."""
        with self._work:
            try:
                self._write(list(taken or []))
                clock = time.monotonic()
                if self._dirty and (force or clock - self._clustered_at >= self.retention.cluster_every_s):
                    self._clustered_at, self._dirty = clock, False
                    self.gallery.cluster_unknown(self.retention.max_distance, self.retention.min_faces)
                over = self._over > self.retention.max_faces // 20   # purged before the bound is passed by 5%
                if force or over or clock - self._purged_at >= self.retention.purge_every_s:
                    self._purged_at, self._over = clock, 0
                    self.gallery.purge_unknown(self.retention.keep_days, self.retention.max_faces, now=now)
            except Exception:
                log.exception("keeping unknown faces failed; what was queued is lost, the next step tries again")

    def _write(self, items: list[Offered]) -> None:
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if items:
            self.gallery.keep_unknown([UnknownFace(v, None if c is None else encode_jpeg(c, quality=90), s)
                                       for c, v, s in items])
            self._dirty = True
            self._over += len(items)
