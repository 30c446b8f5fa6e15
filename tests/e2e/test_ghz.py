"""Each ghz config in bench/ghz/, run briefly by the real ghz against one real facesearch-server.

ghz comes from `make ghz` (which `make test` runs: Go builds it into the virtualenv) or PATH; with
neither ghz nor Go this module skips, saying how to get ghz.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from bench.loadtest import CONFIGS, GHZ_MISSING, REPO, find_ghz, run_ghz
from facesearch.client import FaceSearchClient
from facesearch.testing import ServerProcess
from facesearch.v1 import facesearch_pb2 as pb

PATHS = sorted(CONFIGS.glob("*.json"))
TOTAL = 6
PERCENTAGES = [10, 25, 50, 75, 90, 95, 99]


@pytest.fixture(scope="module")
def ghz() -> str:
    path = find_ghz()
    in_venv = sys.prefix != sys.base_prefix
    if path is None and in_venv and shutil.which("go") and shutil.which("make"):
        # as `make test` does; a run of pytest alone gets the same ghz, built into this virtualenv
        subprocess.run(["make", "-s", "ghz", f"VENV={sys.prefix}"], cwd=REPO, timeout=900, check=True)
        path = find_ghz()
    if path is None:
        pytest.skip(f"{GHZ_MISSING} (Go is {'there' if shutil.which('go') else 'not installed'})")
    return path


def data_of(name: str) -> dict:
    data = json.loads((CONFIGS / "data" / name).read_text())
    return data[0] if isinstance(data, list) else data


@pytest.fixture(scope="module")
def server(tmp_path_factory, ghz):
    """One server for the module: the configs' two face crops and some noise identities enrolled."""
    proc = ServerProcess(tmp_path_factory.mktemp("ghz"), "--warmup-batch", "4")
    try:
        proc.start()
        crop = base64.b64decode(data_of("identify_cropped.json")["image"])
        other = base64.b64decode(data_of("enroll.json")["images"][0])
        with FaceSearchClient(proc.target, timeout=120) as client:
            assert client.enroll("chris_evans", [crop], face_mode=pb.FACE_MODE_CROPPED).face_ids
            assert client.enroll("chris_hemsworth", [other], face_mode=pb.FACE_MODE_CROPPED).face_ids
            for i, v in enumerate(np.random.default_rng(0).normal(size=(8, 128))):
                client.enroll(f"noise-{i}", embeddings=[v / np.linalg.norm(v)])
        yield proc
    finally:
        proc.stop()


def test_every_call_has_a_config():
    assert {p.stem for p in PATHS} >= {"identify_cropped", "identify_photo", "identify_embedding", "enroll"}


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_config_runs_with_ghz(path, ghz, server, tmp_path):
    config = json.loads(path.read_text())
    rep = run_ghz(ghz, path, server.target, tmp_path / "report.json",
                  ["-n", str(TOTAL), "-c", "2", "--connections", "1"], quiet=True, timeout=300)
    assert rep["options"]["call"] == config["call"] and rep["options"]["host"] == server.target
    assert rep["count"] == TOTAL and rep["endReason"] == "normal"
    assert rep["statusCodeDistribution"] == {"OK": TOTAL}
    assert not rep.get("errorDistribution")
    assert len(rep["details"]) == TOTAL and {d["status"] for d in rep["details"]} == {"OK"}
    dist = rep["latencyDistribution"]
    assert [d["percentage"] for d in dist] == PERCENTAGES
    latencies = [d["latency"] for d in dist]  # nanoseconds
    assert all(x > 0 for x in latencies) and latencies == sorted(latencies)
    assert 0 < rep["fastest"] <= latencies[0] and latencies[-1] <= rep["slowest"]
    assert rep["fastest"] <= rep["average"] <= rep["slowest"] <= rep["total"]
    assert sum(b["count"] for b in rep["histogram"]) == TOTAL
