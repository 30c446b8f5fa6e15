"""A facesearch-server subprocess on an ephemeral port: the harness of tests, benchmarks and load tests.

    proc = ServerProcess(data_dir, "--metrics-port", "9464").start()   # waits for SERVING
    proc.target                                                        # gRPC: "127.0.0.1:<port>"
    proc.http_url                                                      # REST: "http://127.0.0.1:<port>"
    proc.terminate()                                                   # SIGTERM, returns the exit code

It starts the real server as a subprocess (by module name), so it imports none of the server's code.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(self, data_dir: Path, *args: str, env: dict | None = None):
        self.data_dir = Path(data_dir)
        self.args = ["--address", "127.0.0.1:0", *args]
        if "--http-address" not in args:  # REST on an ephemeral port too (--http-address "" turns it off)
            self.args += ["--http-address", "127.0.0.1:0"]
        if "--warmup-batch" not in args:  # tests start many servers: one blank batch of 1 traces the model
            self.args += ["--warmup-batch", "1"]
        self.env = {**os.environ, "FACESEARCH_DATA_DIR": str(data_dir), "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
        self.lines: list[str] = []
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.http_port: int | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        scheme = "https" if "--tls-cert" in self.args or "FACESEARCH_TLS_CERT" in (self.env or {}) else "http"
        return f"{scheme}://127.0.0.1:{self.http_port}"

    @property
    def grpc(self) -> bool:
        return "--no-grpc" not in self.args

    def start(self, timeout: float = 180.0, credentials=None, wait_serving: bool = True) -> "ServerProcess":
        self.lines, self.port, self.http_port = [], None, None
        self.proc = subprocess.Popen([sys.executable, "-m", "facesearch.server.cli", *self.args], env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while (self.port if self.grpc else self.http_port) is None:
            self._alive_or_fail()
            if time.monotonic() > deadline:
                raise TimeoutError("server did not start listening:\n" + self.log())
            time.sleep(0.05)
        if wait_serving:
            self.wait_serving(deadline - time.monotonic(), credentials)
        return self

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())
            if '"msg": "listening"' in line:
                self.port = int(json.loads(line)["address"].rsplit(":", 1)[1])
            elif '"msg": "http listening"' in line:
                self.http_port = int(json.loads(line)["address"].rsplit(":", 1)[1])

    def _alive_or_fail(self) -> None:
        if self.proc.poll() is not None:
            time.sleep(0.2)
            raise RuntimeError(f"server exited with {self.proc.returncode}:\n" + self.log())

    def log(self) -> str:
        return "\n".join(self.lines[-40:])

    def health(self, credentials=None, service: str = "") -> int:
        """grpc.health.v1 Check (with credentials: TLS, for a certificate made out to localhost)."""
        options = [("grpc.ssl_target_name_override", "localhost")] if credentials is not None else []
        channel = (grpc.secure_channel(self.target, credentials, options) if credentials is not None
                   else grpc.insecure_channel(self.target))
        with channel:
            request = health_pb2.HealthCheckRequest(service=service)
            return health_pb2_grpc.HealthStub(channel).Check(request, timeout=5).status

    def ready(self) -> bool:
        """GET /readyz answers 200 (REST only: --no-grpc)."""
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"{self.http_url}/readyz", timeout=5) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_serving(self, timeout: float, credentials=None) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self._alive_or_fail()
            try:
                if self.grpc and self.health(credentials) == health_pb2.HealthCheckResponse.SERVING:
                    return
                if not self.grpc and self.ready():
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("server never reported SERVING:\n" + self.log())
            time.sleep(0.2)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def terminate(self, timeout: float = 60) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
