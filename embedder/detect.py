"""Face detection with MTCNN and cropping with a margin.

Faces come back largest first. Where one face is wanted (Enroll), use
`primary_face`: it weighs size and centrality, never confidence alone, since
MTCNN's most confident box is often a background face (docs/architecture.md#choosing-the-face).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import cv2
import numpy as np

from .mtcnn_batched import DEFAULT_SCALE_FACTOR, MIN_FACE_SIZE_RANGE, SCALE_FACTOR_RANGE

if TYPE_CHECKING:
    from .config import EmbedderConfig
    from .mtcnn_batched import Networks


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    width: int
    height: int

    @property
    def area(self) -> int:
        return self.width * self.height


Landmarks = dict[str, tuple[float, float]]   # point name (left_eye, right_eye, nose, mouth_left, mouth_right) -> (x, y)


@dataclass
class Face:
    box: Box                       # the detector's box, clamped to the image
    score: float                   # detection confidence; 1.0 for a given crop
    crop: np.ndarray = field(repr=False)  # RGB uint8, box plus margin, clamped at the borders
    landmarks: Landmarks = field(default_factory=dict)


CROP_MAX_SIDE = 480   # 3x the model's 160 px: crops stay small in flight and in SQL, and still serve a reindex


def crop_with_margin(rgb: np.ndarray, box: Box, margin: float) -> np.ndarray:
    """The box grown by `margin` x its size on each side, clamped at the image borders; a copy,
    downscaled (area interpolation) when its longer side is over CROP_MAX_SIDE."""
    h, w = rgb.shape[:2]
    mx, my = int(round(box.width * margin)), int(round(box.height * margin))
    x0, y0 = max(box.x - mx, 0), max(box.y - my, 0)
    x1, y1 = min(box.x + box.width + mx, w), min(box.y + box.height + my, h)
    crop = rgb[y0:y1, x0:x1]
    side = max(crop.shape[:2])
    if side > CROP_MAX_SIDE:
        scale = CROP_MAX_SIDE / side
        size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
        return cv2.resize(crop, size, interpolation=cv2.INTER_AREA)   # a new array
    return crop.copy()  # a copy: a view would keep the whole decoded photo alive


def whole_image_face(rgb: np.ndarray) -> Face:
    """FACE_MODE_CROPPED: the image is already a face crop; a copy held at CROP_MAX_SIDE like a
    detected face's, so that a large image is not kept whole until it is embedded."""
    h, w = rgb.shape[:2]
    box = Box(0, 0, w, h)
    return Face(box, 1.0, crop_with_margin(rgb, box, 0.0))


def primary_face(faces: list[Face], image_shape: tuple[int, ...]) -> Face | None:
    """The face a person most likely meant: large and central.

    Score = area x (1 - d), where d is the distance from the box centre to the
    image centre divided by half the image diagonal.
    """
    if not faces:
        return None
    h, w = image_shape[:2]
    half_diag = 0.5 * float(np.hypot(w, h)) or 1.0

    def weight(face: Face) -> float:
        b = face.box
        d = float(np.hypot(b.x + b.width / 2 - w / 2, b.y + b.height / 2 - h / 2)) / half_diag
        return b.area * max(1.0 - d, 0.05)

    return max(faces, key=weight)


def check_range(name: str, value: float, bounds: tuple[float, float | None]) -> None:
    low, high = bounds
    if value < low or (high is not None and value > high):
        where = f"within [{low}, {high}]" if high is not None else f"at least {low}"
        raise ValueError(f"FaceDetector {name}={value} must be {where} (see docs/detection.md)")


