"""Plain helpers that tests import (fixtures live in tests/conftest.py)."""

from __future__ import annotations

import io
import struct
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
