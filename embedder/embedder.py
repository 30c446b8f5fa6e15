"""The Embedder: images or face crops in, unit-norm embeddings out.

The model runs under one `tf.function`, fed with batches padded to a fixed set
of shape buckets, so a new batch size never retraces. Calls are serialised by
a lock: one call already uses every core, and concurrent callers are safe.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from .config import EmbedderConfig
from .detect import Face, FaceDetector, whole_image_face
from .distances import l2_normalize
from .errors import ImageError
from .images import decode
from .models import LoadedModel, load_model
from .preprocess import preprocess
from .weights import WeightsCache

log = logging.getLogger(__name__)

BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class FaceMode(IntEnum):
    """Same numbers as facesearch.v1.FaceMode; UNSPECIFIED means DETECT."""

    UNSPECIFIED = 0
    DETECT = 1
    CROPPED = 2


@dataclass
class EmbeddedFace:
    face: Face
    embedding: np.ndarray  # (dimension,) float32, unit norm


def bucket_for(n: int, max_batch: int) -> int:
    """Smallest bucket holding n rows, capped at max_batch (itself a bucket edge)."""
    for b in BUCKETS:
        if b >= n and b <= max_batch:
            return b
    return max_batch


def plan_batches(n: int, max_batch: int) -> list[tuple[int, int]]:
    """Split n rows into (rows, bucket) model calls.

    Rows are padded up to a bucket only when that wastes at most a quarter of it
    (50 rows -> 64); otherwise the largest bucket that fits is split off (40 rows
    -> 32 + 8), since padding 33 rows to 64 would nearly double the work.
    """
    plan = []
    while n > 0:
        bucket = bucket_for(n, max_batch)
        if n >= bucket or 4 * n >= 3 * bucket:
            take = min(n, bucket)
        else:
            bucket = take = max(b for b in BUCKETS if b <= n and b <= max_batch)
        plan.append((take, bucket))
        n -= take
    return plan


class Embedder:
    def __init__(self, model: LoadedModel, config: EmbedderConfig | None = None):
        import tensorflow as tf

        self.config = config or EmbedderConfig.from_env()
        self.model = model
        self._detector: FaceDetector | None = None
        self._detector_lock = threading.Lock()
        self._lock = threading.Lock()
        keras_model = model.keras_model
        self._fn = tf.function(lambda x: keras_model(x, training=False), reduce_retracing=False)

    @classmethod
    def load(cls, config: EmbedderConfig | None = None) -> "Embedder":
        """Resolve config.model (fetching verified weights if needed) and build an Embedder."""
        config = config or EmbedderConfig.from_env()
        model = load_model(config.model, WeightsCache(config.cache_dir), download_timeout=config.download_timeout)
        return cls(model, config)

    @property
    def model_id(self) -> str:
        return self.model.model_id

    @property
    def dimension(self) -> int:
        return self.model.dimension

    @property
    def detector(self) -> FaceDetector:
        with self._detector_lock:
            if self._detector is None:
                self._detector = FaceDetector.from_config(self.config)
            return self._detector

    # -- embedding --------------------------------------------------------
    def embed_crops(self, crops) -> np.ndarray:
        """RGB uint8 face crops (any size) -> (N, dimension) float32 unit embeddings."""
        if len(crops) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        m = self.model
        return self.embed_preprocessed(preprocess(crops, m.image_size, m.standardization))

    def embed_preprocessed(self, x: np.ndarray) -> np.ndarray:
        """Model-ready (N, size, size, 3) float32 -> (N, dimension) unit embeddings."""
        out = np.empty((len(x), self.dimension), dtype=np.float32)
        start = 0
        for rows, bucket in plan_batches(len(x), self.config.max_batch):
            chunk = x[start:start + rows]
            if bucket != rows:
                chunk = np.concatenate([chunk, np.zeros((bucket - rows,) + chunk.shape[1:], dtype=np.float32)])
            with self._lock:
                out[start:start + rows] = self._fn(chunk).numpy()[:rows]
            start += rows
        return l2_normalize(out)

    def warmup(self, sizes=(1,), *, run: bool = True) -> None:
        """Trace the given bucket sizes now rather than on the first request; run=False traces
        without running a blank batch (the first real call then sets the graph up)."""
        import tensorflow as tf

        s = self.model.image_size
        for size in sizes:
            if run:
                self.embed_preprocessed(np.zeros((size, s, s, 3), dtype=np.float32))
            else:
                self._fn.get_concrete_function(tf.TensorSpec((size, s, s, 3), tf.float32))

    # -- images -----------------------------------------------------------
    def find_faces(self, rgb: np.ndarray, face_mode: FaceMode = FaceMode.DETECT, max_faces: int = 0) -> list[Face]:
        """Faces of a decoded image: detected (largest first), or the whole image if CROPPED."""
        return self.find_faces_many([rgb], face_mode, max_faces)[0]

    def find_faces_many(self, images: list[np.ndarray], face_mode: FaceMode = FaceMode.DETECT,
                        max_faces: int = 0) -> list[list[Face]]:
        """find_faces() for several decoded images, with one batched detection."""
        if FaceMode(face_mode) == FaceMode.CROPPED:
            return [[whole_image_face(rgb)] for rgb in images]
        found = self.detector.detect_many(images)
        return [faces[:max_faces] if max_faces > 0 else faces for faces in found]

    def embed_image(self, data: bytes, face_mode: FaceMode = FaceMode.DETECT, max_faces: int = 0) -> list[EmbeddedFace]:
        """Encoded image bytes -> one EmbeddedFace per face (none if no face is found).

        Raises ImageError subclasses for bad input.
        """
        (result,) = self.embed_images([data], face_mode, max_faces)
        if isinstance(result, ImageError):
            raise result
        return result

    def embed_images(self, images: list[bytes], face_mode: FaceMode = FaceMode.DETECT,
                     max_faces: int = 0) -> list[list[EmbeddedFace] | ImageError]:
        """embed_image() for several images: one batched detection, one batched embedding.

        A bad image does not fail the others: its slot holds its ImageError
        instead of a list of faces.
        """
        decoded: list[np.ndarray | ImageError] = []
        for data in images:
            try:
                decoded.append(decode(data, self.config.image_limits))
            except ImageError as exc:
                decoded.append(exc)
        good = [i for i, d in enumerate(decoded) if not isinstance(d, ImageError)]
        found = self.find_faces_many([decoded[i] for i in good], face_mode, max_faces)
        embeddings = iter(self.embed_crops([f.crop for faces in found for f in faces]))
        out: list = list(decoded)
        for i, faces in zip(good, found):
            out[i] = [EmbeddedFace(f, next(embeddings)) for f in faces]
        return out
