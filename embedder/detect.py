"""Face detection with MTCNN and cropping with a margin.

Faces come back largest first. Where one face is wanted (Enroll), use
`primary_face`: it weighs size and centrality, never confidence alone, since
MTCNN's most confident box is often a background face (docs/architecture.md#choosing-the-face).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import cv2
import numpy as np


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    width: int
    height: int

    @property
    def area(self) -> int:
        return self.width * self.height


@dataclass
class Face:
    box: Box                       # the detector's box, clamped to the image
    score: float                   # detection confidence; 1.0 for a given crop
    crop: np.ndarray = field(repr=False)  # RGB uint8, box plus margin, clamped at the borders
    landmarks: dict = field(default_factory=dict)


def crop_with_margin(rgb: np.ndarray, box: Box, margin: float) -> np.ndarray:
    """The box grown by `margin` x its size on each side, clamped at the image borders."""
    h, w = rgb.shape[:2]
    mx, my = int(round(box.width * margin)), int(round(box.height * margin))
    x0, y0 = max(box.x - mx, 0), max(box.y - my, 0)
    x1, y1 = min(box.x + box.width + mx, w), min(box.y + box.height + my, h)
    return rgb[y0:y1, x0:x1]


def whole_image_face(rgb: np.ndarray) -> Face:
    """FACE_MODE_CROPPED: the image is already a face crop."""
    h, w = rgb.shape[:2]
    return Face(Box(0, 0, w, h), 1.0, rgb)


def primary_face(faces: list[Face], image_shape) -> Face | None:
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
        d = np.hypot(b.x + b.width / 2 - w / 2, b.y + b.height / 2 - h / 2) / half_diag
        return b.area * max(1.0 - d, 0.05)

    return max(faces, key=weight)


class FaceDetector:
    """MTCNN behind a lock (its Keras models are not safe to call concurrently)."""

    def __init__(self, *, min_score: float = 0.8, min_face_size: int = 20, margin: float = 0.1,
                 max_side: int = 1600):
        from mtcnn import MTCNN

        self.min_score = min_score
        self.min_face_size = min_face_size
        self.margin = margin
        self.max_side = max_side
        self._mtcnn = MTCNN()
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config) -> "FaceDetector":
        """A detector with an EmbedderConfig's score, size, margin and max-side settings."""
        return cls(min_score=config.min_face_score, min_face_size=config.min_face_size,
                   margin=config.crop_margin, max_side=config.detect_max_side)

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """Every face scoring at least min_score, largest first."""
        return self.detect_many([rgb])[0]

    def detect_many(self, images: list[np.ndarray], batch_size: int = 16) -> list[list[Face]]:
        """detect() for several images; images of the same size share one MTCNN call.

        A batched MTCNN call costs about a third of the per-image time of
        separate calls here. MTCNN pads mixed sizes to the largest, which loses
        faces, so only images of identical shape are batched together.
        """
        scales = [min(1.0, self.max_side / max(rgb.shape[:2])) for rgb in images]
        small = [rgb if s == 1.0 else cv2.resize(
            rgb, (max(1, round(rgb.shape[1] * s)), max(1, round(rgb.shape[0] * s))),
            interpolation=cv2.INTER_AREA) for rgb, s in zip(images, scales)]
        groups: dict[tuple, list[int]] = {}
        for i, img in enumerate(small):
            groups.setdefault(img.shape, []).append(i)
        results: list[list[Face]] = [[] for _ in images]
        for indices in groups.values():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start:start + batch_size]
                min_size = max(4, int(self.min_face_size * min(scales[i] for i in chunk)))
                with self._lock:
                    found = (self._mtcnn.detect_faces([small[i] for i in chunk], min_face_size=min_size)
                             if len(chunk) > 1 else [self._mtcnn.detect_faces(small[chunk[0]], min_face_size=min_size)])
                for i, dets in zip(chunk, found):
                    results[i] = self._faces(images[i], dets or [], scales[i])
        return results

    def _faces(self, rgb: np.ndarray, detections, scale: float) -> list[Face]:
        h, w = rgb.shape[:2]
        faces = []
        for det in detections:
            score = float(det["confidence"])
            if score < self.min_score:
                continue
            box = self._clamp([v / scale for v in det["box"]], w, h)
            if box is None:
                continue
            landmarks = {k: (float(x) / scale, float(y) / scale) for k, (x, y) in det.get("keypoints", {}).items()}
            faces.append(Face(box, score, crop_with_margin(rgb, box, self.margin), landmarks))
        faces.sort(key=lambda f: f.box.area, reverse=True)
        return faces

    @staticmethod
    def _clamp(xywh, w: int, h: int) -> Box | None:
        x, y, bw, bh = xywh
        x0, y0 = max(int(round(x)), 0), max(int(round(y)), 0)
        x1, y1 = min(int(round(x + bw)), w), min(int(round(y + bh)), h)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return None
        return Box(x0, y0, x1 - x0, y1 - y0)
