"""MTCNN's three networks as compiled TensorFlow functions, over batches of images.

The `mtcnn` package (1.0) runs PNet, RNet and ONet eagerly, one Keras call per
pyramid level and stage. Here the same networks, with the package's weights,
run as `tf.function`s whose input signatures leave the batch and (for PNet) the
image size open, so they are traced once and never again. The post-processing
between the stages is the package's own functions (`mtcnn.utils`), called in
the order its stages call them, so the boxes are the package's boxes.

Batching (`MTCNNPipeline.detect`):
- PNet runs once per pyramid level for all images of the same size;
- RNet and ONet each run once, over the candidates of all the images.

See docs/detection.md for the settings and what each stage costs.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

# The package's thresholds (StagePNet/StageRNet/StageONet defaults).
THRESHOLD_PNET, NMS_PNET_SCALE, NMS_PNET_ALL = 0.6, 0.5, 0.7
THRESHOLD_RNET, NMS_RNET = 0.7, 0.7
THRESHOLD_ONET, NMS_ONET = 0.8, 0.7
PNET_CELL = 12               # PNet's window: a pyramid level smaller than this cannot hold a face
DEFAULT_SCALE_FACTOR = 0.709  # each pyramid level has half the area of the one before
SCALE_FACTOR_RANGE = (0.5, 0.9)  # below, faces between two levels are missed; above, the pyramid grows long
MIN_FACE_SIZE_RANGE = (4, 4096)  # pixels; under 12 the image is upscaled for PNet, (12 / size)^2 the cost
PNET_PIXEL_BUDGET = 8_000_000  # pixels per PNet call (a batch of same-size images is split above this)

# Columns of a detection row, as the package lays them out.
ID, X1, Y1, X2, Y2, SCORE = range(6)
LANDMARKS = {"left_eye": (6, 11), "right_eye": (7, 12), "nose": (8, 13), "mouth_left": (9, 14),
             "mouth_right": (10, 15)}

_networks: dict[bool, "Networks"] = {}
_networks_lock = threading.Lock()


class Networks:
    """PNet (with its pyramid resize), RNet and ONet: compiled, or the plain Keras models."""

    def __init__(self, compiled: bool = True):
        import tensorflow as tf
        from mtcnn.stages import StageONet, StagePNet, StageRNet

        pnet, rnet, onet = StagePNet().model, StageRNet().model, StageONet().model
        self.compiled = compiled

        def pnet_at(images, size):
            # the package's scale_images: area resize of the normalised batch to `size` (h, w)
            return pnet(tf.image.resize(images, size, method=tf.image.ResizeMethod.AREA))

        if compiled:
            self.pnet = tf.function(pnet_at, input_signature=[
                tf.TensorSpec([None, None, None, 3], tf.float32), tf.TensorSpec([2], tf.int32)])
            self.rnet = tf.function(lambda x: rnet(x), input_signature=[tf.TensorSpec([None, 24, 24, 3], tf.float32)])
            self.onet = tf.function(lambda x: onet(x), input_signature=[tf.TensorSpec([None, 48, 48, 3], tf.float32)])
        else:
            self.pnet, self.rnet, self.onet = pnet_at, rnet, onet

    def warm(self) -> None:
        """Trace the three networks now, on blank inputs (their signatures take any batch and size)."""
        import tensorflow as tf

        self.pnet(tf.zeros([1, PNET_CELL, PNET_CELL, 3]), tf.constant([PNET_CELL, PNET_CELL], tf.int32))
        self.rnet(tf.zeros([1, 24, 24, 3]))
        self.onet(tf.zeros([1, 48, 48, 3]))

    def tracing_counts(self) -> dict[str, int]:
        """How often each compiled network has been traced (stays at 1 when nothing retraces)."""
        if not self.compiled:
            return {}
        return {name: getattr(self, name).experimental_get_tracing_count() for name in ("pnet", "rnet", "onet")}


def networks(compiled: bool = True) -> Networks:
    """The process's networks, loaded once and shared by every detector (the functions are thread-safe)."""
    with _networks_lock:
        if compiled not in _networks:
            _networks[compiled] = Networks(compiled)
        return _networks[compiled]


def pyramid(height: int, width: int, min_face_size: int, scale_factor: float) -> np.ndarray:
    """The package's scales, less the levels too small to hold PNet's 12-pixel window.

    The package counts its levels as if the first were 1.0, so with a larger
    min_face_size its last levels fall under 12 pixels: work with no result.
    """
    from mtcnn.utils.images import build_scale_pyramid

    scales = build_scale_pyramid(width, height, min_face_size=min_face_size, scale_factor=scale_factor)
    return scales[min(height, width) * scales >= PNET_CELL]


def _per_image(boxes: np.ndarray, fn, **kwargs) -> np.ndarray:
    """fn on each image's rows (in their order), as it runs when that image is detected alone."""
    return np.concatenate([fn(boxes[boxes[:, ID] == i], **kwargs) for i in np.unique(boxes[:, ID])], axis=0)


