"""Embedder settings: one field per option, each a FACESEARCH_* variable (facesearch.settings)."""

from __future__ import annotations

from typing import Any, Literal

from facesearch.settings import Settings, UserPath, default_cache_dir, setting

from .images import DEFAULT_MAX_PIXELS, DEFAULT_MIN_SIDE, ImageLimits
from .mtcnn_batched import DEFAULT_SCALE_FACTOR, MIN_FACE_SIZE_RANGE, SCALE_FACTOR_RANGE

DEFAULT_MODEL = "facenet-128"


def max_batch_setting() -> Any:
    """FACESEARCH_MAX_BATCH has one meaning wherever it is read (the server's micro-batcher too)."""
    return setting(64, "most faces embedded in one model call; larger batches are split (any size up to it "
                       "runs as it is: the model is traced once)",
                   ge=1)


class EmbedderConfig(Settings):
    """The model, image limits and face detection."""

    model: str = setting(DEFAULT_MODEL, "model spec: facenet-128, facenet-128+sface (fused, 256-d; "
                                          "docs/models.md), keras-facenet:KEY or a trainer export folder")
    cache_dir: UserPath = setting(default_factory=default_cache_dir, shown="~/.cache/facesearch",
                                  description="weights and sample gallery cache ($XDG_CACHE_HOME/facesearch "
                                              "when that is set)")
    max_pixels: int = setting(DEFAULT_MAX_PIXELS, "largest image accepted, in pixels (checked on the header)",
                              ge=1)
    min_image_side: int = setting(DEFAULT_MIN_SIDE, "smallest image side accepted, in pixels", ge=1)
    detector: Literal["mtcnn", "yunet"] = setting("mtcnn", "face detector: mtcnn (compiled and batched) or yunet "
                                                  "(OpenCV Zoo's, 6-7x faster; docs/detection.md)")
    min_face_score: float = setting(0.8, "MTCNN confidence needed to report a face (MTCNN's own default)",
                                    ge=0.0, le=1.0)
    min_face_size: int = setting(20, "smallest face looked for, in pixels; larger makes MTCNN faster "
                                     "(docs/detection.md)",
                                 ge=MIN_FACE_SIZE_RANGE[0], le=MIN_FACE_SIZE_RANGE[1])
    crop_margin: float = setting(0.1, "margin added on each side of a face box, as a share of its size",
                                 ge=0.0, le=1.0)
    detect_max_side: int = setting(1600, "photos larger than this are downscaled for MTCNN", ge=64)
    detect_scale_factor: float = setting(DEFAULT_SCALE_FACTOR, "MTCNN pyramid step between scales; smaller is "
                                         "faster and misses more faces (docs/detection.md)",
                                         ge=SCALE_FACTOR_RANGE[0], le=SCALE_FACTOR_RANGE[1])
    yunet_min_score: float = setting(0.6, "YuNet score needed to report a face", ge=0.0, le=1.0)
    yunet_max_side: int = setting(640, "photos larger than this are downscaled for YuNet (its anchors cover "
                                       "faces up to about 300 px)", ge=64)
    detect_threads: int = setting(2, "YuNet's worker threads per detector (OpenCV releases the GIL)", ge=1)
    max_batch: int = max_batch_setting()
    download_timeout: float = setting(15.0, "seconds per socket operation when downloading weights", ge=0.1)

    @property
    def image_limits(self) -> ImageLimits:
        return ImageLimits(max_pixels=self.max_pixels, min_side=self.min_image_side)
