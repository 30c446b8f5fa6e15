"""SFace (OpenCV Zoo, `face_recognition_sface_2021dec_int8bq.onnx`): face crops in, 128-d unit embeddings out,
the second half of the fused model `facenet-128+sface` (docs/models.md#the-fused-model).

SFace wants the face aligned on its five points (`cv2.FaceRecognizerSF.alignCrop`: a similarity
transform onto ArcFace's 112 x 112 template). A crop carries no landmarks (the service, the indexer
and a reindex from stored `crop_jpeg` all hand the embedder crops), so they are found on the crop
itself with YuNet: the embedding is a function of the crop alone, the same at enrolment and at
reindex. When YuNet finds no face in a crop (1 of the 118 5-celebrity crops), the points are
placed where they lie on average in a margin crop (MEAN_POINTS).

The network runs through `cv2.dnn` with `setInput(blob, "data")`: `FaceRecognizerSF.feature`
refuses the int8 file, which lists its weight tensors as graph inputs.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

from .distances import l2_normalize
from .weights import SFACE_FILE, YUNET_FILE, WeightsCache
from .yunet import YuNetDetector

DIMENSION = 128
LANDMARK_MIN_SCORE = 0.3   # the crop holds a face: take YuNet's best guess at its points
# Where the 5 points lie in a 10%-margin crop, as shares of its width and height: the mean of
# YuNet's points on the 118 5-celebrity crops (left eye, right eye, nose, mouth left, mouth right).
MEAN_POINTS = np.array([[0.307, 0.407], [0.691, 0.401], [0.498, 0.569], [0.345, 0.702], [0.674, 0.701]],
                       np.float32)


class SFace:
    def __init__(self, model: bytes, yunet_model: bytes):
        buffer = np.frombuffer(model, np.uint8)
        self._net = cv2.dnn.readNetFromONNX(buffer)
        # Only for alignCrop (its feature() fails on this file; see the module docstring).
        self._aligner = cv2.FaceRecognizerSF.create("onnx", buffer, np.zeros(0, np.uint8))
        self._points = YuNetDetector(yunet_model, min_score=LANDMARK_MIN_SCORE, min_face_size=4, threads=1)
        self._lock = threading.Lock()   # a cv2.dnn.Net is not safe to share between threads

    @classmethod
    def load(cls, cache: WeightsCache) -> "SFace":
        """SFace and YuNet from the cache, their bytes checked against their sha256."""
        return cls(cache.onnx_model(SFACE_FILE), cache.onnx_model(YUNET_FILE))

    def landmarks(self, crop: np.ndarray) -> np.ndarray:
        """The crop's 5 points (5, 2) in its pixels: YuNet's on its largest face, else MEAN_POINTS."""
        rows = self._points.rows(crop)
        if len(rows):
            best: np.ndarray = rows[int(np.argmax(rows[:, 2] * rows[:, 3]))]
            return best[4:14].reshape(5, 2)
        h, w = crop.shape[:2]
        return MEAN_POINTS * np.array([w, h], np.float32)

    def align(self, crop: np.ndarray) -> np.ndarray:
        """RGB crop -> the 112 x 112 BGR face aligned on its 5 points."""
        row = np.zeros((1, 15), np.float32)
        row[0, 4:14] = self.landmarks(crop).ravel()
        return self._aligner.alignCrop(cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), row)

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        """RGB uint8 face crops -> (N, 128) float32 unit embeddings, one network call."""
        if not crops:
            return np.zeros((0, DIMENSION), np.float32)
        aligned = [self.align(c) for c in crops]
        # as FaceRecognizerSF.feature prepares it: 112 x 112, BGR to RGB, no scaling
        blob = cv2.dnn.blobFromImages(aligned, 1.0, (112, 112), (0, 0, 0), True, False)
        with self._lock:
            self._net.setInput(blob, "data")
            out = self._net.forward()
        return l2_normalize(out.reshape(len(crops), DIMENSION))
