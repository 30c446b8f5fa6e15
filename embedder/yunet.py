"""Face detection with OpenCV Zoo's YuNet (`face_detection_yunet_2023mar_int8bq.onnx`) through
`cv2.FaceDetectorYN`: every face with its box, score and 5 landmarks (docs/detection.md#yunet).

YuNet's anchors cover faces of about 10 to 300 px, so a photo whose longer side is over
`max_side` (640) is downscaled first (area interpolation); boxes and landmarks are mapped back
and crops are cut from the full-resolution photo with the project's margin, as MTCNN's are.
The input size is set per photo. A `cv2.FaceDetectorYN` is not safe to share between threads,
so each thread has its own; OpenCV releases the GIL, so `detect_many` runs photos on the
detector's own worker threads.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from typing import Any

import cv2
import numpy as np

from .detect import Box, Face, check_range, crop_with_margin
from .mtcnn_batched import MIN_FACE_SIZE_RANGE
from .weights import YUNET_FILE, WeightsCache

MAX_SIDE = 640          # longer side YuNet sees; at 1600 px it found 33 boxes for 27 faces (docs/detection.md)
MIN_SCORE = 0.6         # at YuNet's demo threshold (0.9) it missed the face in 8 of the 93 train photos
NMS_THRESHOLD = 0.3
TOP_K = 5000
# YuNet's landmark order is the subject's right eye, left eye, nose, right and left mouth corners:
# on the image, left to right, which is what MTCNN's names mean.
POINTS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


class YuNetDetector:
    """YuNet, one `cv2.FaceDetectorYN` per thread, photos spread over `threads` worker threads."""

    name = "yunet"

    def __init__(self, model: bytes, *, min_score: float = MIN_SCORE, min_face_size: int = 20, margin: float = 0.1,
                 max_side: int = MAX_SIDE, threads: int = 2):
        check_range("min_face_size", min_face_size, MIN_FACE_SIZE_RANGE)
        check_range("max_side", max_side, (64, None))
        check_range("min_score", min_score, (0.0, 1.0))
        check_range("threads", threads, (1, None))
        self.min_score = min_score
        self.min_face_size = min_face_size
        self.margin = margin
        self.max_side = max_side
        self._model = model
        self._local = threading.local()
        self._pool = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="yunet") if threads > 1 else None

    @classmethod
    def from_config(cls, config: Any, cache: WeightsCache | None = None, **kwargs: Any) -> "YuNetDetector":
        """A detector with an EmbedderConfig's settings; the model bytes from the (verified) cache."""
        model = (cache or WeightsCache(config.cache_dir)).onnx_model(YUNET_FILE)
        return cls(model, min_score=config.yunet_min_score, min_face_size=config.min_face_size,
                   margin=config.crop_margin, max_side=config.yunet_max_side, threads=config.detect_threads, **kwargs)

    def warm(self) -> None:
        """Build this thread's network and run it once."""
        self.detect(np.zeros((64, 64, 3), np.uint8))

    def _net(self) -> Any:
        net = getattr(self._local, "net", None)
        if net is None:
            # Scores are filtered here, not by OpenCV, so that min_score may go below its default.
            net = cv2.FaceDetectorYN.create("onnx", np.frombuffer(self._model, np.uint8), np.zeros(0, np.uint8),
                                            (320, 320), 0.0, NMS_THRESHOLD, TOP_K)
            self._local.net = net
        return net

    def rows(self, rgb: np.ndarray) -> np.ndarray:
        """YuNet's rows (N, 15): x, y, w, h, 5 landmarks (x, y), score; in `rgb`'s pixels."""
        h, w = rgb.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        small = rgb if scale == 1.0 else cv2.resize(
            rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        net = self._net()
        net.setInputSize((small.shape[1], small.shape[0]))
        _, found = net.detect(cv2.cvtColor(small, cv2.COLOR_RGB2BGR))   # YuNet was trained on BGR
        if found is None:
            return np.zeros((0, 15), np.float32)
        rows: np.ndarray = found[found[:, 14] >= self.min_score].astype(np.float32)
        rows[:, :14] /= scale
        return rows

    def _faces(self, rgb: np.ndarray) -> list[Face]:
        h, w = rgb.shape[:2]
        faces = []
        for row in self.rows(rgb):
            x0, y0 = max(int(round(row[0])), 0), max(int(round(row[1])), 0)
            x1, y1 = min(int(round(row[0] + row[2])), w), min(int(round(row[1] + row[3])), h)
            if x1 - x0 < 2 or y1 - y0 < 2 or min(row[2], row[3]) < self.min_face_size:
                continue
            box = Box(x0, y0, x1 - x0, y1 - y0)
            landmarks = {name: (float(row[4 + 2 * i]), float(row[5 + 2 * i])) for i, name in enumerate(POINTS)}
            faces.append(Face(box, float(row[14]), crop_with_margin(rgb, box, self.margin), landmarks))
        faces.sort(key=lambda f: f.box.area, reverse=True)
        return faces

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """Every face scoring at least min_score and at least min_face_size across, largest first."""
        return self._faces(rgb)

    def detect_many(self, images: list[np.ndarray], timings: dict[str, float] | None = None) -> list[list[Face]]:
        """detect() for several photos, spread over the worker threads. `timings`, if given,
        accumulates the wall seconds under "yunet"."""
        t = time.perf_counter()
        if self._pool is None or len(images) < 2:
            out = [self._faces(rgb) for rgb in images]
        else:
            out = list(self._pool.map(self._faces, images))
        if timings is not None:
            timings["yunet"] = timings.get("yunet", 0.0) + time.perf_counter() - t
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
