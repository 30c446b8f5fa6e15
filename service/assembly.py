"""Building a FaceSearchService from settings: the model, the detector, the gallery, the batchers
and the warm-up, in one place that every transport (gRPC, REST) shares.

    tuning = Tuning(max_batch=64, warmup_sizes=(1, 64))
    built = await assemble(embedder_config, gallery_config, tuning, Limits())   # loads, warms, starts
    ...  built.service.identify(...)
    await built.close()                                                         # drains, snapshots
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from typing import Callable

from facesearch.embedder import Embedder, EmbedderConfig
from facesearch.gallery import Gallery, GalleryConfig

from .runtime import Runtime
from .service import FaceSearchService, Limits
from .unknown import Retention, UnknownKeeper, keeper_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tuning:
    """How the service runs: threads, micro-batches, warm-up and background work (the server's flags)."""
    tf_threads: int = 0                     # TensorFlow threads per op (0: lane_threads(embed_lanes))
    embed_lanes: int = 1                    # embedding batches run at once (the server's flag: 2); 1 leaves an
                                            # in-process user's TensorFlow threads alone
    warmup_sizes: tuple[int, ...] = (1,)    # blank batches run before serving; () skips the warm-up
    detect_workers: int = 2
    max_batch: int = 64
    detect_batch: int = 16
    max_wait_s: float = 0.005
    snapshot_every: int = 10_000
    max_queued: int = 4096
    follow_s: float = 0.25


def lane_threads(lanes: int) -> int:
    """TensorFlow threads per op for `lanes` embedding lanes: the cores this process may use,
    shared among them (0, TensorFlow's own choice, with one lane)."""
    if lanes <= 1:
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // lanes)


@dataclass
class Assembled:
    """A loaded, warmed and started service, and what it is made of (for metrics and health)."""
    embedder: Embedder
    gallery: Gallery
    runtime: Runtime
    service: FaceSearchService
    unknown: UnknownKeeper | None = None   # with --keep-unknown-days

    async def close(self) -> None:
        """Stop the batchers (queued writes finish first) and the unknown-face keeper (its queue is
        written), then close the gallery (snapshots the index)."""
        try:
            await self.runtime.stop()
            if self.unknown is not None:
                await asyncio.get_running_loop().run_in_executor(None, self.unknown.stop)
        finally:
            self.gallery.close()


def load(embedder_config: EmbedderConfig, gallery_config: GalleryConfig, tuning: Tuning, limits: Limits, *,
         retention: Retention = Retention(),
         on_batch: Callable[[str, int], None] | None = None,
         on_stopped: Callable[[str], None] | None = None) -> Assembled:
    """Load the model and gallery and trace everything a request will run (blocking: call it in a
    worker thread). The runtime is not started yet: Assembled.runtime.start() in the serving loop."""
    threads = tuning.tf_threads or lane_threads(tuning.embed_lanes)
    if threads:  # before TensorFlow starts: docs/performance.md#embedding-lanes
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
    embedder = Embedder.load(embedder_config)
    if tuning.warmup_sizes:
        embedder.warmup(list(tuning.warmup_sizes))
    gallery = Gallery.open(gallery_config, model_id=embedder.model_id, dimension=embedder.dimension)
    try:
        runtime = Runtime(embedder, gallery, detect_workers=tuning.detect_workers, max_batch=tuning.max_batch,
                          embed_lanes=tuning.embed_lanes,
                          detect_batch=tuning.detect_batch, max_wait_s=tuning.max_wait_s,
                          snapshot_every=tuning.snapshot_every, max_queued=tuning.max_queued,
                          follow_s=tuning.follow_s, on_batch=on_batch, on_stopped=on_stopped)
        runtime.faces.warm()  # trace the detector before serving
    except BaseException:
        gallery.close()
        raise
    unknown = keeper_for(gallery, retention)
    return Assembled(embedder, gallery, runtime, FaceSearchService(embedder, gallery, runtime, limits, unknown),
                     unknown)


async def assemble(embedder_config: EmbedderConfig, gallery_config: GalleryConfig, tuning: Tuning = Tuning(),
                   limits: Limits = Limits(), *, retention: Retention = Retention(),
                   on_batch: Callable[[str, int], None] | None = None,
                   on_stopped: Callable[[str], None] | None = None) -> Assembled:
    """load() in a worker thread, then start the runtime on the running event loop."""
    built = await asyncio.get_running_loop().run_in_executor(
        None, lambda: load(embedder_config, gallery_config, tuning, limits, retention=retention, on_batch=on_batch,
                           on_stopped=on_stopped))
    built.runtime.start()
    if built.unknown is not None:
        built.unknown.start()
    return built