class FaceDetector:
    """MTCNN (the `mtcnn` package's networks and weights), compiled and batched; the `mtcnn`
    detector of the registry (detectors.py).

    `compiled=False` runs the same pipeline with the plain Keras models, one
    image at a time under a lock: slower, kept as a reference. See
    docs/detection.md for the settings and their cost.
    """

    def __init__(self, *, min_score: float = 0.8, min_face_size: int = 20, margin: float = 0.1,
                 max_side: int = 1600, scale_factor: float = DEFAULT_SCALE_FACTOR, compiled: bool = True) -> None:
        from .mtcnn_batched import MTCNNPipeline

        check_range("min_face_size", min_face_size, MIN_FACE_SIZE_RANGE)
        check_range("scale_factor", scale_factor, SCALE_FACTOR_RANGE)
        check_range("max_side", max_side, (64, None))
        self.min_score = min_score
        self.min_face_size = min_face_size
        self.margin = margin
        self.max_side = max_side
        self.scale_factor = scale_factor
        self.compiled = compiled
        self._pipeline = MTCNNPipeline(compiled=compiled)

    @classmethod
    def from_config(cls, config: EmbedderConfig, **kwargs: Any) -> "FaceDetector":
        """A detector with an EmbedderConfig's score, size, margin, max-side and scale-factor settings."""
        return cls(min_score=config.min_face_score, min_face_size=config.min_face_size,
                   margin=config.crop_margin, max_side=config.detect_max_side,
                   scale_factor=config.detect_scale_factor, **kwargs)

    name = "mtcnn"

    def warm(self) -> None:
        """Load and trace the networks now rather than on the first photos."""
        self.networks.warm()

    @property
    def networks(self) -> Networks:
        """The shared PNet/RNet/ONet (their tracing_counts() show whether anything retraced)."""
        return self._pipeline.nets

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """Every face scoring at least min_score, largest first."""
        return self.detect_many([rgb])[0]

    def detect_many(self, images: list[np.ndarray], timings: dict[str, float] | None = None) -> list[list[Face]]:
        """detect() for several images of any sizes, in one batched pass.

        Photos larger than max_side are downscaled for the pyramid; their boxes
        and landmarks are mapped back and the crops cut at full resolution.
        Images of the same (downscaled) size share PNet calls; RNet and ONet
        each run once over the candidates of all images. `timings`, if given,
        accumulates seconds under "pnet", "rnet", "onet" and "crop".
        """
        if not images:
            return []
        scales = [min(1.0, self.max_side / max(rgb.shape[:2])) for rgb in images]
        small = [rgb if s == 1.0 else cv2.resize(
            rgb, (max(1, round(rgb.shape[1] * s)), max(1, round(rgb.shape[0] * s))),
            interpolation=cv2.INTER_AREA) for rgb, s in zip(images, scales)]
        # min_face_size is in full-resolution pixels
        sizes = [max(4, int(self.min_face_size * s)) for s in scales]
        rows = self._pipeline.detect(small, sizes, self.scale_factor, timings=timings)
        t = time.perf_counter()
        faces = [self._faces(rgb, r, s) for rgb, r, s in zip(images, rows, scales)]
        if timings is not None:
            timings["crop"] = timings.get("crop", 0.0) + time.perf_counter() - t
        return faces

    def _faces(self, rgb: np.ndarray, rows: np.ndarray, scale: float) -> list[Face]:
        from .mtcnn_batched import LANDMARKS, SCORE, X1, X2, Y1, Y2

        h, w = rgb.shape[:2]
        faces = []
        for row in rows:
            score = float(row[SCORE])
            if score < self.min_score:
                continue
            # rounded as the mtcnn package rounds its "box" (x, y, width, height)
            xywh = np.round(np.array([row[X1], row[Y1], row[X2] - row[X1], row[Y2] - row[Y1]]) / scale)
            box = self._clamp(xywh, w, h)
            if box is None:
                continue
            landmarks = {k: (float(row[i]) / scale, float(row[j]) / scale) for k, (i, j) in LANDMARKS.items()}
            faces.append(Face(box, score, crop_with_margin(rgb, box, self.margin), landmarks))
        faces.sort(key=lambda f: f.box.area, reverse=True)
        return faces

    @staticmethod
    def _clamp(xywh: Sequence[float] | np.ndarray, w: int, h: int) -> Box | None:
        x, y, bw, bh = xywh
        x0, y0 = max(int(round(x)), 0), max(int(round(y)), 0)
        x1, y1 = min(int(round(x + bw)), w), min(int(round(y + bh)), h)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return None
        return Box(x0, y0, x1 - x0, y1 - y0)
