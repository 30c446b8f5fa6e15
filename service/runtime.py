"""Where the service's work runs: detection threads, cross-request micro-batches of
embeddings and searches, and one gallery writer. Everything here is off the event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import threading
import time
from typing import Any, Callable, ParamSpec, TypeVar

import numpy as np

from facesearch.embedder import Embedder
from facesearch.gallery import DATABASE_UNAVAILABLE, Gallery, IndexUnavailableError, Match

from .batcher import MicroBatcher
from .faces import FacePool

SEARCH_BATCH = 256
P = ParamSpec("P")
R = TypeVar("R")
# One search of a batch: (query vector, top_k, cutoff, the model that embedded the query)
SearchItem = tuple[np.ndarray, int, float, str | None]
log = logging.getLogger(__name__)


class Runtime:
    def __init__(self, embedder: Embedder, gallery: Gallery, *, detect_workers: int = 2, max_batch: int = 64,
                 detect_batch: int = 16, embed_lanes: int = 1,
                 max_wait_s: float = 0.005, snapshot_every: int = 10_000, max_queued: int = 4096,
                 follow_s: float = 0.25,
                 on_batch: Callable[[str, int], None] | None = None,
                 on_stopped: Callable[[str], None] | None = None):
        """on_stopped(reason): a batch worker died; the service cannot answer until restarted.
        follow_s: how often to apply what other replicas committed (0: never). embed_lanes: embedding
        batches run at once (docs/performance.md#embedding-lanes)."""
        self.embedder, self.gallery = embedder, gallery
        self.snapshot_every = snapshot_every
        self.follow_s = follow_s
        self._stopping = threading.Event()
        self._follower = threading.Thread(target=self._follow, name="gallery-follower", daemon=True)
        self._writes = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="gallery-writes")
        self._background = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="gallery-snapshots")
        self._maintenance: concurrent.futures.Future[None] | None = None
        # Calibrations: one at a time on their own thread, so they never hold up reads (README "Limits")
        self._calibrations = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="calibrate")
        self._cancels: set[threading.Event] = set()

        def hook(name: str) -> Callable[[int], None] | None:
            return (lambda n: on_batch(name, n)) if on_batch else None

        def stopped(name: str) -> Callable[[BaseException | None], None] | None:
            return (lambda error: on_stopped(f"the {name} batcher stopped: {error!r}")) if on_stopped else None

        self.faces = FacePool(embedder.config, detect_workers, max_batch=detect_batch, max_wait_s=max_wait_s,
                              max_queued=max_queued, on_batch=hook("detect"), on_stopped=stopped("detect"))
        self._embed = MicroBatcher(embedder.embed_crops, max_batch=max_batch, max_wait_s=max_wait_s, name="embed",
                                   max_queued=max_queued, on_batch=hook("embed"), on_stopped=stopped("embed"),
                                   lanes=embed_lanes)
        self._search = MicroBatcher(self._search_batch, max_batch=SEARCH_BATCH, max_wait_s=max_wait_s,
                                    name="search", max_queued=max_queued, on_batch=hook("search"),
                                    on_stopped=stopped("search"),
                                    outages=(IndexUnavailableError, *DATABASE_UNAVAILABLE))

    def start(self) -> None:
        """Start the batch workers; call from the event loop that will serve requests."""
        self.faces.start()
        self._embed.start()
        self._search.start()
        if self.follow_s > 0:
            self._follower.start()

    async def stop(self) -> None:
        """Stop taking work; writes already queued finish first."""
        self._stopping.set()
        await self.faces.stop()
        for batcher in (self._embed, self._search):
            await batcher.stop()
        for cancel in list(self._cancels):
            cancel.set()
        self._calibrations.shutdown(wait=True, cancel_futures=True)
        self._writes.shutdown(wait=True)
        self._background.shutdown(wait=True)
        if self._follower.is_alive():
            await asyncio.get_running_loop().run_in_executor(None, self._follower.join)

    def _follow(self) -> None:
        """Apply other replicas' writes every follow_s (gallery/follow.py); errors logged once a minute."""
        logged_at = -float("inf")
        while not self._stopping.wait(self.follow_s):
            try:
                if self.gallery.follow():
                    self.maintain()
            except Exception:
                if time.monotonic() - logged_at > 60:
                    log.exception("following other replicas' writes failed; retrying every %.2f s", self.follow_s)
                    logged_at = time.monotonic()

    @property
    def depths(self) -> dict[str, int]:
        return {"detect": self.faces.depth, "embed": self._embed.depth, "search": self._search.depth}

    async def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        out = await self._embed.submit(crops)
        return np.asarray(out, np.float32).reshape(len(crops), self.embedder.dimension)

    def _search_batch(self, items: list[SearchItem]) -> list[list[Match]]:
        """Searches of several requests at once: one gallery search per distinct top_k and query
        model (so one request's large top_k does not widen every other's k, and each query's model
        is checked against the gallery's), the widest cutoff of each group, then each request its
        own cutoff and top_k."""
        out: list[list[Match] | None] = [None] * len(items)
        groups: dict[tuple[int, str | None], list[int]] = {}
        for n, (_, k, _, model) in enumerate(items):
            groups.setdefault((k, model), []).append(n)
        for (top_k, model), members in groups.items():
            vectors = np.stack([items[n][0] for n in members])
            cutoff = max(items[n][2] for n in members)
            found = self.gallery.search(vectors, top_k=top_k, max_distance=cutoff, model_id=model)
            for n, matches in zip(members, found):
                _, k, d, _ = items[n]
                out[n] = [m for m in matches if m.distance <= d][:k]
        return [m if m is not None else [] for m in out]   # every item is in one group

    async def search(self, vectors: np.ndarray, top_k: int, max_distance: float,
                     model_id: str | None = None) -> list[list[Match]]:
        """model_id: the model that embedded the queries (the embedder's, for an image): a gallery
        of another model refuses them (ModelMismatchError)."""
        return await self._search.submit([(v, top_k, max_distance, model_id) for v in vectors])

    async def read(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """A gallery read in a worker thread."""
        return await asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args, **kwargs))

    async def calibrate(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """fn(*args, cancel=event) on the calibration thread. Cancelling the awaiting task (a client
        that went away) sets the event, and the calibration stops at its next block of work."""
        cancel = threading.Event()
        self._cancels.add(cancel)
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._calibrations, functools.partial(fn, *args, cancel=cancel, **kwargs))
        finally:
            cancel.set()   # cancelled, or done: either way nothing more to compute
            self._cancels.discard(cancel)

    async def write(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """A gallery write on the one writer thread. A snapshot, when enough changes piled up, runs
        in the background afterwards: a committed write never answers an error because of it."""
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._writes, functools.partial(fn, *args, **kwargs))
        self.maintain()
        return result

    def maintain(self) -> concurrent.futures.Future[None] | None:
        """Start a background snapshot (or, while the gallery is unhealthy, a rebuild) if one is due
        and none is running; a failure is logged and tried again after a later write."""
        due = not self.gallery.healthy or self.gallery.changes_since_snapshot >= self.snapshot_every
        if not due or (self._maintenance is not None and not self._maintenance.done()):
            return None
        self._maintenance = self._background.submit(self._maintain)
        return self._maintenance

    def _maintain(self) -> None:
        try:
            if not self.gallery.healthy:
                self.gallery.recover()
            elif self.gallery.changes_since_snapshot >= self.snapshot_every:
                self.gallery.snapshot()
        except Exception:
            log.exception("background snapshot failed; it is tried again after a later write")
