"""The service's request checks and its error kinds, without a model."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from facesearch.embedder import FaceMode, ImageTooLargeError, UndecodableImageError
from facesearch.gallery import InvalidEmbeddingError, InvalidInputError, ModelMismatchError, NotFoundError
from facesearch.gallery.validate import check_identity_id, unit_vectors
from facesearch.server.errors import status_of
from facesearch.service import InvalidArgument, NotFound, ServiceError, validate
from facesearch.service.errors import translated


@pytest.mark.parametrize("text", ["", "abc", "-3", "0", "1.5", "9" * 30, str(1 << 63), "１２"])
def test_face_ids_that_were_never_issued_are_invalid(text):
    with pytest.raises(InvalidArgument, match="not a face id this service issued"):
        validate.face_id(text)


def test_a_face_id_in_range_is_its_number():
    assert validate.face_id(str((1 << 63) - 1)) == (1 << 63) - 1
    assert validate.face_id("42") == 42


def test_face_mode_unspecified_is_detect_and_unknown_values_are_invalid():
    assert validate.face_mode(0) is FaceMode.DETECT
    assert validate.face_mode(2) is FaceMode.CROPPED
    with pytest.raises(InvalidArgument, match="face_mode 7 is not one of"):
        validate.face_mode(7)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), 12.5])
def test_cutoffs_outside_the_scale_are_invalid(bad):
    with pytest.raises(InvalidArgument, match="max_distance"):
        validate.cutoff(bad, 3.5)


def test_cutoff_zero_is_the_default_and_top_k_zero_is_one():
    assert validate.cutoff(0.0, 2.7) == 2.7 and validate.cutoff(1.25, 3.5) == 1.25
    assert validate.top_k(0, 10) == 1
    with pytest.raises(InvalidArgument, match="over the limit of 10"):
        validate.top_k(11, 10)
    with pytest.raises(InvalidArgument, match="page_size 1001"):
        validate.page_size(1001)


@pytest.mark.parametrize("scale", [1e30, 1e-30, 3e38, 1e-40])
def test_finite_extreme_embeddings_normalise_without_overflow(scale):
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(3, 128)) * scale
    unit = unit_vectors(raw, 128, "m")
    assert unit.dtype == np.float32 and np.all(np.isfinite(unit))
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-5)
    expected = raw / np.linalg.norm(raw / scale, axis=1, keepdims=True) / scale
    np.testing.assert_allclose(unit, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("raw, message", [
    (np.zeros(128), "all zeros"), (np.ones(127), "has 127 values"), (np.full(128, np.nan), "NaN or infinite")])
def test_bad_embeddings_are_named(raw, message):
    with pytest.raises(InvalidEmbeddingError, match=message):
        unit_vectors(raw, 128, "m")


@pytest.mark.parametrize("identity_id, message", [
    ("", "empty"), ("x" * 256, "256 characters"), ("a\nb", "control characters"), ("a\u200bb", "control"),
    ("a\x00b", "NUL"), ("\udc80", "not valid UTF-8")])
def test_identity_ids_are_checked_once(identity_id, message):
    with pytest.raises(InvalidInputError, match=message):
        check_identity_id(identity_id)


@pytest.mark.parametrize("exc, code", [
    (ImageTooLargeError("big"), grpc.StatusCode.RESOURCE_EXHAUSTED),
    (UndecodableImageError("bad"), grpc.StatusCode.INVALID_ARGUMENT),
    (InvalidEmbeddingError("nan"), grpc.StatusCode.INVALID_ARGUMENT),
    (ModelMismatchError("other"), grpc.StatusCode.FAILED_PRECONDITION),
    (NotFoundError("who"), grpc.StatusCode.NOT_FOUND),
    (InvalidArgument("x"), grpc.StatusCode.INVALID_ARGUMENT),
])
def test_known_errors_map_to_their_status(exc, code):
    assert status_of(exc) == (code, str(exc))


def test_unexpected_errors_have_no_status():
    assert status_of(RuntimeError("boom")) is None and status_of(KeyError("k")) is None


async def _raise(exc):
    raise exc


def test_service_methods_raise_service_errors_only():
    import asyncio

    with pytest.raises(NotFound, match="no identity 'x'") as info:
        asyncio.run(translated(_raise)(NotFoundError("no identity 'x'")))
    assert isinstance(info.value, ServiceError) and isinstance(info.value.__cause__, NotFoundError)
    with pytest.raises(RuntimeError):
        asyncio.run(translated(_raise)(RuntimeError("a bug stays a bug")))


@pytest.mark.parametrize("name, metadata, message", [
    ("x" * 256, {}, "display_name is 256 characters; at most 255"),
    ("a\x00b", {}, "display_name contains a NUL character"),
    ("\ud800", {}, "display_name is not valid UTF-8"),
    ("", {"k\x00": "v"}, "metadata key 'k.x00' contains a NUL"),
    ("", {"k": "v\x00"}, "metadata value of 'k' contains a NUL"),
    ("", {f"k{i}": "v" for i in range(65)}, "65 keys; at most 64"),
    ("", {"k" * 129: "v"}, "1 to 128 characters"),
    ("", {"": "v"}, "1 to 128 characters"),
    ("", {"k": "v" * 2049}, "2049 characters; at most 2048"),
    ("", {f"k{i}": "é" * 1000 for i in range(9)}, "bytes in all; at most 16384"),
])
def test_identity_profiles_over_their_caps_are_refused_by_name(name, metadata, message):
    with pytest.raises(InvalidArgument, match=message):
        validate.profile(name, metadata)


def test_profiles_within_the_caps_pass():
    validate.profile("n" * 255, {f"k{i}": "v" * 200 for i in range(64)})
    validate.profile("𝔑" * 255, {})   # 255 characters of 4 UTF-8 bytes each: VARCHAR(255) holds them
