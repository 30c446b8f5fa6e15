"""Turning request images into faces, off the event loop, with detection batched across requests.

Images are decoded in a pool of threads. Detection is a micro-batch like embedding: the
photos of all requests in flight go to the configured detector together (MTCNN: PNet per size,
RNet and ONet once over every candidate, embedder/detect.py; YuNet: spread over its own worker
threads, embedder/yunet.py), from a thread of its own, so detection and embedding overlap. Picking the face, copying the crop and encoding its
JPEG run back in the decode threads.

Decoded photos are the memory a request costs. Each image holds its header's pixel count from a
pool-wide budget of `workers` x FACESEARCH_MAX_PIXELS from before its decode until its face is
picked (the crop is a small copy), so decodes wait for picks: however many images are in flight,
at most the decode workers' worth of full-size photos is held at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from typing import AsyncIterator, Callable, TypeVar, TypeVarTuple, Unpack

import numpy as np

from facesearch.embedder import EmbedderConfig, Face, FaceMode, ImageError, decode, primary_face
from facesearch.embedder.detect import whole_image_face
from facesearch.embedder.detectors import create_detector
from facesearch.embedder.images import header_pixels
from facesearch.embedder.prepare import Prepared, pick

from .batcher import MicroBatcher

R = TypeVar("R")
Ts = TypeVarTuple("Ts")


class FacePool:
    def __init__(self, config: EmbedderConfig, workers: int, *, max_batch: int = 16, max_wait_s: float = 0.005,
                 max_queued: int = 4096, on_batch: Callable[[int], None] | None = None,
                 on_stopped: Callable[[BaseException | None], None] | None = None):
        self.config = config
        self.detector = create_detector(config)
        self._executor = concurrent.futures.ThreadPoolExecutor(max(1, workers), thread_name_prefix="decode")
        self._detect = MicroBatcher(self.detector.detect_many, max_batch=max_batch, max_wait_s=max_wait_s,
                                    name="detect", max_queued=max_queued, on_batch=on_batch, on_stopped=on_stopped)
        self.pixel_budget = max(1, workers) * config.max_pixels   # decoded pixels held at once
        self._held = 0
        self._room = asyncio.Condition()

    def start(self) -> None:
        self._detect.start()

    def warm(self) -> None:
        """Trace the detector before serving (blocking)."""
        self.detector.warm()

    async def stop(self) -> None:
        await self._detect.stop()
        self._executor.shutdown(wait=True, cancel_futures=True)

    @property
    def depth(self) -> int:
        return self._detect.depth

    async def _run(self, fn: Callable[[Unpack[Ts]], R], *args: Unpack[Ts]) -> R:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _decoded(self, data: bytes) -> np.ndarray:
        return await self._run(decode, data, self.config.image_limits)

    @contextlib.asynccontextmanager
    async def _holding(self, data: bytes) -> AsyncIterator[None]:
        """Waits until the image's pixels (from its header) fit the pool's budget, holds them for the block."""
        pixels = min(header_pixels(data), self.pixel_budget)   # over max_pixels: decode refuses it at once
        async with self._room:
            await self._room.wait_for(lambda: self._held + pixels <= self.pixel_budget)
            self._held += pixels
        try:
            yield
        finally:
            async with self._room:
                self._held -= pixels
                self._room.notify_all()

    async def _detected(self, rgb: np.ndarray, mode: FaceMode) -> list[Face] | None:
        """The faces found, largest first; None for CROPPED (the image is the face)."""
        if FaceMode(mode or FaceMode.DETECT) == FaceMode.CROPPED:
            return None
        (faces,) = await self._detect.submit([rgb])
        found: list[Face] = faces
        return found

    async def faces(self, data: bytes, mode: FaceMode, max_faces: int = 0) -> list[Face]:
        """Every face, largest first; raises ImageError for bad bytes."""
        async with self._holding(data):
            rgb = await self._decoded(data)
            faces = await self._detected(rgb, mode)
            if faces is None:
                return [whole_image_face(rgb)]
            return faces[:max_faces] if max_faces > 0 else faces

    async def primary(self, data: bytes, mode: FaceMode) -> Face | None:
        """The one face a person meant (large and central); raises ImageError for bad bytes."""
        async with self._holding(data):
            rgb = await self._decoded(data)
            faces = await self._detected(rgb, mode)
            return whole_image_face(rgb) if faces is None else primary_face(faces, rgb.shape)

    async def prepare(self, data: bytes, mode: FaceMode) -> Prepared:
        """For enrolment: the primary face's crop and its JPEG, or a rejection with its reason."""
        async with self._holding(data):
            try:
                rgb = await self._decoded(data)
            except ImageError as exc:
                return Prepared(None, reason=str(exc))
            faces = await self._detected(rgb, mode)
            return await self._run(lambda: pick(rgb, faces, keep_jpeg=True))
