"""A real Milvus 2.3 standalone server (PyPI `milvus`, "embedded Milvus") kept on loopback.

The server binary listens on every interface for its gRPC ports (proxy, coordinators,
nodes, metrics: Milvus 2.3 binds ":port", whatever `*.ip` says). So that nothing of it
is reachable from outside this machine, it runs in a private network namespace
(`unshare -n` as root, `unshare -rn` otherwise) where only loopback exists; a relay
joins 127.0.0.1:<port> here to the proxy there through a Unix socket. Where no
namespace can be made, `MILVUS_ANY_INTERFACE=1` starts it directly instead, and so
does `CI` being set (a throw-away runner, where unprivileged namespaces are often
refused); otherwise start() raises MilvusUnavailable.

    with MilvusServer(folder) as server:
        MilvusClient(uri=server.uri)

Used by the tests' session fixture (tests/conftest.py) and bench/backends.py.
Run as `python -m bench.milvus_server <base dir> <unix socket>` it is the child that
lives in the namespace.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

READY = "MILVUS-READY"


class MilvusUnavailable(RuntimeError):
    pass


def _pipe(a: socket.socket, b: socket.socket) -> None:
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def relay(listener: socket.socket, connect) -> None:
    """Accept on listener forever; join each connection to a fresh connect() both ways."""
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        try:
            upstream = connect()
        except OSError:
            client.close()
            continue
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _loopback_up() -> None:
    """`ip link set lo up` without iproute2: SIOCGIFFLAGS / SIOCSIFFLAGS on lo."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s, 0x8913, req))[1]
        fcntl.ioctl(s, 0x8914, struct.pack("16sh", b"lo", flags | 0x1))


def _start_embedded(base_dir: Path):
    """Start the embedded server in this network namespace; every port chosen free on 127.0.0.1."""
    from milvus import MilvusServer as Embedded

    server = Embedded()
    server.set_base_dir(str(base_dir))
    for component in ("rootCoord", "proxy", "queryCoord", "queryNode", "indexCoord", "indexNode",
                      "dataCoord", "dataNode"):
        server.config.set(f"{component}.ip", "127.0.0.1")   # what it registers in etcd
    server.start()   # etcd embedded on 127.0.0.1, storage local files, rocksmq: no MinIO, no Pulsar
    return server


def child(base_dir: str, sock_path: str) -> None:
    _loopback_up()
    server = _start_embedded(Path(base_dir))
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(sock_path)
    listener.listen(64)
    port = server.listen_port
    threading.Thread(target=relay, args=(listener, lambda: socket.create_connection(("127.0.0.1", port))),
                     daemon=True).start()
    print(READY, flush=True)
    try:
        sys.stdin.read()   # the parent closes stdin (or dies): stop
    finally:
        server.stop()


def _namespace_prefix() -> list[str] | None:
    unshare = shutil.which("unshare")
    if not unshare:
        return None
    for prefix in ([unshare, "-n"], [unshare, "-rn"]):
        if subprocess.run(prefix + ["true"], capture_output=True).returncode == 0:
            return prefix
    return None


class MilvusServer:
    """A Milvus standalone server for this process; uri is http://127.0.0.1:<port>."""

    def __init__(self, folder: Path, timeout: float = 120):
        self.folder = Path(folder)
        self.timeout = timeout
        self.uri = ""
        self.isolated = False
        self._proc = None
        self._embedded = None
        self._listener = None

    def start(self) -> "MilvusServer":
        try:
            import milvus  # noqa: F401
        except ImportError:
            raise MilvusUnavailable("the `milvus` package (embedded Milvus 2.3) is not installed "
                                    "(pip install -e '.[test]', as make install does)") from None
        self.folder.mkdir(parents=True, exist_ok=True)
        prefix = _namespace_prefix()
        if prefix is None:
            if os.environ.get("MILVUS_ANY_INTERFACE") != "1" and not os.environ.get("CI"):
                raise MilvusUnavailable("no private network namespace (unshare -n / -rn) to keep Milvus's "
                                        "ports off the network; MILVUS_ANY_INTERFACE=1 starts it anyway")
            self._embedded = _start_embedded(self.folder / "milvus")
            self.uri = f"http://127.0.0.1:{self._embedded.listen_port}"
            return self
        sock_path = str(self.folder / "proxy.sock")
        repo = Path(__file__).resolve().parent.parent
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")])))
        self._proc = subprocess.Popen(prefix + [sys.executable, "-m", "bench.milvus_server",
                                                str(self.folder / "milvus"), sock_path],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True, env=env, cwd=repo)
        deadline, lines = time.monotonic() + self.timeout, []
        while time.monotonic() < deadline:
            line = self._proc.stdout.readline()
            if not line:
                break
            if line.strip() == READY:
                break
            lines.append(line)
        else:
            line = ""
        if line.strip() != READY:
            self.stop()
            raise MilvusUnavailable("Milvus did not start: " + "".join(lines[-20:]).strip()[-2000:])
        threading.Thread(target=self._proc.stdout.read, daemon=True).start()   # keep draining its output
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)

        def connect():
            s = socket.socket(socket.AF_UNIX)
            s.connect(sock_path)
            return s

        threading.Thread(target=relay, args=(self._listener, connect), daemon=True).start()
        self.uri = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.isolated = True
        return self

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._proc is not None:
            try:
                self._proc.stdin.close()
                self._proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait(timeout=10)
            self._proc = None
        if self._embedded is not None:
            self._embedded.stop()
            self._embedded = None

    def __enter__(self) -> "MilvusServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":
    child(sys.argv[1], sys.argv[2])
