"""Embedder settings, each with a FACESEARCH_* environment variable."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from facesearch import settings

from .images import DEFAULT_MAX_PIXELS, DEFAULT_MIN_SIDE, ImageLimits
from .mtcnn_batched import DEFAULT_SCALE_FACTOR, MIN_FACE_SIZE_RANGE, SCALE_FACTOR_RANGE

DEFAULT_MODEL = "facenet-128"


@dataclass(frozen=True)
class EmbedderConfig:
    model: str = DEFAULT_MODEL                  # FACESEARCH_MODEL
    cache_dir: Path = field(default_factory=settings.cache_dir)  # FACESEARCH_CACHE_DIR
    max_pixels: int = DEFAULT_MAX_PIXELS        # FACESEARCH_MAX_PIXELS
    min_image_side: int = DEFAULT_MIN_SIDE      # FACESEARCH_MIN_IMAGE_SIDE
    min_face_score: float = 0.8                 # FACESEARCH_MIN_FACE_SCORE (MTCNN ONet default)
    min_face_size: int = 20                     # FACESEARCH_MIN_FACE_SIZE (pixels, 4..4096; docs/detection.md)
    crop_margin: float = 0.1                    # FACESEARCH_CROP_MARGIN (share of box size, per side)
    detect_max_side: int = 1600                 # FACESEARCH_DETECT_MAX_SIDE (bigger photos are downscaled for MTCNN)
    detect_scale_factor: float = DEFAULT_SCALE_FACTOR  # FACESEARCH_DETECT_SCALE_FACTOR (0.5..0.9; docs/detection.md)
    max_batch: int = 64                         # FACESEARCH_MAX_BATCH
    download_timeout: float = 15.0              # FACESEARCH_DOWNLOAD_TIMEOUT (seconds per socket operation)

    @classmethod
    def from_env(cls, **overrides) -> "EmbedderConfig":
        values = dict(
            model=settings.env_str("model", DEFAULT_MODEL),
            cache_dir=settings.cache_dir(),
            max_pixels=settings.env_int("max_pixels", DEFAULT_MAX_PIXELS, minimum=1),
            min_image_side=settings.env_int("min_image_side", DEFAULT_MIN_SIDE, minimum=1),
            min_face_score=settings.env_float("min_face_score", 0.8, minimum=0.0, maximum=1.0),
            min_face_size=settings.env_int("min_face_size", 20, minimum=MIN_FACE_SIZE_RANGE[0],
                                           maximum=MIN_FACE_SIZE_RANGE[1]),
            crop_margin=settings.env_float("crop_margin", 0.1, minimum=0.0, maximum=1.0),
            detect_max_side=settings.env_int("detect_max_side", 1600, minimum=64),
            detect_scale_factor=settings.env_float("detect_scale_factor", DEFAULT_SCALE_FACTOR,
                                                   minimum=SCALE_FACTOR_RANGE[0], maximum=SCALE_FACTOR_RANGE[1]),
            max_batch=settings.env_int("max_batch", 64, minimum=1),
            download_timeout=settings.env_float("download_timeout", 15.0, minimum=0.1),
        )
        values.update(overrides)
        return cls(**values)

    @property
    def image_limits(self) -> ImageLimits:
        return ImageLimits(max_pixels=self.max_pixels, min_side=self.min_image_side)
