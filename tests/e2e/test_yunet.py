"""YuNet as the server's detector end to end (--detector yunet, docs/detection.md#yunet): a server
started with it says so, enrols the 5-celebrity train photos through its YuNet crops, and finds each
val photo's person. One server start. (The indexer's and the trainer's crop pass with YuNet:
tests/integration/test_detectors.py.)"""

from __future__ import annotations

import json
import time

import pytest

from facesearch.client import FaceSearchClient
from facesearch.testing import ServerProcess

PEOPLE = ["ben_afflek", "elton_john", "jerry_seinfeld", "madonna", "mindy_kaling"]
PER_PERSON = 3   # train photos enrolled per person
QUERIES = 2      # val photos identified per person


def serving_line(proc: ServerProcess, timeout: float = 30) -> dict:
    """The server's JSON log line that says it serves (written right after health turns SERVING)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in proc.log().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("msg") == "serving":
                return record
        time.sleep(0.2)
    raise AssertionError(f"no 'serving' line in the server's log: {proc.log()[-2000:]}")


@pytest.fixture(scope="module")
def yunet_server(tmp_path_factory):
    proc = ServerProcess(tmp_path_factory.mktemp("yunet"), "--detector", "yunet")
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def test_a_yunet_server_says_which_detector_it_runs(yunet_server):
    assert serving_line(yunet_server).get("detector") == "yunet", yunet_server.log()[-2000:]


def test_a_yunet_server_enrols_and_identifies_each_val_photo(yunet_server, samples):
    with FaceSearchClient(yunet_server.target, timeout=300) as client:
        for person in PEOPLE:
            photos = sorted((samples / "train" / person).glob("*.jpg"))[:PER_PERSON]
            enrolled = client.enroll(person, [p.read_bytes() for p in photos])
            assert len(enrolled.face_ids) == PER_PERSON and not enrolled.rejected, enrolled
        found = {}
        for person in PEOPLE:
            for photo in sorted((samples / "val" / person).glob("*.jpg"))[:QUERIES]:
                faces = client.identify(photo.read_bytes()).faces
                assert faces, f"YuNet found no face in {photo}"
                found[photo.name] = (person, faces[0].matches[0].identity_id if faces[0].matches else None)
    wrong = {name: got for name, (person, got) in found.items() if got != person}
    assert not wrong, wrong   # as with MTCNN crops: every val photo's person at top 1
