"""The Embedder: images or face crops in, unit-norm embeddings out.

The model runs under one `tf.function` whose input signature leaves the batch
size open: it is traced once, and a batch of any size runs as it is, unpadded.
Its weights are constants of that graph, so TensorFlow's graph optimiser can
fold them (batch norms into convolutions) and no call reads ~500 variables
(docs/performance.md#weights-as-constants).
Calls are serialised by a lock: one call already uses every core, and
concurrent callers are safe.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from dataclasses import dataclass
from typing import Any, Sequence
from enum import IntEnum

import numpy as np

from .config import EmbedderConfig
from .detect import Face, whole_image_face
from .detectors import Detector, create_detector
from .distances import l2_normalize
from .errors import ImageError
from .images import decode
from .models import LoadedModel, load_model
from .preprocess import preprocess
from .weights import WeightsCache

log = logging.getLogger(__name__)

class FaceMode(IntEnum):
    """Same numbers as facesearch.v1.FaceMode; UNSPECIFIED means DETECT."""

    UNSPECIFIED = 0
    DETECT = 1
    CROPPED = 2


@dataclass
class EmbeddedFace:
    face: Face
    embedding: np.ndarray  # (dimension,) float32, unit norm


class Embedder:
    def __init__(self, model: LoadedModel, config: EmbedderConfig | None = None):
        import tensorflow as tf

        self.config = config or EmbedderConfig.from_env()
        self.model = model
        self._detector: Detector | None = None
        self._detector_lock = threading.Lock()
        self._sface_thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sface")
        # Keras's stateless_call with the weights as numpy arrays: they become constants of the graph,
        # read once, here (changing the Keras model afterwards changes nothing). Traced on first use.
        keras_model, size = model.keras_model, model.image_size
        self._keras_dimension = int(keras_model.output_shape[-1])
        weights = ([v.numpy() for v in keras_model.trainable_variables],
                   [v.numpy() for v in keras_model.non_trainable_variables])

        def run(x: Any) -> Any:
            out, _ = keras_model.stateless_call(*weights, x, training=False)
            return out

        self._fn = tf.function(run, input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)])

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
    def detector(self) -> Detector:
        """The configured detector (FACESEARCH_DETECTOR), built on first use."""
        with self._detector_lock:
            if self._detector is None:
                self._detector = create_detector(self.config)
            return self._detector

    # -- embedding --------------------------------------------------------
    def embed_crops(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """RGB uint8 face crops (any size) -> (N, dimension) float32 unit embeddings.

        The fused model: FaceNet's and SFace's unit embeddings of each crop, weighted
        (LoadedModel.fusion_weights, whose squares sum to 1), side by side: unit norm again.
        SFace runs on a thread of its own meanwhile (OpenCV and TensorFlow release the GIL)."""
        if len(crops) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        m = self.model
        sface = self._sface_thread.submit(m.sface.embed, list(crops)) if m.sface is not None else None
        facenet = self.embed_preprocessed(preprocess(crops, m.image_size, m.standardization))
        if sface is None:
            return facenet
        w_facenet, w_sface = m.fusion_weights
        return l2_normalize(np.concatenate([w_facenet * facenet, w_sface * sface.result()], axis=1))

    def embed_preprocessed(self, x: np.ndarray) -> np.ndarray:
        """Model-ready (N, size, size, 3) float32 -> the Keras model's (N, d) unit embeddings
        (d: the dimension; FaceNet's 128 for the fused model)."""
        out = np.empty((len(x), self._keras_dimension), dtype=np.float32)
        for start in range(0, len(x), self.config.max_batch):
            chunk = x[start:start + self.config.max_batch]
            out[start:start + len(chunk)] = self._fn(chunk).numpy()   # safe from several threads at once
        return l2_normalize(out)

    def warmup(self, sizes: Sequence[int] = (1,)) -> None:
        """Trace the model now rather than on the first request (one trace serves every batch
        size), and run a blank batch of each size, so that the first real batches of those sizes
        find their kernels set up."""
        self._fn.get_concrete_function()
        s = self.model.image_size
        for size in sizes:
            self.embed_preprocessed(np.zeros((size, s, s, 3), dtype=np.float32))

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
        found = self.find_faces_many([d for d in decoded if not isinstance(d, ImageError)], face_mode, max_faces)
        embeddings = iter(self.embed_crops([f.crop for faces in found for f in faces]))
        out: list[list[EmbeddedFace] | ImageError] = [d if isinstance(d, ImageError) else [] for d in decoded]
        for i, faces in zip(good, found):
            out[i] = [EmbeddedFace(f, next(embeddings)) for f in faces]
        return out
