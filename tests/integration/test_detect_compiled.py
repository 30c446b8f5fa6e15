"""The compiled, batched MTCNN against the mtcnn package run eagerly (docs/detection.md)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facesearch.embedder import FaceDetector, decode
from facesearch.embedder.detect import CROP_MAX_SIDE, crop_with_margin

from ..conftest import AVENGERS

TOL = 1e-4


@pytest.fixture(scope="module")
def reference():
    from mtcnn import MTCNN

    return MTCNN()


@pytest.fixture(scope="module")
def pipeline():
    from facesearch.embedder.mtcnn_batched import MTCNNPipeline

    return MTCNNPipeline(compiled=True)


@pytest.fixture(scope="module")
def detector():
    return FaceDetector()


def photos(samples, split):
    return sorted((samples / split).glob("*/*.jpg"))


def assert_same_rows(ours: np.ndarray, eager: np.ndarray, what) -> None:
    """Rows [id, x1, y1, x2, y2, score, landmarks...]: the same faces, boxes equal once rounded.

    Compared whenever either side finds a face. With none on both sides only the row counts are
    compared: an empty result's width differs (16 columns here, 6 in the package), and whether a
    face near the threshold is found at all depends on the CPU and library build.
    """
    assert len(ours) == len(eager), what
    if len(ours) == 0:
        return
    assert ours.shape == eager.shape, what
    np.testing.assert_array_equal(np.round(ours[:, 1:5]), np.round(eager[:, 1:5]), err_msg=str(what))
    np.testing.assert_allclose(ours[:, 1:], eager[:, 1:], atol=TOL, rtol=0, err_msg=str(what))


@pytest.mark.parametrize("split", ["train", "val"])
def test_compiled_matches_eager_mtcnn_on_every_sample_photo(samples, reference, pipeline, split):
    paths = photos(samples, split)
    assert paths
    found = 0
    for path in paths:
        rgb = decode(path.read_bytes())
        eager = reference.detect_faces(rgb, output_type="numpy", box_format="xyxy")
        (ours,) = pipeline.detect([rgb])
        assert_same_rows(ours, eager, path)
        found += len(ours) > 0
    assert found >= 0.9 * len(paths)


def test_compiled_matches_eager_mtcnn_on_avengers_crops(reference, pipeline):
    if not AVENGERS.is_dir():
        pytest.skip(f"the seed's Avengers data is not at {AVENGERS} (set FACESEARCH_SHARED to the shared/ folder)")
    paths = [p for person in sorted(d for d in AVENGERS.iterdir() if d.is_dir())
             for p in sorted(person.glob("*.png"))[:2]]
    assert paths
    for path in paths:
        rgb = decode(path.read_bytes())
        eager = reference.detect_faces(rgb, output_type="numpy", box_format="xyxy")
        (ours,) = pipeline.detect([rgb])
        assert_same_rows(ours, eager, path)


def test_no_retrace_over_photos_of_different_sizes(samples, detector):
    nets = detector.networks
    paths = photos(samples, "val")
    detector.detect(decode(paths[0].read_bytes()))  # traced here at the latest
    before = nets.tracing_counts()
    assert before == {"levels": 1, "pnet": 1, "rnet": 1, "onet": 1}
    rng = np.random.default_rng(0)
    shapes = set()
    for i in range(50):
        rgb = decode(paths[i % len(paths)].read_bytes())
        h, w = (int(v) for v in rng.integers(120, 480, size=2))
        shapes.add((h, w))
        detector.detect(cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA))
    detector.detect_many([decode(p.read_bytes()) for p in paths[:6]])
    assert len(shapes) >= 45
    assert nets.tracing_counts() == before


def test_batched_finds_the_same_faces_as_one_by_one(samples, detector, pipeline):
    val = [decode(p.read_bytes()) for p in photos(samples, "val")]
    sizes = {v.shape for v in val}
    assert len(sizes) >= 3  # the val photos come in several sizes already
    two_faces = np.full((320, 560, 3), 255, np.uint8)
    two_faces[:val[0].shape[0], :val[0].shape[1]] = val[0]
    two_faces[:val[3].shape[0] // 2, 300:300 + val[3].shape[1] // 2] = val[3][::2, ::2]
    mixed = val + [two_faces, np.full((200, 180, 3), 128, np.uint8),   # and one without a face
                        cv2.resize(val[5], (410, 390)), val[0].copy()]
    batched = detector.detect_many(mixed)
    assert len(batched) == len(mixed)
    assert sum(len(f) for f in batched) >= len(mixed) - 1
    assert batched[-3] == []
    for i, (rgb, rows) in enumerate(zip(mixed, pipeline.detect(mixed))):
        (alone,) = pipeline.detect([rgb])
        assert_same_rows(rows, alone, i)
    for i, (rgb, faces) in enumerate(zip(mixed, batched)):
        alone = detector.detect(rgb)
        assert [f.box for f in faces] == [f.box for f in alone], i
        np.testing.assert_allclose([f.score for f in faces], [f.score for f in alone], atol=TOL, rtol=0)
        for a, b in zip(faces, alone):
            np.testing.assert_allclose(np.array(list(a.landmarks.values())), np.array(list(b.landmarks.values())),
                                       atol=TOL, rtol=0)
            np.testing.assert_array_equal(a.crop, b.crop)


def test_large_photos_are_downscaled_and_boxes_mapped_back(samples, detector):
    rgb = decode(photos(samples, "val")[0].read_bytes())
    (small,) = detector.detect(rgb)[:1]
    factor = 8  # e.g. 300 px -> 2400 px, over the 1600 px max_side
    big = cv2.resize(rgb, (rgb.shape[1] * factor, rgb.shape[0] * factor), interpolation=cv2.INTER_CUBIC)
    assert max(big.shape[:2]) > detector.max_side
    (face,) = detector.detect(big)[:1]
    b, s = face.box, small.box
    # the box is in full-resolution pixels: the small photo's box times the factor, within a few pixels
    # of the downscaled photo (1600 / 2400 of the full size)
    tol = 0.06 * s.width * factor
    assert abs(b.x - s.x * factor) <= tol and abs(b.y - s.y * factor) <= tol
    assert abs(b.width - s.width * factor) <= tol and abs(b.height - s.height * factor) <= tol
    # and the crop is cut from the full-resolution photo, then held at CROP_MAX_SIDE (detect.crop_with_margin)
    np.testing.assert_array_equal(face.crop, crop_with_margin(big, b, detector.margin))
    assert max(face.crop.shape[:2]) == CROP_MAX_SIDE < b.height
    assert b.x + b.width <= big.shape[1] and b.y + b.height <= big.shape[0]
    eye = np.array(face.landmarks["left_eye"])
    np.testing.assert_allclose(eye, np.array(small.landmarks["left_eye"]) * factor, atol=tol)


def test_pyramid_skips_levels_smaller_than_the_pnet_window():
    from mtcnn.utils.images import build_scale_pyramid

    from facesearch.embedder.mtcnn_batched import PNET_CELL, pyramid

    package = build_scale_pyramid(250, 250, min_face_size=20, scale_factor=0.709)
    np.testing.assert_allclose(pyramid(250, 250, 20, 0.709), package)  # the default loses nothing
    big_faces = pyramid(250, 250, 80, 0.709)
    assert len(big_faces) < len(build_scale_pyramid(250, 250, min_face_size=80, scale_factor=0.709))
    assert (250 * big_faces >= PNET_CELL).all()
    assert len(pyramid(250, 250, 20, 0.5)) < len(pyramid(250, 250, 20, 0.709)) < len(pyramid(250, 250, 20, 0.9))


def test_larger_min_face_size_skips_small_faces_only(samples):
    rgb = decode(photos(samples, "val")[0].read_bytes())
    default = FaceDetector().detect(rgb)
    face = default[0].box
    (again, *_) = FaceDetector(min_face_size=max(4, face.width // 2)).detect(rgb)  # another pyramid, same face
    assert abs(again.box.x - face.x) <= 0.1 * face.width and abs(again.box.width - face.width) <= 0.1 * face.width
    assert FaceDetector(min_face_size=min(4096, face.width * 3)).detect(rgb) == []