class MTCNNPipeline:
    """Detects faces in a batch of RGB images; returns the package's (n, 16) rows per image."""

    def __init__(self, compiled: bool = True):
        self.nets = networks(compiled)
        # The eager Keras models are not safe to call from several threads at once.
        self._lock = threading.Lock() if not compiled else None

    def detect(self, images: Sequence[np.ndarray], min_face_size: int | Sequence[int] = 20,
               scale_factor: float = DEFAULT_SCALE_FACTOR, timings: dict | None = None) -> list[np.ndarray]:
        """For each image, its faces as rows [id, x1, y1, x2, y2, score, 5 landmark x, 5 landmark y].

        `min_face_size` may be given per image. Images of the same shape (and
        min_face_size) share PNet calls; RNet and ONet run once for all images.
        `timings`, if given, accumulates seconds under "pnet", "rnet", "onet".
        """
        if self._lock is None:
            return self._detect(images, min_face_size, scale_factor, timings)
        with self._lock:
            return self._detect(images, min_face_size, scale_factor, timings)

    def _detect(self, images, min_face_size, scale_factor, timings) -> list[np.ndarray]:
        import tensorflow as tf
        from mtcnn.utils.bboxes import (adjust_bboxes, generate_bounding_box, limit_bboxes, pick_matches,
                                        replace_confidence, resize_to_square, smart_nms_from_bboxes,
                                        upscale_bboxes)
        from mtcnn.utils.images import extract_patches
        from mtcnn.utils.landmarks import adjust_landmarks

        n = len(images)
        empty = [np.empty((0, 16)) for _ in range(n)]
        if n == 0:
            return empty
        sizes = [min_face_size] * n if np.isscalar(min_face_size) else list(min_face_size)
        timings = timings if timings is not None else {}

        # One normalised float32 batch per (shape, min_face_size); ids in the batch are local.
        by_key: dict[tuple, list[int]] = defaultdict(list)
        for i, rgb in enumerate(images):
            by_key[(rgb.shape, int(sizes[i]))].append(i)
        groups = []  # (global ids, normalised batch, min_face_size)
        for (shape, size), ids in by_key.items():
            per_call = max(1, PNET_PIXEL_BUDGET // (shape[0] * shape[1]))
            for start in range(0, len(ids), per_call):
                chunk = ids[start:start + per_call]
                batch = np.stack([images[i] for i in chunk]).astype(np.float32)
                groups.append((np.asarray(chunk), tf.constant((batch - 127.5) / 128), size))

        # PNet: one call per pyramid level and group; the package's StagePNet post-processing per image
        # (its sorts are not stable: over a whole batch, equal scores would come out in another order).
        t = time.perf_counter()
        found = []
        for ids, batch, size in groups:
            h, w = batch.shape[1:3]
            per_scale = [[] for _ in ids]
            for scale in pyramid(h, w, size, scale_factor):
                new_size = (np.asarray([h, w]) * scale).astype(np.int32)  # truncates, like tf.image.resize
                reg, cls = self.nets.pnet(batch, new_size)
                for j in range(len(ids)):
                    boxes = generate_bounding_box(reg[j:j + 1], cls[j:j + 1], THRESHOLD_PNET)
                    boxes = upscale_bboxes(boxes, np.asarray([scale]))
                    per_scale[j].append(smart_nms_from_bboxes(boxes, threshold=NMS_PNET_SCALE, method="union",
                                                              initial_sort=False))
            for j, image_id in enumerate(ids):
                if not per_scale[j]:
                    continue
                boxes = smart_nms_from_bboxes(np.concatenate(per_scale[j], axis=0), threshold=NMS_PNET_ALL,
                                              method="union", initial_sort=True)
                boxes = resize_to_square(boxes)
                boxes[:, ID] = image_id
                found.append(boxes)
        timings["pnet"] = timings.get("pnet", 0.0) + time.perf_counter() - t
        boxes = np.concatenate(found, axis=0) if found else np.empty((0, 6))
        if len(boxes) == 0:
            return empty

        # RNet over every image's candidates at once (the package's StageRNet).
        t = time.perf_counter()
        boxes, patches = self._patches(groups, boxes, (24, 24), extract_patches)
        offsets, scores = self.nets.rnet(patches)
        boxes = replace_confidence(boxes, scores)
        boxes = adjust_bboxes(boxes, offsets)
        boxes = pick_matches(boxes, score_threshold=THRESHOLD_RNET)
        if len(boxes):
            boxes = _per_image(boxes, smart_nms_from_bboxes, threshold=NMS_RNET, method="union", initial_sort=True)
            boxes = resize_to_square(boxes)
        timings["rnet"] = timings.get("rnet", 0.0) + time.perf_counter() - t
        if len(boxes) == 0:
            return empty

        # ONet, likewise (the package's StageONet), then its fit_to_image post-processing.
        t = time.perf_counter()
        boxes, patches = self._patches(groups, boxes, (48, 48), extract_patches)
        offsets, landmarks, scores = self.nets.onet(patches)
        landmarks = adjust_landmarks(landmarks, boxes)
        boxes = replace_confidence(boxes, scores)
        boxes = adjust_bboxes(boxes, offsets)
        boxes = np.concatenate([boxes, landmarks], axis=-1)
        boxes = pick_matches(boxes, scores_column=SCORE, score_threshold=THRESHOLD_ONET)
        if len(boxes):
            boxes = _per_image(boxes, smart_nms_from_bboxes, threshold=NMS_ONET, method="min", initial_sort=True)
            shapes = np.asarray([rgb.shape for rgb in images])
            boxes = limit_bboxes(boxes, images_shapes=shapes, limit_landmarks=False)
        timings["onet"] = timings.get("onet", 0.0) + time.perf_counter() - t
        return [boxes[boxes[:, ID] == i] for i in range(n)]

    @staticmethod
    def _patches(groups, boxes: np.ndarray, size: tuple[int, int], extract_patches):
        """(boxes reordered by group, their patches resized to `size`), cut from each group's batch."""
        import tensorflow as tf

        rows, patches = [], []
        for ids, batch, _ in groups:
            mask = np.isin(boxes[:, ID], ids)
            if not mask.any():
                continue
            mine = boxes[mask]
            local = mine.copy()
            local[:, ID] = np.searchsorted(ids, mine[:, ID])  # ids are ascending within a group
            rows.append(mine)
            patches.append(extract_patches(batch, local, expected_size=size))
        return np.concatenate(rows, axis=0), tf.concat(patches, axis=0)
