"""The detector registry: YuNet against MTCNN on the same photos (docs/detection.md#yunet)."""

from __future__ import annotations

import numpy as np
import pytest

from facesearch.embedder import EmbedderConfig, decode, primary_face
from facesearch.embedder.detectors import create_detector
from facesearch.embedder.distances import distance
from facesearch.embedder.yunet import POINTS

# FaceNet distances (service scale, cutoff 3.5) between the YuNet and the MTCNN crop of one face:
# measured median 0.19, 95th percentile 0.53 over the 5-celebrity photos (docs/detection.md#yunet).
SAME_FACE_MEDIAN, SAME_FACE_P95 = 0.35, 0.9


@pytest.fixture(scope="module")
def yunet(weights_cache):
    return create_detector(EmbedderConfig(), weights_cache, name="yunet")


@pytest.fixture(scope="module")
def photos(samples):
    paths = sorted(samples.glob("*/*/*.jpg"))
    return [decode(p.read_bytes()) for p in paths]


def iou(a, b) -> float:
    x0, y0 = max(a.x, b.x), max(a.y, b.y)
    x1, y1 = min(a.x + a.width, b.x + b.width), min(a.y + a.height, b.y + b.height)
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    return inter / (a.area + b.area - inter)


def test_yunet_finds_a_face_with_five_landmarks_in_every_sample_photo(yunet, photos):
    found = yunet.detect_many(photos)
    assert len(found) == len(photos) == 118
    assert all(found), [i for i, f in enumerate(found) if not f]
    for rgb, faces in zip(photos, found):
        for face in faces:
            assert face.score >= 0.6 and set(face.landmarks) == set(POINTS)
            b = face.box
            assert 0 <= b.x and b.x + b.width <= rgb.shape[1] and 0 <= b.y and b.y + b.height <= rgb.shape[0]
            left, right = face.landmarks["left_eye"], face.landmarks["right_eye"]
            assert b.x - b.width / 2 < left[0] < right[0] < b.x + 1.5 * b.width   # image-left eye first, as MTCNN
            assert b.y - b.height / 2 < left[1] < b.y + b.height                     # names them
    # the worker threads change nothing: each photo gets what it gets alone
    assert [[f.box for f in faces] for faces in found] == [[f.box for f in yunet.detect(p)] for p in photos[:10]] \
        + [[f.box for f in faces] for faces in found[10:]]


def test_yunet_finds_the_face_in_every_avengers_crop(yunet, avengers):
    paths = sorted(p for p in avengers.glob("*/*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    found = yunet.detect_many([decode(p.read_bytes()) for p in paths])
    assert [p.name for p, f in zip(paths, found) if not f] == []


def test_a_large_photo_is_downscaled_and_mapped_back(yunet, photos):
    import cv2

    rgb = photos[0]
    big = cv2.resize(rgb, (rgb.shape[1] * 5, rgb.shape[0] * 5), interpolation=cv2.INTER_CUBIC)
    (small_face, *_), (big_face, *_) = yunet.detect(rgb), yunet.detect(big)
    scaled = type(small_face.box)(*(5 * v for v in (small_face.box.x, small_face.box.y, small_face.box.width,
                                                    small_face.box.height)))
    assert iou(scaled, big_face.box) > 0.8
    assert max(big_face.crop.shape[:2]) <= 480


def test_yunet_and_mtcnn_crops_of_one_face_embed_close(embedder, photos, yunet):
    mtcnn = create_detector(embedder.config, name="mtcnn")
    pairs = []
    for rgb, ys, ms in zip(photos, yunet.detect_many(photos), mtcnn.detect_many(photos)):
        y, m = primary_face(ys, rgb.shape), primary_face(ms, rgb.shape)
        if y is not None and m is not None and iou(y.box, m.box) > 0.5:
            pairs.append((y.crop, m.crop))
    assert len(pairs) >= 110
    ey, em = embedder.embed_crops([p[0] for p in pairs]), embedder.embed_crops([p[1] for p in pairs])
    d = np.array([distance(a, b) for a, b in zip(ey, em)])
    assert np.median(d) < SAME_FACE_MEDIAN and np.percentile(d, 95) < SAME_FACE_P95, (np.median(d), d.max())


def test_the_crop_pass_follows_the_configured_detector(samples, weights_cache):
    from facesearch.embedder import FaceMode, prepare

    paths = sorted((samples / "val").glob("*/*.jpg"))
    config = EmbedderConfig(detector="yunet", cache_dir=weights_cache.root)
    prepared = prepare.prepare_many([p.read_bytes() for p in paths], FaceMode.DETECT, config=config)
    assert all(p.crop is not None for p in prepared) and prepare._process_detector(config).name == "yunet"
    assert prepare._process_detector(EmbedderConfig(cache_dir=weights_cache.root)).name == "mtcnn"
