"""Load testing: the ghz configs in bench/ghz/ and bench/loadgen.py, short runs against a real server."""

from __future__ import annotations

import base64
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import json_format

from facesearch.client import FaceSearchClient
from facesearch.testing import ServerProcess
from facesearch.v1 import facesearch_pb2 as pb

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"
CONFIGS = sorted((BENCH / "ghz").glob("*.json"))
CROPPED = BENCH / "ghz" / "identify_cropped.json"
SERVICE = pb.DESCRIPTOR.services_by_name["FaceSearch"]
TOKEN = "loadtest-secret"
REPORT_KEYS = {"count": int, "total": int, "average": int, "fastest": int, "slowest": int, "rps": float,
               "histogram": list, "latencyDistribution": list, "statusCodeDistribution": dict}


@pytest.fixture(scope="module")
def loadgen():
    spec = importlib.util.spec_from_file_location("loadgen", BENCH / "loadgen.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def data_of(config: dict) -> list[dict]:
    data = json.loads((REPO / config["data-file"]).read_text()) if "data-file" in config else config["data"]
    return data if isinstance(data, list) else [data]


def test_ghz_configs_exist():
    assert {p.stem for p in CONFIGS} >= {"identify_cropped", "identify_photo", "identify_embedding", "enroll"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_ghz_config_builds_a_valid_request(path, loadgen):
    config = json.loads(path.read_text())
    # as ghz reads it from the repository root: the .proto, its import path and the data file exist
    assert (REPO / config["proto"]).is_file() and all((REPO / p).is_dir() for p in config["import-paths"])
    assert config["host"] == "127.0.0.1:50051" and config["insecure"] is True
    assert config["total"] > 0 and loadgen.parse_duration(config["max-duration"], "max-duration") > 0  # bounded
    service, _, name = config["call"].rpartition(".")
    assert service == SERVICE.full_name
    method = SERVICE.methods_by_name[name]
    assert not (method.client_streaming or method.server_streaming)
    for data in data_of(config):
        # ghz fills template actions before parsing; any text will do for the check
        text = json.dumps(data).replace("{{.UUID}}", "00000000-0000-0000-0000-000000000000")
        assert "{{" not in text, "a template action this test does not know"
        request = json_format.ParseDict(json.loads(text), getattr(pb, method.input_type.name)())
        if isinstance(request, pb.IdentifyRequest):
            assert request.WhichOneof("query")
            if request.HasField("embedding"):
                values = np.array(request.embedding.values)
                assert values.shape == (128,) and abs(np.linalg.norm(values) - 1) < 1e-4
                assert request.embedding.model_id == "facenet-128"
            else:
                assert request.image[:3] == b"\xff\xd8\xff"  # JPEG
        elif isinstance(request, pb.EnrollRequest):
            assert request.identity_id and request.images and request.face_mode == pb.FACE_MODE_CROPPED
    # loadgen accepts it as it is, and builds the same messages
    plan = loadgen.plan(loadgen.parser().parse_args(["--config", str(path)]))
    assert plan["call"] == method.full_name and plan["target"] == "127.0.0.1:50051"
    assert plan["total"] == config["total"] and len(plan["data"]) == len(data_of(config))


@pytest.mark.parametrize("host", ["example.com:50051", "10.1.2.3:50051", "0.0.0.0:50051", "[2001:db8::1]:50051",
                                  "192.168.0.1:50051"])
def test_loadgen_refuses_hosts_off_this_machine(loadgen, capsys, host):
    assert loadgen.main(["--config", str(CROPPED), host]) == 2
    err = capsys.readouterr().err
    assert "refusing host" in err and "127.0.0.1, localhost or [::1]" in err
    with pytest.raises(loadgen.LoadgenError):
        loadgen.plan(loadgen.parser().parse_args(["--config", str(CROPPED), "--host", host]))


def test_loadgen_accepts_loopback_hosts(loadgen):
    for host in ("127.0.0.1:50051", "localhost:1", "[::1]:50051", "127.0.0.2:9"):
        assert loadgen.check_host(host) == host
    with pytest.raises(loadgen.LoadgenError, match="HOST:PORT"):
        loadgen.check_host("127.0.0.1")


@pytest.mark.parametrize("flags, message", [
    (["--call", "facesearch.v1.FaceSearch.Nope"], "unknown call"),
    (["--call", "other.Service.Identify"], "unknown call"),
    (["--call", "facesearch.v1.FaceSearch.IdentifyStream"], "streaming call"),
    (["-d", '{"no_such_field": 1}'], "does not fit facesearch.v1.IdentifyRequest"),
    (["-d", "[]"], "non-empty array"),
    (["-c", "2", "--connections", "4"], "cannot be greater than concurrency"),
    (["-z", "ten seconds"], "not a duration"),
    (["-m", "no colon here"], "metadata"),
])
def test_loadgen_reports_bad_flags(loadgen, capsys, flags, message):
    assert loadgen.main(["--config", str(CROPPED), *flags]) == 2
    assert message in capsys.readouterr().err


def test_loadgen_reports_bad_config_files(loadgen, capsys, tmp_path):
    cases = {"not-json.json": ("{call: nope", "not valid JSON"),
             "list.json": ("[1, 2]", "must be a JSON object"),
             "unknown.json": (json.dumps({"call": "facesearch.v1.FaceSearch.GetInfo", "hots": "x"}), "unknown key"),
             "steps.json": (json.dumps({"call": "facesearch.v1.FaceSearch.GetInfo", "host": "127.0.0.1:1",
                                        "load-schedule": "step"}), "not supported"),
             "nodata.json": (json.dumps({"call": "facesearch.v1.FaceSearch.Identify", "host": "127.0.0.1:1",
                                         "data-file": "no/such/file.json"}), "file not found")}
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        assert loadgen.main(["--config", str(tmp_path / name)]) == 2, name
        assert message in capsys.readouterr().err, name
    assert loadgen.main(["--config", str(tmp_path / "missing.json")]) == 2
    assert "cannot read config" in capsys.readouterr().err


def test_loadgen_help():
    done = subprocess.run([sys.executable, str(BENCH / "loadgen.py"), "--help"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and done.stderr == ""
    assert "usage: loadgen.py" in done.stdout and "--config" in done.stdout and "127.0.0.1" in done.stdout


def test_report_statistics_follow_ghz(loadgen):
    ms = [float(x) for x in range(1, 101)]  # 1..100 ms
    dist = loadgen.latency_distribution([x / 1e3 for x in ms])
    assert [d["percentage"] for d in dist] == [10, 25, 50, 75, 90, 95, 99]
    assert [d["latency"] for d in dist] == [int(p * 1e6) for p in (10, 25, 50, 75, 90, 95, 99)]
    hist = loadgen.histogram([x / 1e3 for x in ms])
    assert len(hist) == 11 and sum(b["count"] for b in hist) == 100
    assert hist[0]["mark"] == pytest.approx(0.001) and hist[-1]["mark"] == pytest.approx(0.1)
    assert sum(b["frequency"] for b in hist) == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------
# against a real facesearch-server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = ServerProcess(tmp_path_factory.mktemp("loadtest"), "--warmup-batch", "4",
                         env={"FACESEARCH_AUTH_TOKEN": TOKEN})
    try:
        proc.start()
        crop = base64.b64decode(data_of(json.loads(CROPPED.read_text()))[0]["image"])
        other = base64.b64decode(data_of(json.loads((BENCH / "ghz" / "enroll.json").read_text()))[0]["images"][0])
        rng = np.random.default_rng(0)
        with FaceSearchClient(proc.target, token=TOKEN, timeout=120) as client:
            assert client.enroll("chris_evans", [crop], face_mode=pb.FACE_MODE_CROPPED).face_ids
            assert client.enroll("chris_hemsworth", [other], face_mode=pb.FACE_MODE_CROPPED).face_ids
            for i, v in enumerate(rng.normal(size=(8, 128))):
                client.enroll(f"noise-{i}", embeddings=[v / np.linalg.norm(v)])
        yield proc
    finally:
        proc.stop()


def run_loadgen(target: str, out: Path, *flags: str) -> tuple[dict, str]:
    cmd = [sys.executable, str(BENCH / "loadgen.py"), "--config", str(CROPPED), *flags, "-O", "json", "-o", str(out),
           target]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text()), done.stdout


def test_loadgen_run_against_the_server(server, tmp_path):
    rep, stdout = run_loadgen(server.target, tmp_path / "report.json", "-n", "40", "-c", "4", "--connections", "2",
                              "-x", "10s", "--duration-stop", "ignore",
                              "-m", json.dumps({"authorization": f"Bearer {TOKEN}"}))
    for key, kind in REPORT_KEYS.items():
        assert isinstance(rep[key], kind), key
    count = rep["count"]
    assert 0 < count <= 40 and (rep["endReason"] != "normal" or count == 40)
    assert rep["statusCodeDistribution"] == {"OK": count} and rep["errorDistribution"] == {}
    assert 0 < rep["fastest"] <= rep["average"] <= rep["slowest"] < rep["total"] <= 12e9  # the -x bound holds
    assert rep["rps"] == pytest.approx(count / (rep["total"] / 1e9))
    hist = rep["histogram"]
    assert all(set(b) == {"mark", "count", "frequency"} for b in hist)
    assert sum(b["count"] for b in hist) == count and sum(b["frequency"] for b in hist) == pytest.approx(1.0)
    marks = [b["mark"] for b in hist]  # seconds, as in ghz
    assert marks == sorted(marks) and marks[0] == pytest.approx(rep["fastest"] / 1e9)
    assert marks[-1] == pytest.approx(rep["slowest"] / 1e9)
    dist = rep["latencyDistribution"]
    assert [d["percentage"] for d in dist] == [10, 25, 50, 75, 90, 95, 99]
    lat = [d["latency"] for d in dist]  # nanoseconds
    assert all(isinstance(x, int) for x in lat) and lat == sorted(lat)
    assert rep["fastest"] <= lat[0] and lat[-1] <= rep["slowest"]
    assert len(rep["details"]) == count and {d["status"] for d in rep["details"]} == {"OK"}
    assert rep["options"]["concurrency"] == 4 and rep["options"]["connections"] == 2
    assert rep["options"]["metadata"] == {"authorization": "<redacted>"}  # the token is not written out
    assert "Summary:" in stdout and "Latency distribution:" in stdout and "[OK]" in stdout


def test_loadgen_reports_rpc_errors_by_status(server, tmp_path):
    rep, stdout = run_loadgen(server.target, tmp_path / "report.json", "-n", "4", "-c", "2", "-x", "10s")
    assert rep["count"] == 4 and rep["statusCodeDistribution"] == {"Unauthenticated": 4}  # no token sent
    assert sum(rep["errorDistribution"].values()) == 4
    assert all(e.startswith("rpc error: code = Unauthenticated") for e in rep["errorDistribution"])
    assert rep["histogram"] == [] and rep["latencyDistribution"] == []
    assert "Error distribution:" in stdout
