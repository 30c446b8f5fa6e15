"""The detector registry: FACESEARCH_DETECTOR names one, `create_detector` builds it.

One module per detector (detect.py: MTCNN, yunet.py: YuNet); each gives every face with its box,
score, 5 landmarks and margin crop, largest first, and takes a batch of photos where it can
(docs/detection.md#choosing-the-detector).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from .detect import Face, FaceDetector
from .weights import WeightsCache
from .yunet import YuNetDetector

DETECTORS = ("mtcnn", "yunet")
DEFAULT_DETECTOR = "mtcnn"


class Detector(Protocol):
    name: str
    margin: float

    def detect(self, rgb: np.ndarray) -> list[Face]: ...

    def detect_many(self, images: list[np.ndarray], timings: dict[str, float] | None = None) -> list[list[Face]]: ...

    def warm(self) -> None: ...


def create_detector(config: Any, cache: WeightsCache | None = None, name: str | None = None) -> Detector:
    """The detector `name` [config.detector] with an EmbedderConfig's settings."""
    name = name or config.detector
    if name == "mtcnn":
        return FaceDetector.from_config(config)
    if name == "yunet":
        return YuNetDetector.from_config(config, cache)
    raise ValueError(f"unknown detector {name!r}: choose one of {', '.join(DETECTORS)}")
