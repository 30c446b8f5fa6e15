"""Turning request images into face crops, off the event loop.

Decoding and MTCNN run in a pool of threads, each with its own detector, so
concurrent requests detect in parallel and the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

from facesearch.embedder import EmbedderConfig, Face, FaceDetector, FaceMode, decode, primary_face
from facesearch.embedder.detect import whole_image_face
from facesearch.embedder.prepare import Prepared, prepare


class FacePool:
    def __init__(self, config: EmbedderConfig, workers: int):
        self.config = config
        self._local = threading.local()
        self._executor = concurrent.futures.ThreadPoolExecutor(max(1, workers), thread_name_prefix="detect")

    def _detector(self) -> FaceDetector:
        det = getattr(self._local, "detector", None)
        if det is None:
            det = self._local.detector = FaceDetector.from_config(self.config)
        return det

    def _faces(self, data: bytes, mode: FaceMode, max_faces: int) -> tuple[list[Face], tuple]:
        rgb = decode(data, self.config.image_limits)
        if mode == FaceMode.CROPPED:
            return [whole_image_face(rgb)], rgb.shape
        faces = self._detector().detect(rgb)
        return (faces[:max_faces] if max_faces > 0 else faces), rgb.shape

    async def faces(self, data: bytes, mode: FaceMode, max_faces: int = 0) -> list[Face]:
        """Every face, largest first; raises ImageError for bad bytes."""
        loop = asyncio.get_running_loop()
        faces, _shape = await loop.run_in_executor(self._executor, self._faces, data,
                                                   FaceMode(mode or FaceMode.DETECT), max_faces)
        return faces

    async def primary(self, data: bytes, mode: FaceMode) -> Face | None:
        """The one face a person meant (large and central); raises ImageError for bad bytes."""
        loop = asyncio.get_running_loop()
        faces, shape = await loop.run_in_executor(self._executor, self._faces, data,
                                                  FaceMode(mode or FaceMode.DETECT), 0)
        return primary_face(faces, shape)

    async def prepare(self, data: bytes, mode: FaceMode) -> Prepared:
        """For enrolment: the primary face's crop, or a rejection with its reason."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, lambda: prepare(data, FaceMode(mode or FaceMode.DETECT), config=self.config,
                                            detector=self._detector(), keep_jpeg=True))

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
