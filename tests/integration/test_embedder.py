"""Batched embedding and detection with the real model."""

import threading

import numpy as np
import pytest

from facesearch.embedder import Box, FaceMode, ImageError, decode

from tests.helpers import encode, sample_photo


@pytest.fixture(scope="module")
def crops(samples):
    return [decode(p.read_bytes()) for p in sorted(samples.glob("train/*/*.jpg"))[:7]]


def test_embeddings_are_unit_float32_and_deterministic(embedder, crops):
    a = embedder.embed_crops(crops)
    b = embedder.embed_crops(crops)
    assert a.shape == (7, 128) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(a, b)


def test_batch_size_does_not_change_results(embedder, crops):
    together = embedder.embed_crops(crops)
    alone = np.vstack([embedder.embed_crops([c]) for c in crops])
    np.testing.assert_allclose(together, alone, atol=2e-5)


def test_every_batch_size_runs_on_one_trace(embedder, crops):
    embedder.embed_crops(crops[:1])
    assert embedder._fn.experimental_get_tracing_count() == 1
    for n in range(2, 15):
        assert embedder.embed_crops((crops * 2)[:n]).shape == (n, 128)
    assert embedder._fn.experimental_get_tracing_count() == 1


def test_more_than_max_batch_is_chunked(embedder, crops):
    many = (crops * 10)[:70]  # 64 + 6
    out = embedder.embed_crops(many)
    assert out.shape == (70, 128)
    np.testing.assert_allclose(out[69], out[6], atol=2e-5)


def test_concurrent_callers_get_their_own_results(embedder, crops):
    expected = embedder.embed_crops(crops)
    results, errors = {}, []

    def work(i):
        try:
            for _ in range(3):
                results[i] = embedder.embed_crops([crops[i], crops[(i + 1) % 7]])
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i in range(6):
        np.testing.assert_allclose(results[i], expected[[i, (i + 1) % 7]], atol=2e-5)


def test_photo_detect_finds_a_face_inside_the_image(embedder, samples):
    data = sample_photo(samples)
    rgb = decode(data)
    faces = embedder.embed_image(data)
    assert len(faces) >= 1
    box = faces[0].face.box
    assert 0 <= box.x and box.x + box.width <= rgb.shape[1] and 0 <= box.y and box.y + box.height <= rgb.shape[0]
    assert faces[0].face.score >= embedder.config.min_face_score
    assert set(faces[0].face.landmarks) >= {"left_eye", "right_eye", "nose"}


def test_cropped_mode_skips_detection(embedder, samples):
    rgb = decode(sample_photo(samples))
    faces = embedder.embed_image(encode(rgb), FaceMode.CROPPED)
    assert len(faces) == 1
    assert faces[0].face.box == Box(0, 0, rgb.shape[1], rgb.shape[0])
    np.testing.assert_allclose(faces[0].embedding, embedder.embed_crops([rgb])[0], atol=1e-5)


def test_every_face_is_found_largest_first_and_max_faces_limits(embedder, samples):
    a = decode(sample_photo(samples, person="madonna"))
    small_b = a[::2, ::2]  # the same photo at half size: its face is smaller
    h = a.shape[0] + 20
    canvas = np.full((h, a.shape[1] + small_b.shape[1] + 40, 3), 255, np.uint8)
    canvas[: a.shape[0], : a.shape[1]] = a
    canvas[: small_b.shape[0], a.shape[1] + 40:] = small_b
    faces = embedder.embed_image(encode(canvas))
    assert len(faces) >= 2
    areas = [f.face.box.area for f in faces]
    assert areas == sorted(areas, reverse=True)
    assert faces[0].face.box.x < a.shape[1] <= faces[1].face.box.x  # the bigger one is the left photo
    assert len(embedder.embed_image(encode(canvas), max_faces=1)) == 1


def test_embed_images_batches_and_keeps_each_bad_image_in_its_slot(embedder, samples):
    photos = [sample_photo(samples, person=p) for p in ("madonna", "jerry_seinfeld")]
    blank = encode(np.full((120, 90, 3), 200, np.uint8))
    out = embedder.embed_images([photos[0], b"not an image", blank, photos[1]])
    assert isinstance(out[1], ImageError) and out[2] == []
    for batched, data in ((out[0], photos[0]), (out[3], photos[1])):
        single = embedder.embed_image(data)
        assert len(batched) == len(single) >= 1
        # batched MTCNN pads images, so boxes may move a pixel; the identity must not
        assert float(np.sum((batched[0].embedding - single[0].embedding) ** 2)) * 3 < 0.5


def test_no_face_is_not_an_error(embedder):
    assert embedder.embed_image(encode(np.full((200, 200, 3), 128, np.uint8))) == []


@pytest.mark.parametrize("data", [b"", b"\x89PNG\r\n\x1a\nbroken", b"GIF89a....."])
def test_bad_bytes_raise_image_errors(embedder, data):
    with pytest.raises(ImageError):
        embedder.embed_image(data)
