"""Decoding and detection, in worker processes or not (one per core): bytes in, one face crop out."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from .config import EmbedderConfig
from .detect import primary_face, whole_image_face
from .embedder import FaceMode
from .errors import ImageError
from .images import decode

_detector = None
_config: EmbedderConfig | None = None


@dataclass
class Prepared:
    crop: np.ndarray | None            # RGB uint8, None when rejected
    box: tuple[int, int, int, int] | None = None
    score: float | None = None
    faces: int = 0
    reason: str = ""                   # why it was rejected


def init(config: EmbedderConfig) -> None:
    global _config
    _config = config


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def prepare(data: bytes, mode: FaceMode) -> Prepared:
    """One face per image: the whole image (CROPPED) or the largest, most central face found."""
    global _detector
    config = _config or EmbedderConfig.from_env()
    try:
        rgb = decode(data, config.image_limits)
    except ImageError as exc:
        return Prepared(None, reason=str(exc))
    if mode == FaceMode.CROPPED:
        face = whole_image_face(rgb)
        found = 1
    else:
        if _detector is None:
            from .detect import FaceDetector

            _detector = FaceDetector.from_config(config)
        faces = _detector.detect(rgb)
        face, found = primary_face(faces, rgb.shape), len(faces)
        if face is None:
            return Prepared(None, reason="no face found")
    b = face.box
    return Prepared(face.crop, (b.x, b.y, b.width, b.height), face.score, found)
