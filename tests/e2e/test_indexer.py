"""facesearch-indexer as users run it: a subprocess on real folders, the real model and store."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import grpc
import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from PIL import Image

from facesearch.client import FaceSearchClient
from facesearch.embedder import models

from tests.helpers import encode


def indexer(data_dir, *args, timeout=600):
    env = {**os.environ, "FACESEARCH_DATA_DIR": str(data_dir), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", "facesearch.indexer.cli", "--quiet", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env)


def stats(data_dir) -> dict:
    out = indexer(data_dir, "stats", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def face_rows(data_dir) -> list[tuple]:
    """(identity id, source sha256) of every face, read beside the indexer (any database)."""
    from facesearch.gallery import GalleryConfig
    from facesearch.gallery.schema import faces, identities
    from facesearch.gallery.sql import connect

    engine = connect(GalleryConfig(data_dir=data_dir, database_url=os.environ.get("FACESEARCH_DATABASE_URL", "")).url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(select(identities.c.identity_id, faces.c.source_sha256)
                                                   .join(identities, identities.c.id == faces.c.identity_pk))]
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, samples, sample_crops):
    """The 5-celebrity train photos, then crops of the same people, into one data directory."""
    data = tmp_path_factory.mktemp("indexed")
    first = indexer(data, "add", samples / "train", "--report", data / "r1.json")
    second = indexer(data, "add", sample_crops, "--face-mode", "cropped", "--report", data / "r2.json")
    return data, first, second


def test_index_photos_then_crops_counts_are_right(indexed):
    data, first, second = indexed
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    r1, r2 = (json.loads((data / n).read_text()) for n in ("r1.json", "r2.json"))
    assert (r1["added"], r1["skipped"], r1["rejected"], r1["identities_created"]) == (92, 0, 1, 5)
    assert r1["rejections"][0]["reason"] == "no face found" and "elton_john" in r1["rejections"][0]["path"]
    assert "added 92, skipped 0" in first.stdout and "rejected" in first.stdout
    assert (r2["added"], r2["rejected"], r2["identities_created"]) == (20, 0, 0)   # the same 5 people
    s = stats(data)
    assert (s["identity_count"], s["face_count"], s["model_id"]) == (5, 112, "facenet-128")


def test_second_run_adds_nothing(indexed, samples):
    data, _, _ = indexed
    again = indexer(data, "add", samples / "train", "--report", data / "r3.json")
    assert again.returncode == 0, again.stderr
    r = json.loads((data / "r3.json").read_text())
    assert (r["added"], r["skipped"], r["rejected"]) == (0, 92, 1)
    assert stats(data)["face_count"] == 112


def test_bad_files_are_reported_and_skipped(tmp_path, samples):
    gallery = tmp_path / "gallery" / "someone"
    gallery.mkdir(parents=True)
    good = sorted((samples / "train" / "madonna").glob("*.jpg"))[0]
    shutil.copy(good, gallery / "good.jpg")
    (gallery / "cut.jpg").write_bytes(good.read_bytes()[:300])        # cut inside the JPEG header
    png = encode(np.asarray(Image.open(good).convert("RGB")), "PNG")
    (gallery / "cut.png").write_bytes(png[: len(png) // 2])            # cut inside the pixel data
    (gallery / "notes.txt").write_text("not an image")
    out = indexer(tmp_path / "data", "add", tmp_path / "gallery", "--report", tmp_path / "r.json")
    assert out.returncode == 0, out.stderr
    r = json.loads((tmp_path / "r.json").read_text())
    assert (r["added"], r["rejected"]) == (1, 3)
    reasons = {os.path.basename(x["path"]): x["reason"] for x in r["rejections"]}
    assert "JPEG image is truncated" in reasons["cut.jpg"] and "PNG image is truncated" in reasons["cut.png"]
    assert "not a JPEG, PNG, BMP or WebP" in reasons["notes.txt"]


def test_fatal_errors_exit_2(tmp_path):
    out = indexer(tmp_path / "data", "add", tmp_path / "missing")
    assert out.returncode == 2 and "does not exist" in out.stderr


def test_killed_run_resumes_to_the_clean_counts(tmp_path, samples):
    data, photos = tmp_path / "data", samples / "train"      # 93 photos, 92 with a face
    env = {**os.environ, "FACESEARCH_DATA_DIR": str(data), "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen([sys.executable, "-m", "facesearch.indexer.cli", "--quiet", "add", str(photos),
                             "--batch-size", "16"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if len(face_rows(data)) >= 32:   # at least two batches are committed
                break
        except DBAPIError:   # not created yet, or busy
            pass
        time.sleep(0.1)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    partial = len(face_rows(data))
    assert 32 <= partial < 92
    out = indexer(data, "add", photos, "--report", tmp_path / "r.json")
    assert out.returncode == 0, out.stderr
    r = json.loads((tmp_path / "r.json").read_text())
    rows = face_rows(data)
    assert r["skipped"] == partial and r["added"] == 92 - partial
    assert len(rows) == len(set(rows)) == 92   # nothing duplicated


def test_server_mode_enrols_through_a_running_server(tmp_path, samples, server):
    gallery = tmp_path / "gallery"
    people = ("indexer-madonna", "indexer-ben_afflek")              # ids of its own on the shared server
    for person in people:
        shutil.copytree(samples / "val" / person.removeprefix("indexer-"), gallery / person)
    with FaceSearchClient(server.target) as c:
        before = c.info()
        try:
            out = indexer(tmp_path / "unused", "add", gallery, "--server", server.target, "--report", tmp_path / "r.json")
            assert out.returncode == 0, out.stderr
            r = json.loads((tmp_path / "r.json").read_text())
            assert (r["added"], r["rejected"]) == (10, 0)
            after = c.info()
            assert (after.identity_count - before.identity_count, after.face_count - before.face_count) == (2, 10)
            assert [c.get_identity(p).face_count for p in people] == [5, 5]
            again = indexer(tmp_path / "unused", "add", gallery, "--server", server.target,
                            "--report", tmp_path / "r2.json")
            r2 = json.loads((tmp_path / "r2.json").read_text())
            assert (again.returncode, r2["added"], r2["skipped"]) == (0, 0, 10)
            held = indexer(server.data_dir, "add", gallery)         # the server holds that data directory
            assert held.returncode == 2 and "in use by another process" in held.stderr
        finally:
            for person in people:
                try:
                    c.delete_identity(person)
                except grpc.RpcError:
                    pass


def test_reindex_to_an_exported_model_switches_the_model_id(indexed, embedder, tmp_path):
    data, _, _ = indexed
    export = models.write_export(embedder.model, tmp_path / "model", "facenet-128-copy")
    out = indexer(data, "reindex", "--model", export)
    assert out.returncode == 0, out.stderr
    s = stats(data)
    assert (s["model_id"], s["face_count"]) == ("facenet-128-copy", 112)
    dump = indexer(data, "export", "--out", tmp_path / "all.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "all.jsonl").read_text().splitlines()]
    assert dump.returncode == 0 and len(rows) == 5 and rows[0]["model_id"] == "facenet-128-copy"
    vec = np.array(rows[0]["faces"][0]["embedding"])
    assert vec.shape == (128,) and abs(np.linalg.norm(vec) - 1) < 1e-4
    fresh = tmp_path / "imported"
    assert indexer(fresh, "import", tmp_path / "all.jsonl").returncode == 0
    assert (stats(fresh)["identity_count"], stats(fresh)["face_count"]) == (5, 112)
    assert "imported 5 identities, 0 faces" in indexer(fresh, "import", tmp_path / "all.jsonl").stdout
