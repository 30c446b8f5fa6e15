"""One face per image, from bytes: decode, detect, pick the main face, crop.

The one place that turns an enrolment image into a crop; the service (in
threads), the indexer's worker processes and the trainer all call `prepare`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from .config import EmbedderConfig
from .detect import Box, Face, primary_face, whole_image_face
from .detectors import Detector, create_detector
from .embedder import FaceMode
from .errors import ImageError
from .images import decode, encode_jpeg

_detector: Detector | None = None
_detector_config: EmbedderConfig | None = None
_config: EmbedderConfig | None = None

NO_FACE = "no face found"


BoxTuple = tuple[int, int, int, int]   # (x, y, width, height) in the photo's pixels

@dataclass
class Prepared:
    crop: np.ndarray | None            # RGB uint8, None when rejected
    box: BoxTuple | None = None
    score: float | None = None
    faces: int = 0
    reason: str = ""                   # why it was rejected
    crop_jpeg: bytes | None = None     # the crop encoded for storage, when asked for


def init(config: EmbedderConfig, tf_threads: int = 0) -> None:
    """Worker-process initialiser: the settings `prepare` uses when none are passed, and
    (tf_threads > 0) TensorFlow's threads, set before TensorFlow starts in this process."""
    global _config
    _config = config
    if tf_threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(tf_threads)
        tf.config.threading.set_inter_op_parallelism_threads(tf_threads)


def warm() -> None:
    """Load and trace this process's detector now rather than on the first images."""
    _process_detector(_config or EmbedderConfig.from_env()).warm()


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _process_detector(config: EmbedderConfig) -> Detector:
    """This process's detector for `config`, built again when the config names other settings."""
    global _detector, _detector_config
    if _detector is None or _detector_config != config:
        _detector, _detector_config = create_detector(config), config
    return _detector


def pick(rgb: np.ndarray, faces: list[Face] | None, *, keep_jpeg: bool = False,
         at: BoxTuple | None = None) -> Prepared:
    """The primary face of detected `faces`, or the whole image when faces is None (CROPPED).
    at: a box (x, y, w, h) that an earlier detection found (a cluster's face): the face that
    overlaps it most instead, rejected when none overlaps it by half."""
    face: Face | None
    if faces is None:
        face, found = whole_image_face(rgb), 1
    elif at is not None:
        face, found = max(faces, key=lambda f: _iou(f.box, at), default=None), len(faces)
        if face is None or _iou(face.box, at) < 0.5:
            x, y, w, h = at
            return Prepared(None, reason=f"no face found at x={x} y={y} {w}x{h}")
    else:
        face, found = primary_face(faces, rgb.shape), len(faces)
        if face is None:
            return Prepared(None, reason=NO_FACE)
    b = face.box
    crop = np.ascontiguousarray(face.crop)  # a copy: a view would keep the whole decoded photo alive
    return Prepared(crop, (b.x, b.y, b.width, b.height), face.score, found,
                    crop_jpeg=encode_jpeg(crop) if keep_jpeg else None)


def prepare(data: bytes, mode: FaceMode, *, config: EmbedderConfig | None = None,
            detector: Detector | None = None, keep_jpeg: bool = False) -> Prepared:
    """The whole image (CROPPED) or the largest, most central face found (DETECT).

    A bad image or no face is a rejection with a reason, not an exception.
    keep_jpeg: also encode the crop as JPEG (what the gallery stores for reindexing),
    here in the worker rather than later on a busier thread.
    """
    config = config or _config or EmbedderConfig.from_env()
    try:
        rgb = decode(data, config.image_limits)
    except ImageError as exc:
        return Prepared(None, reason=str(exc))
    faces = None if mode == FaceMode.CROPPED else (detector or _process_detector(config)).detect(rgb)
    return pick(rgb, faces, keep_jpeg=keep_jpeg)


def _iou(box: Box, at: BoxTuple) -> float:
    x, y, w, h = at
    ix = max(0, min(box.x + box.width, x + w) - max(box.x, x))
    iy = max(0, min(box.y + box.height, y + h) - max(box.y, y))
    inter = ix * iy
    return float(inter / float(box.area + w * h - inter or 1))


def prepare_many(items: list[bytes], mode: FaceMode, *, config: EmbedderConfig | None = None,
                 detector: Detector | None = None, keep_jpeg: bool = False,
                 boxes: Sequence[BoxTuple | None] | None = None) -> list[Prepared]:
    """prepare() for several images, with one batched detection pass over all of them.
    boxes: per image, None or the box of the face wanted (see pick's `at`)."""
    config = config or _config or EmbedderConfig.from_env()
    out: list[Prepared | None] = [None] * len(items)
    decoded: list[tuple[int, np.ndarray]] = []
    for i, data in enumerate(items):
        try:
            decoded.append((i, decode(data, config.image_limits)))
        except ImageError as exc:
            out[i] = Prepared(None, reason=str(exc))
    rgbs = [rgb for _, rgb in decoded]
    found: list[list[Face] | None] = [None] * len(rgbs) if mode == FaceMode.CROPPED else \
        list((detector or _process_detector(config)).detect_many(rgbs))
    for (i, rgb), faces in zip(decoded, found):
        out[i] = pick(rgb, faces, keep_jpeg=keep_jpeg, at=boxes[i] if boxes else None)
    return [p for p in out if p is not None]   # every slot was filled above


def every_face_many(items: list[bytes], mode: FaceMode, *, config: EmbedderConfig | None = None,
                    detector: Detector | None = None, thumb_side: int = 0) -> list[list[Prepared]]:
    """Every face of each image (largest first; CROPPED: the image), for clustering. An image
    that cannot be decoded or holds no face gives one rejected Prepared with the reason.
    thumb_side > 0: crop_jpeg is a thumbnail of the crop, at most that many pixels a side."""
    config = config or _config or EmbedderConfig.from_env()
    out: list[list[Prepared]] = [[] for _ in items]
    decoded: list[tuple[int, np.ndarray]] = []
    for i, data in enumerate(items):
        try:
            decoded.append((i, decode(data, config.image_limits)))
        except ImageError as exc:
            out[i] = [Prepared(None, reason=str(exc))]
    rgbs = [rgb for _, rgb in decoded]
    found = [[whole_image_face(rgb)] for rgb in rgbs] if mode == FaceMode.CROPPED else \
        (detector or _process_detector(config)).detect_many(rgbs)
    for (i, rgb), faces in zip(decoded, found):
        out[i] = [Prepared(np.ascontiguousarray(f.crop), (f.box.x, f.box.y, f.box.width, f.box.height), f.score,
                           len(faces), crop_jpeg=_thumbnail(f.crop, thumb_side) if thumb_side else None)
                  for f in faces] or [Prepared(None, reason=NO_FACE)]
    return out


def _thumbnail(crop: np.ndarray, side: int) -> bytes:
    scale = side / max(crop.shape[:2])
    if scale < 1:
        crop = cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))),
                          interpolation=cv2.INTER_AREA)
    return encode_jpeg(np.ascontiguousarray(crop), quality=85)
