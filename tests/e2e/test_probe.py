"""The health probe as Docker runs it: `python -m facesearch.server.probe` against an in-process
gRPC health server (no model), with flags, FACESEARCH_* variables and TLS."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc


class HealthServer:
    """An in-process gRPC server with only grpc.health.v1, on an ephemeral loopback port."""

    def __init__(self, credentials: grpc.ServerCredentials | None = None):
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        self.servicer = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.servicer, self.server)
        self.port = (self.server.add_secure_port("127.0.0.1:0", credentials) if credentials
                     else self.server.add_insecure_port("127.0.0.1:0"))
        self.server.start()

    def set(self, status, service: str = "") -> None:
        self.servicer.set(service, status)

    def stop(self) -> None:
        self.server.stop(None).wait()


@pytest.fixture
def health_server():
    server = HealthServer()
    yield server
    server.stop()


def probe(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FACESEARCH_")}
    return subprocess.run([sys.executable, "-m", "facesearch.server.probe", *args], env={**clean, **(env or {})},
                          capture_output=True, text=True, timeout=60)


def test_probe_serving(health_server):
    health_server.set(health_pb2.HealthCheckResponse.SERVING)
    result = probe("--address", f"127.0.0.1:{health_server.port}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"SERVING 127.0.0.1:{health_server.port}"


def test_probe_not_serving(health_server):
    health_server.set(health_pb2.HealthCheckResponse.NOT_SERVING)
    result = probe("--address", f"127.0.0.1:{health_server.port}")
    assert result.returncode == 1
    assert "NOT_SERVING" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_probe_address_from_the_server_variable(health_server):
    """Inside the container FACESEARCH_ADDRESS is 0.0.0.0:50051: the probe asks 127.0.0.1."""
    health_server.set(health_pb2.HealthCheckResponse.SERVING)
    result = probe(env={"FACESEARCH_ADDRESS": f"0.0.0.0:{health_server.port}"})
    assert result.returncode == 0, result.stderr


def test_probe_service_and_token(health_server):
    health_server.set(health_pb2.HealthCheckResponse.SERVING, "facesearch.v1.FaceSearch")
    target = f"127.0.0.1:{health_server.port}"
    assert probe("--address", target, "--service", "facesearch.v1.FaceSearch", "--token", "t").returncode == 0
    result = probe("--address", target, "--service", "no.such.Service")
    assert result.returncode == 1 and "no.such.Service" in result.stderr


def test_probe_nothing_listening_fails_fast():
    server = HealthServer()
    port = server.port
    server.stop()
    started = time.monotonic()
    result = probe("--address", f"127.0.0.1:{port}", "--timeout", "20")
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert "cannot reach" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert elapsed < 10, f"took {elapsed:.1f} s: the probe waited for a server that was not there"


def test_probe_usage_errors_exit_1_not_2():
    """Docker reserves health-check exit code 2."""
    result = probe("--no-such-flag")
    assert result.returncode == 1 and "usage:" in result.stderr
    help_ = probe("--help")
    assert help_.returncode == 0 and "--address" in help_.stdout and "FACESEARCH_ADDRESS" in help_.stdout


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a certificate")
def test_probe_tls_from_the_server_variables(tmp_path):
    """With FACESEARCH_TLS_CERT set (a self-signed certificate), the probe needs no flags."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=facesearch.test", "-addext", "subjectAltName=DNS:facesearch.test",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    server = HealthServer(grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())]))
    try:
        server.set(health_pb2.HealthCheckResponse.SERVING)
        env = {"FACESEARCH_ADDRESS": f"0.0.0.0:{server.port}", "FACESEARCH_TLS_CERT": str(cert),
               "FACESEARCH_TLS_KEY": str(key)}
        result = probe(env=env)
        assert result.returncode == 0, result.stderr
        assert probe("--no-tls", "--timeout", "2", env=env).returncode == 1
        assert probe("--server-name", "wrong.name", "--timeout", "2", env=env).returncode == 1
    finally:
        server.stop()
