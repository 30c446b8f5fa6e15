"""MTCNN's three networks as compiled TensorFlow functions, over batches of images.

The `mtcnn` package (1.0) runs PNet, RNet and ONet eagerly, one Keras call per
pyramid level and stage. Here the same networks, with the package's weights,
run as `tf.function`s whose input signatures leave the batch and (for PNet) the
image size open, so they are traced once and never again. The post-processing
between the stages is the package's own functions (`mtcnn.utils`), called in
the order its stages call them, so the boxes are the package's boxes.

Batching (`MTCNNPipeline.detect`):
- every pyramid level of every image is resized in one call, and the levels are
  packed side by side into one canvas (`pack_levels`) that PNet runs over once.
  PNet is fully convolutional, so each level's outputs are the ones it gets
  alone; the one place its layers see past a level's edge (max-pooling's SAME
  padding at an odd border) is masked;
- RNet and ONet each run once, over the candidates of all the images.

See docs/detection.md for the settings and what each stage costs.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# The package's thresholds (StagePNet/StageRNet/StageONet defaults).
THRESHOLD_PNET, NMS_PNET_SCALE, NMS_PNET_ALL = 0.6, 0.5, 0.7
THRESHOLD_RNET, NMS_RNET = 0.7, 0.7
THRESHOLD_ONET, NMS_ONET = 0.8, 0.7
PNET_CELL = 12               # PNet's window: a pyramid level smaller than this cannot hold a face
DEFAULT_SCALE_FACTOR = 0.709  # each pyramid level has half the area of the one before
SCALE_FACTOR_RANGE: tuple[float, float | None] = (0.5, 0.9)  # below, faces between two levels are missed; above, the pyramid grows long
MIN_FACE_SIZE_RANGE: tuple[float, float | None] = (4, 4096)  # pixels; under 12 the image is upscaled for PNet, (12 / size)^2 the cost
PNET_PIXEL_BUDGET = 8_000_000  # pixels per PNet canvas (more levels than fit go on another canvas)
_MASKED = -1e9                # added where SAME max-pooling would pad: far below any PReLU output

# Columns of a detection row, as the package lays them out.
ID, X1, Y1, X2, Y2, SCORE = range(6)
LANDMARKS = {"left_eye": (6, 11), "right_eye": (7, 12), "nose": (8, 13), "mouth_left": (9, 14),
             "mouth_right": (10, 15)}

_networks: dict[bool, "Networks"] = {}
_networks_lock = threading.Lock()


class Networks:
    """The pyramid resize, PNet over a packed canvas, RNet and ONet: compiled, or run eagerly."""

    # TensorFlow functions (tf.function) or the eager Keras models: untyped
    levels: Any
    pnet: Any
    rnet: Any
    onet: Any

    def __init__(self, compiled: bool = True) -> None:
        import tensorflow as tf
        from mtcnn.stages import StageONet, StagePNet, StageRNet

        pnet, rnet, onet = StagePNet().model, StageRNet().model, StageONet().model
        self.compiled = compiled

        def levels(flat: Any, table: Any) -> Any:
            # flat: the RGB uint8 images, one after another. Each row of table (offset, height, width,
            # new height, new width) is one level: the package's normalisation, then its scale_images
            # (an area resize). Out: the levels, flat.
            flat = (tf.cast(flat, tf.float32) - 127.5) / 128
            out = tf.TensorArray(tf.float32, size=tf.shape(table)[0], infer_shape=False,
                                 element_shape=tf.TensorShape([None]))
            for i in tf.range(tf.shape(table)[0]):
                offset, h, w, new_h, new_w = tf.unstack(table[i])
                image = tf.reshape(flat[offset:offset + h * w * 3], tf.stack([1, h, w, 3]))
                size = tf.cast(tf.stack([new_h, new_w]), tf.int32)
                level = tf.image.resize(image, size, method=tf.image.ResizeMethod.AREA)
                out = out.write(i, tf.reshape(level, [-1]))
            return out.concat()

        def pnet_canvas(canvas: Any, mask: Any) -> tuple[Any, Any]:
            # PNet's layers, with its SAME max-pool as VALID over conv1's output plus `mask`, which
            # holds _MASKED where a level's own pooling would have padded (pack_levels places
            # every level at even offsets, so the pooling windows line up with the level's own).
            x = pnet.prelu1(pnet.conv1(canvas)) + mask
            x = tf.nn.max_pool2d(x, ksize=2, strides=2, padding="VALID")
            x = pnet.prelu3(pnet.conv3(pnet.prelu2(pnet.conv2(x))))
            return pnet.conv4_1(x), pnet.conv4_2(x)

        if compiled:
            self.levels = tf.function(levels, input_signature=[
                tf.TensorSpec([None], tf.uint8), tf.TensorSpec([None, 5], tf.int64)])
            self.pnet = tf.function(pnet_canvas, input_signature=[
                tf.TensorSpec([1, None, None, 3], tf.float32), tf.TensorSpec([1, None, None, 1], tf.float32)])
            self.rnet = tf.function(lambda x: rnet(x), input_signature=[tf.TensorSpec([None, 24, 24, 3], tf.float32)])
            self.onet = tf.function(lambda x: onet(x), input_signature=[tf.TensorSpec([None, 48, 48, 3], tf.float32)])
        else:
            self.levels, self.pnet, self.rnet, self.onet = levels, pnet_canvas, rnet, onet

    def warm(self) -> None:
        """Trace the networks now, on blank inputs (their signatures take any batch and size)."""
        import tensorflow as tf

        side = PNET_CELL
        self.levels(tf.zeros([side * side * 3], tf.uint8), tf.constant([[0, side, side, side, side]], tf.int64))
        self.pnet(tf.zeros([1, side, side, 3]), tf.zeros([1, side - 2, side - 2, 1]))
        self.rnet(tf.zeros([1, 24, 24, 3]))
        self.onet(tf.zeros([1, 48, 48, 3]))

    def tracing_counts(self) -> dict[str, int]:
        """How often each compiled function has been traced (stays at 1 when nothing retraces)."""
        if not self.compiled:
            return {}
        return {name: getattr(self, name).experimental_get_tracing_count()
                for name in ("levels", "pnet", "rnet", "onet")}


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
    kept: np.ndarray = scales[min(height, width) * scales >= PNET_CELL]
    return kept


def even(v: int) -> int:
    """v, or v + 1 when odd."""
    return v + (v & 1)


@dataclass
class Canvas:
    height: int
    width: int
    places: list[tuple[int, int, int]]   # (level index, y, x): each level's top-left corner


def pack_levels(shapes: Sequence[tuple[int, int]], budget: int = PNET_PIXEL_BUDGET) -> list[Canvas]:
    """Shelf-pack levels of these (height, width) into canvases of about `budget` pixels.

    Levels go tallest first, left to right in rows ("shelves"), at even offsets (PNet's
    pooling has stride 2); canvas sides are even. A canvas is about as wide as it is tall,
    and never narrower than the widest level; a level that does not fit starts a new canvas.
    """
    if not shapes:
        return []
    area = sum(even(h) * even(w) for h, w in shapes)
    width = even(max(max(w for _, w in shapes), int(np.sqrt(min(area, budget) * 1.1))))
    max_height = max(max(h for h, _ in shapes), budget // width)
    canvases: list[Canvas] = []
    places: list[tuple[int, int, int]] = []
    x = y = shelf = 0
    for i in sorted(range(len(shapes)), key=lambda i: -shapes[i][0]):
        h, w = (even(v) for v in shapes[i])
        if x + w > width:                        # next shelf
            x, y, shelf = 0, y + shelf, 0
        if y + h > max_height and places:        # next canvas
            canvases.append(Canvas(y + shelf, width, places))
            x = y = shelf = 0
            places = []
        places.append((i, y, x))
        x, shelf = x + w, max(shelf, h)
    canvases.append(Canvas(y + shelf, width, places))
    return canvases


class _Array:
    """A numpy array where the package's generate_bounding_box expects a tensor (it calls .numpy())."""

    def __init__(self, array: np.ndarray) -> None:
        self._array = array

    def numpy(self) -> np.ndarray:
        return self._array


