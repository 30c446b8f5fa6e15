"""Calibrate through a real server (real model): the Avengers leave-one-out, persistence, staleness, errors."""

from __future__ import annotations

import time

import grpc
import numpy as np
import pytest

from facesearch.client import FaceSearchClient
from facesearch.testing import ServerProcess
from facesearch.v1 import facesearch_pb2 as pb

from ..unit.test_calibration import clustered

CROPPED = pb.FACE_MODE_CROPPED


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("calibrated")


@pytest.fixture(scope="module")
def server(data_dir):
    proc = ServerProcess(data_dir).start()   # the restart test adds --recalibrate-every
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(server):
    with FaceSearchClient(server.target, timeout=120) as c:
        yield c


def failed(call, **kw) -> str:
    with pytest.raises(grpc.RpcError) as info:
        call(**kw)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION, info.value.details()
    return info.value.details()


def enrol_vectors(client, x, y, prefix="s"):
    for label in np.unique(y):
        client.enroll(f"{prefix}{label}", embeddings=x[y == label])


def wipe(client):
    for ident in list(client.iter_identities()):
        client.delete_identity(ident.identity_id)


def test_not_enough_data_is_failed_precondition_with_the_counts(client):
    assert "at least 2 identities; the gallery has 0" in failed(client.calibrate)
    x, y = clustered(1, 4)
    enrol_vectors(client, x, y)
    assert "at least 2 identities; the gallery has 1" in failed(client.calibrate)
    wipe(client)
    x, y = clustered(6, 1)
    enrol_vectors(client, x, y)
    assert "identities with at least 2 faces; none of the 6" in failed(client.calibrate, target_fnir=0.05)
    assert "needs at least 1000 impostor comparisons" in failed(client.calibrate, target_fpir=0.01)
    with pytest.raises(grpc.RpcError) as info:
        client.calibrate(target_fpir=2.0)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    wipe(client)
    assert client.info().default_max_distance_source == pb.CUTOFF_SOURCE_DEFAULT


@pytest.fixture(scope="module")
def avengers_embedded(client, avengers_split):
    """Every Avengers crop embedded once through the server: (train x, y), (test x, y)."""
    def embed(items):
        x = [client.embed(p.read_bytes(), face_mode=CROPPED).faces[0].embedding.values for _, p in items]
        return np.array(x, np.float32), np.array([n for n, _ in items])

    train, test = avengers_split
    return embed(train), embed(test)


def test_avengers_leave_one_out_after_calibrate_fnir_001(client, avengers_embedded):
    (xtr, ytr), (xte, yte) = avengers_embedded
    strangers_rejected = strangers = identified = enrolled_probes = 0
    for left_out in sorted(set(ytr)):
        keep = ytr != left_out
        enrol_vectors(client, xtr[keep], ytr[keep], prefix="")
        r = client.calibrate(target_fnir=0.01, apply=True)
        assert r.applied and r.identities == 4 and r.expected_fnir <= 0.01
        info = client.info()
        assert info.default_max_distance == pytest.approx(r.max_distance)
        assert info.default_max_distance_source == pb.CUTOFF_SOURCE_CALIBRATED and not info.calibration_stale
        for x, person in zip(xte, yte):
            faces = client.identify(embedding=x).faces   # max_distance 0: the calibrated default
            if person == left_out:
                strangers += 1
                strangers_rejected += not faces[0].known
            else:
                enrolled_probes += 1
                identified += faces[0].known and faces[0].matches[0].identity_id == person
        wipe(client)
    assert strangers_rejected >= 0.9 * strangers, f"{strangers_rejected}/{strangers} strangers rejected"
    assert identified >= 0.98 * enrolled_probes, f"{identified}/{enrolled_probes} enrolled probes identified"


def test_applied_calibration_survives_a_restart_goes_stale_and_recalibrates(server, client):
    x, y = clustered(10, 5, noise=0.06)
    enrol_vectors(client, x, y)
    r = client.calibrate(target_fnir=0.02, apply=True)
    assert server.terminate() == 0
    server.args += ["--recalibrate-every", "3"]
    server.start()
    with FaceSearchClient(server.target, timeout=120) as c:
        info = c.info()
        assert info.default_max_distance == pytest.approx(r.max_distance) and info.calibrated_at > 0
        assert info.default_max_distance_source == pb.CUTOFF_SOURCE_CALIBRATED and not info.calibration_stale
        extra = clustered(1, 3, noise=0.06, seed=7)[0]
        c.enroll("late", embeddings=extra[:2])
        info = c.info()
        assert info.calibration_stale and info.changes_since_calibration == 2
        c.enroll("late", embeddings=extra[2:])      # the 3rd change: --recalibrate-every 3 runs one
        deadline = time.monotonic() + 30
        while c.info().calibration_stale and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not c.info().calibration_stale
        stranger = clustered(1, 1, seed=99)[0][0]
        assert not c.identify(embedding=stranger).faces[0].known                 # the calibrated cutoff
        assert c.identify(embedding=stranger, max_distance=12).faces[0].known    # the request's own wins
