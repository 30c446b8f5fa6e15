"""Plain helpers that tests import (fixtures live in tests/conftest.py)."""

from __future__ import annotations

import io
import socket
import struct
import threading
import zlib
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def unit(rng: np.random.Generator, n: int, d: int = 128) -> np.ndarray:
    """n random unit vectors of dimension d, float32."""
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def encode(rgb: np.ndarray, fmt: str = "PNG", **kwargs) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def sample_photo(samples: Path, split: str = "val", person: str = "ben_afflek") -> bytes:
    return sorted((samples / split / person).glob("*.jpg"))[0].read_bytes()


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG that declares a huge canvas; its few bytes would decompress to gigabytes."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
            + chunk(b"IEND", b""))


class Outage:
    """A TCP relay on 127.0.0.1 in front of a server, that can be cut and restored on the same port:
    clients of relay.uri see the server go away (connections reset, new ones refused) and come back."""

    def __init__(self, host: str, port: int):
        self.upstream = (host, port)
        self.port = None
        self._sockets: list = []
        self._listener = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def restore(self) -> "Outage":
        from bench.milvus_server import relay   # bench/ is imported only where the relay is used

        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port or 0))
        listener.listen(64)
        self.port, self._listener = listener.getsockname()[1], listener

        def connect():
            upstream = socket.create_connection(self.upstream)
            self._sockets.append(upstream)
            return upstream

        threading.Thread(target=relay, args=(listener, connect), daemon=True).start()
        return self

    def cut(self) -> None:
        try:
            self._listener.shutdown(socket.SHUT_RDWR)   # wakes the relay's accept(); close() alone would not
        except OSError:
            pass
        self._listener.close()
        for s in self._sockets:   # the upstream ends: each relay thread then closes its client end too
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._sockets.clear()
