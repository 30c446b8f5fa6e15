"""YuNet as the detector end to end (FACESEARCH_DETECTOR, docs/detection.md#yunet): the indexer builds a
gallery from photos with --detector yunet, and a server started with --detector yunet on it finds
each val photo's person. One indexer run and one server start, on the 5-celebrity samples."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from facesearch.client import FaceSearchClient
from facesearch.testing import ServerProcess

PEOPLE = ["ben_afflek", "elton_john", "jerry_seinfeld", "madonna", "mindy_kaling"]
PER_PERSON = 3   # train photos enrolled per person
QUERIES = 2      # val photos identified per person


@pytest.fixture(scope="module")
def yunet_gallery(samples, tmp_path_factory):
    """A data dir the indexer filled with --detector yunet, and its report."""
    root = tmp_path_factory.mktemp("yunet")
    for person in PEOPLE:
        (root / "photos" / person).mkdir(parents=True)
        for photo in sorted((samples / "train" / person).glob("*.jpg"))[:PER_PERSON]:
            shutil.copy(photo, root / "photos" / person / photo.name)
    env = {**os.environ, "FACESEARCH_DATA_DIR": str(root / "data"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run([sys.executable, "-m", "facesearch.indexer.cli", "--quiet", "add", str(root / "photos"),
                          "--detector", "yunet", "--report", str(root / "report.json")],
                         capture_output=True, text=True, timeout=900, env=env)
    assert out.returncode == 0, out.stderr
    return root / "data", json.loads((root / "report.json").read_text())


def serving_line(proc: ServerProcess, timeout: float = 30) -> dict:
    """The server's JSON log line that says it serves (written right after health turns SERVING)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in proc.log().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("message", record.get("msg")) == "serving":
                return record
        time.sleep(0.2)
    raise AssertionError(f"no 'serving' line in the server's log: {proc.log()[-2000:]}")


def test_the_indexer_enrols_every_photo_with_yunet(yunet_gallery):
    _, report = yunet_gallery
    assert report["added"] == len(PEOPLE) * PER_PERSON and not report["rejected"], report


def test_a_yunet_server_identifies_each_val_photo(yunet_gallery, samples):
    data_dir, _ = yunet_gallery
    proc = ServerProcess(data_dir, "--detector", "yunet")
    proc.start()
    try:
        assert serving_line(proc).get("detector") == "yunet", proc.log()[-2000:]
        with FaceSearchClient(proc.target, timeout=300) as client:
            assert client.info().face_count == len(PEOPLE) * PER_PERSON
            found = {}
            for person in PEOPLE:
                for photo in sorted((samples / "val" / person).glob("*.jpg"))[:QUERIES]:
                    faces = client.identify(photo.read_bytes()).faces
                    assert faces, f"YuNet found no face in {photo}"
                    found[photo.name] = (person, faces[0].matches[0].identity_id if faces[0].matches else None)
        wrong = {name: got for name, (person, got) in found.items() if got != person}
        assert not wrong, wrong   # the MTCNN-built figures hold: every val photo's person at top 1
    finally:
        proc.stop()
