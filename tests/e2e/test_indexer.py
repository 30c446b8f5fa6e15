"""facesearch-indexer as users run it: a subprocess on real folders, the real model and store."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from facesearch.client import FaceSearchClient
from facesearch.embedder import models
from facesearch.testing import ServerProcess

from tests.conftest import AVENGERS


def indexer(data_dir, *args, timeout=600):
    env = {**os.environ, "FACESEARCH_DATA_DIR": str(data_dir), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", "facesearch.indexer.cli", "--quiet", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env)


def stats(data_dir) -> dict:
    out = indexer(data_dir, "stats", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def face_rows(data_dir) -> list[tuple]:
    with sqlite3.connect(f"file:{data_dir / 'gallery.db'}?mode=ro", uri=True) as db:
        return db.execute("select i.identity_id, f.source_sha256 from faces f join identities i "
                          "on i.id = f.identity_pk").fetchall()


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, samples):
    """Avengers crops, then the 5-celebrity train photos, into one data directory."""
    if not AVENGERS.is_dir():
        pytest.skip(f"the seed's Avengers data is not at {AVENGERS}")
    data = tmp_path_factory.mktemp("indexed")
    first = indexer(data, "add", AVENGERS, "--face-mode", "cropped", "--report", data / "r1.json")
    second = indexer(data, "add", samples / "train", "--report", data / "r2.json")
    return data, first, second


def test_index_crops_then_photos_counts_are_right(indexed):
    data, first, second = indexed
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    r1, r2 = (json.loads((data / n).read_text()) for n in ("r1.json", "r2.json"))
    assert (r1["added"], r1["skipped"], r1["rejected"], r1["identities_created"]) == (273, 0, 0, 5)
    assert (r2["added"], r2["rejected"], r2["identities_created"]) == (92, 1, 5)   # one photo has no face
    assert r2["rejections"][0]["reason"] == "no face found" and "elton_john" in r2["rejections"][0]["path"]
    assert "added 92, skipped 0" in second.stdout and "rejected" in second.stdout
    s = stats(data)
    assert (s["identity_count"], s["face_count"], s["model_id"]) == (10, 365, "facenet-128")


def test_second_run_adds_nothing(indexed):
    data, _, _ = indexed
    again = indexer(data, "add", AVENGERS, "--face-mode", "cropped", "--report", data / "r3.json")
    assert again.returncode == 0, again.stderr
    r = json.loads((data / "r3.json").read_text())
    assert (r["added"], r["skipped"]) == (0, 273)
    assert stats(data)["face_count"] == 365


def test_bad_files_are_reported_and_skipped(tmp_path, samples):
    gallery = tmp_path / "gallery" / "someone"
    gallery.mkdir(parents=True)
    good = sorted((samples / "train" / "madonna").glob("*.jpg"))[0]
    shutil.copy(good, gallery / "good.jpg")
    png = (AVENGERS / "chris_evans" / "chris_evans1.png") if AVENGERS.is_dir() else good
    (gallery / "corrupt.png").write_bytes(png.read_bytes()[:300])
    (gallery / "notes.txt").write_text("not an image")
    out = indexer(tmp_path / "data", "add", tmp_path / "gallery", "--report", tmp_path / "r.json")
    assert out.returncode == 0, out.stderr
    r = json.loads((tmp_path / "r.json").read_text())
    assert (r["added"], r["rejected"]) == (1, 2)
    reasons = {os.path.basename(x["path"]): x["reason"] for x in r["rejections"]}
    assert "truncated" in reasons["corrupt.png"] or "cannot be decoded" in reasons["corrupt.png"]
    assert "not a JPEG, PNG, BMP or WebP" in reasons["notes.txt"]


def test_fatal_errors_exit_2(tmp_path):
    out = indexer(tmp_path / "data", "add", tmp_path / "missing")
    assert out.returncode == 2 and "does not exist" in out.stderr


def test_killed_run_resumes_to_the_clean_counts(tmp_path):
    if not AVENGERS.is_dir():
        pytest.skip(f"the seed's Avengers data is not at {AVENGERS}")
    data = tmp_path / "data"
    env = {**os.environ, "FACESEARCH_DATA_DIR": str(data), "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen([sys.executable, "-m", "facesearch.indexer.cli", "--quiet", "add", str(AVENGERS),
                             "--face-mode", "cropped", "--batch-size", "16"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if len(face_rows(data)) >= 32:   # at least two batches are committed
                break
        except sqlite3.Error:
            pass
        time.sleep(0.1)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    partial = len(face_rows(data))
    assert 32 <= partial < 273
    out = indexer(data, "add", AVENGERS, "--face-mode", "cropped", "--report", tmp_path / "r.json")
    assert out.returncode == 0, out.stderr
    r = json.loads((tmp_path / "r.json").read_text())
    rows = face_rows(data)
    assert r["skipped"] == partial and r["added"] == 273 - partial
    assert len(rows) == len(set(rows)) == 273   # nothing duplicated


def test_server_mode_enrols_through_a_running_server(tmp_path, samples):
    gallery = tmp_path / "gallery"
    for person in ("madonna", "ben_afflek"):
        shutil.copytree(samples / "val" / person, gallery / person)
    server = ServerProcess(tmp_path / "served").start()
    try:
        out = indexer(tmp_path / "unused", "add", gallery, "--server", server.target, "--report", tmp_path / "r.json")
        assert out.returncode == 0, out.stderr
        r = json.loads((tmp_path / "r.json").read_text())
        assert (r["added"], r["rejected"]) == (10, 0)
        with FaceSearchClient(server.target) as c:
            info = c.info()
            assert (info.identity_count, info.face_count) == (2, 10)
        again = indexer(tmp_path / "unused", "add", gallery, "--server", server.target, "--report", tmp_path / "r2.json")
        r2 = json.loads((tmp_path / "r2.json").read_text())
        assert (again.returncode, r2["added"], r2["skipped"]) == (0, 0, 10)
        held = indexer(tmp_path / "served", "add", gallery)        # the server holds that data directory
        assert held.returncode == 2 and "in use by another process" in held.stderr
    finally:
        server.stop()


def test_reindex_to_an_exported_model_switches_the_model_id(indexed, embedder, tmp_path):
    data, _, _ = indexed
    export = models.write_export(embedder.model, tmp_path / "model", "facenet-128-copy")
    out = indexer(data, "reindex", "--model", export)
    assert out.returncode == 0, out.stderr
    s = stats(data)
    assert (s["model_id"], s["face_count"]) == ("facenet-128-copy", 365)
    dump = indexer(data, "export", "--out", tmp_path / "all.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "all.jsonl").read_text().splitlines()]
    assert dump.returncode == 0 and len(rows) == 10 and rows[0]["model_id"] == "facenet-128-copy"
    vec = np.array(rows[0]["faces"][0]["embedding"])
    assert vec.shape == (128,) and abs(np.linalg.norm(vec) - 1) < 1e-4
    fresh = tmp_path / "imported"
    assert indexer(fresh, "import", tmp_path / "all.jsonl").returncode == 0
    assert (stats(fresh)["identity_count"], stats(fresh)["face_count"]) == (10, 365)
    assert "imported 10 identities, 0 faces" in indexer(fresh, "import", tmp_path / "all.jsonl").stdout


def test_manifests_and_folders_are_scanned(tmp_path):
    from facesearch.sources import SourceError, scan

    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.jpg").write_bytes(b"x")
    (tmp_path / "m.csv").write_text("path,identity_id,display_name\nimgs/a.jpg,alice,Alice A\n/abs/b.png,bob,\n")
    (tmp_path / "m.jsonl").write_text('{"path": "imgs/a.jpg", "identity_id": "alice", "display_name": "Alice A"}\n\n')
    csv_items, jsonl_items = scan(tmp_path / "m.csv"), scan(tmp_path / "m.jsonl")
    assert [(i.path, i.identity_id, i.display_name) for i in csv_items] == [
        (tmp_path / "imgs" / "a.jpg", "alice", "Alice A"), (Path("/abs/b.png"), "bob", "")]
    assert jsonl_items == csv_items[:1]
    (tmp_path / "bad.jsonl").write_text('{"path": "x.jpg"}\n')
    with pytest.raises(SourceError, match="row 1: needs path and identity_id"):
        scan(tmp_path / "bad.jsonl")
    with pytest.raises(SourceError, match="a folder, a .csv or a .jsonl"):
        scan(tmp_path / "imgs" / "a.jpg")
    folder = tmp_path / "gallery"
    (folder / "carol").mkdir(parents=True)
    (folder / "carol" / "1.jpg").write_bytes(b"x")
    (folder / "README.txt").write_text("top-level files are not identities")
    assert [(i.identity_id, i.path.name) for i in scan(folder)] == [("carol", "1.jpg")]