def _per_image(boxes: np.ndarray, fn: Callable[..., np.ndarray], **kwargs: Any) -> np.ndarray:
    """fn on each image's rows (in their order), as it runs when that image is detected alone."""
    return np.concatenate([fn(boxes[boxes[:, ID] == i], **kwargs) for i in np.unique(boxes[:, ID])], axis=0)


class MTCNNPipeline:
    """Detects faces in a batch of RGB images; returns the package's (n, 16) rows per image."""

    def __init__(self, compiled: bool = True) -> None:
        self.nets = networks(compiled)
        # The eager Keras models are not safe to call from several threads at once.
        self._lock = threading.Lock() if not compiled else None

    def detect(self, images: Sequence[np.ndarray], min_face_size: int | Sequence[int] = 20,
               scale_factor: float = DEFAULT_SCALE_FACTOR, timings: dict[str, float] | None = None) -> list[np.ndarray]:
        """For each image, its faces as rows [id, x1, y1, x2, y2, score, 5 landmark x, 5 landmark y].

        `min_face_size` may be given per image. PNet runs over all images' pyramid
        levels packed together; RNet and ONet run once for all images.
        `timings`, if given, accumulates seconds under "pnet", "rnet", "onet".
        """
        if self._lock is None:
            return self._detect(images, min_face_size, scale_factor, timings)
        with self._lock:
            return self._detect(images, min_face_size, scale_factor, timings)

    def _detect(self, images: Sequence[np.ndarray], min_face_size: int | Sequence[int], scale_factor: float,
                timings: dict[str, float] | None) -> list[np.ndarray]:
        import tensorflow as tf
        from mtcnn.utils.bboxes import (adjust_bboxes, limit_bboxes, pick_matches, replace_confidence,
                                        resize_to_square, smart_nms_from_bboxes)
        from mtcnn.utils.images import extract_patches
        from mtcnn.utils.landmarks import adjust_landmarks

        n = len(images)
        empty = [np.empty((0, 16)) for _ in range(n)]
        if n == 0:
            return empty
        sizes = [min_face_size] * n if isinstance(min_face_size, (int, np.integer)) else list(min_face_size)
        timings = timings if timings is not None else {}

        # One normalised batch per shape for cutting RNet's and ONet's patches; ids in the batch are local.
        by_shape: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, rgb in enumerate(images):
            by_shape[rgb.shape].append(i)
        groups = [(np.asarray(ids), tf.constant((np.stack([images[i] for i in ids]).astype(np.float32) - 127.5)
                                                / 128)) for ids in by_shape.values()]

        # PNet over every level of every image at once; the package's StagePNet post-processing per
        # image (its sorts are not stable: over a whole batch, equal scores would come out in another order).
        t = time.perf_counter()
        per_level = self._pnet(images, sizes, scale_factor)
        found = []
        for i in range(n):
            mine = [boxes for image, boxes in per_level if image == i]
            if not mine:
                continue
            boxes = smart_nms_from_bboxes(np.concatenate(mine, axis=0), threshold=NMS_PNET_ALL,
                                          method="union", initial_sort=True)
            boxes = resize_to_square(boxes)
            boxes[:, ID] = i
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

    def _pnet(self, images: Sequence[np.ndarray], sizes: Sequence[int],
              scale_factor: float) -> list[tuple[int, np.ndarray]]:
        """(image index, candidate boxes) for each pyramid level, levels in the package's order."""
        from mtcnn.utils.bboxes import generate_bounding_box, smart_nms_from_bboxes, upscale_bboxes

        levels = []  # (image index, scale, height, width)
        for i, rgb in enumerate(images):
            h, w = rgb.shape[:2]
            for scale in pyramid(h, w, int(sizes[i]), scale_factor):
                new_h, new_w = (np.asarray([h, w]) * scale).astype(np.int32)  # truncates, like scale_images
                levels.append((i, scale, int(new_h), int(new_w)))
        if not levels:
            return []
        starts = np.cumsum([0] + [rgb.size for rgb in images])
        table = np.array([(starts[i], *images[i].shape[:2], h, w) for i, _, h, w in levels], np.int64)
        flat = self.nets.levels(np.concatenate([np.asarray(rgb, np.uint8).ravel() for rgb in images]), table).numpy()
        ends = np.cumsum([h * w * 3 for _, _, h, w in levels])
        resized = [flat[e - h * w * 3:e].reshape(h, w, 3) for e, (_, _, h, w) in zip(ends, levels)]

        outputs: list[Any] = [None] * len(levels)
        for canvas in pack_levels([(h, w) for _, _, h, w in levels]):
            pixels = np.zeros((1, canvas.height, canvas.width, 3), np.float32)
            mask = np.zeros((1, canvas.height - 2, canvas.width - 2, 1), np.float32)
            for k, y, x in canvas.places:
                h, w = resized[k].shape[:2]
                pixels[0, y:y + h, x:x + w] = resized[k]
                if h % 2:   # SAME pooling pads a level of odd height (conv1 gives h - 2 rows) below
                    mask[0, y + h - 2, x:x + w] = _MASKED
                if w % 2:
                    mask[0, y:y + h, x + w - 2] = _MASKED
            reg, cls = (out.numpy() for out in self.nets.pnet(pixels, mask))
            for k, y, x in canvas.places:
                h, w = resized[k].shape[:2]
                rows, cols = slice(y // 2, y // 2 + (h - 1) // 2 - 4), slice(x // 2, x // 2 + (w - 1) // 2 - 4)
                outputs[k] = (reg[:, rows, cols], cls[:, rows, cols])

        per_level = []
        for (i, scale, _, _), (reg, cls) in zip(levels, outputs):
            boxes = generate_bounding_box(_Array(reg), _Array(cls), THRESHOLD_PNET)
            boxes = upscale_bboxes(boxes, np.asarray([scale]))
            per_level.append((i, smart_nms_from_bboxes(boxes, threshold=NMS_PNET_SCALE, method="union",
                                                       initial_sort=False)))
        return per_level

    @staticmethod
    def _patches(groups: list[tuple[np.ndarray, Any]], boxes: np.ndarray, size: tuple[int, int],
                 extract_patches: Callable[..., Any]) -> tuple[np.ndarray, Any]:
        """(boxes reordered by group, their patches resized to `size`), cut from each group's batch."""
        import tensorflow as tf

        rows, patches = [], []
        for ids, batch in groups:
            mask = np.isin(boxes[:, ID], ids)
            if not mask.any():
                continue
            mine = boxes[mask]
            local = mine.copy()
            local[:, ID] = np.searchsorted(ids, mine[:, ID])  # ids are ascending within a group
            rows.append(mine)
            patches.append(extract_patches(batch, local, expected_size=size))
        return np.concatenate(rows, axis=0), tf.concat(patches, axis=0)
