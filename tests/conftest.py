"""Shared fixtures: the real model, loaded once per test run, and the data sets."""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("FACESEARCH_SHARED", REPO.parent / "shared"))
AVENGERS = SHARED / "data" / "avengers"


@pytest.fixture(scope="session")
def embedder():
    from facesearch.embedder import Embedder, EmbedderConfig

    return Embedder.load(EmbedderConfig.from_env(model="facenet-128"))


@pytest.fixture(scope="session")
def weights_cache():
    from facesearch.embedder import WeightsCache

    return WeightsCache()


@pytest.fixture(scope="session")
def samples(weights_cache) -> Path:
    """The 5-celebrity sample gallery (always available: it ships with the weights)."""
    return weights_cache.sample_gallery()


@pytest.fixture(scope="session")
def avengers_split():
    """The seed's Avengers crops and 80/20 split as (train, test) lists of (person, path)."""
    split_file = AVENGERS / "seed_split.json"
    if not split_file.is_file():
        pytest.skip(f"the seed's Avengers data is not at {AVENGERS} (set FACESEARCH_SHARED to the shared/ folder)")
    split = json.loads(split_file.read_text())
    people = sorted(p.name for p in AVENGERS.iterdir() if p.is_dir())

    def person_of(name: str) -> str:
        return max((p for p in people if name.startswith(p)), key=len)

    def resolve(groups):
        out = []
        for group in groups:
            for name in group:
                path = AVENGERS / person_of(name) / name
                if path.is_file():  # scarlett_johansson8.png is missing from the seed's data
                    out.append((person_of(name), path))
        return out

    return resolve(split["train_name"]), resolve(split["test_name"])


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


# -- databases: SQLite (a file in the data directory) and a real PostgreSQL -----------------
@pytest.fixture(scope="session")
def postgres_server():
    """PostgreSQL 16 from pgserver (the test extra), in a temporary folder, for the whole run.

    Skipped with the reason only where pgserver cannot be imported or started; under CI
    (CI set in the environment) that is a failure instead, so the PostgreSQL tests cannot
    silently vanish there.
    """
    import shutil
    import tempfile
    import warnings

    def unavailable(reason: str):
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL tests cannot run: {reason}")
        pytest.skip(f"PostgreSQL tests skipped: {reason}")

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # platformdirs warns when XDG_RUNTIME_DIR is unset
            import pgserver
    except ImportError:
        unavailable("pgserver is not installed (pip install -e '.[test]', as make install does)")
    folder = tempfile.mkdtemp(prefix="facesearch-pg-")   # short: the server's socket lives here
    try:
        server = pgserver.get_server(folder, cleanup_mode="delete")
    except Exception as exc:
        shutil.rmtree(folder, ignore_errors=True)
        unavailable(f"pgserver could not start PostgreSQL: {exc}")
    yield server
    server.cleanup()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server):
    """A database of its own for one test (created empty, dropped afterwards)."""
    import uuid

    from sqlalchemy import create_engine, make_url, text

    base = make_url(postgres_server.get_uri()).set(drivername="postgresql+psycopg")
    name = f"test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield base.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request) -> str:
    """Each database the gallery supports, as a GalleryConfig.database_url ("" = SQLite in data_dir)."""
    return "" if request.param == "sqlite" else request.getfixturevalue("postgres_url")


# -- a real Milvus server (embedded Milvus 2.3 standalone, the test extra) --------------------------
@pytest.fixture(scope="session")
def milvus_server():
    """One Milvus standalone server for the whole run, on 127.0.0.1 only (bench/milvus_server.py).

    Skipped with the reason where it cannot start (no `milvus` package, no private network
    namespace to keep its ports off the network); under CI that is a failure, as for PostgreSQL.
    """
    import shutil
    import tempfile

    from bench.milvus_server import MilvusServer, MilvusUnavailable

    folder = tempfile.mkdtemp(prefix="facesearch-milvus-")   # short: the relay's Unix socket lives here
    server = MilvusServer(Path(folder))
    try:
        server.start()
    except MilvusUnavailable as exc:
        shutil.rmtree(folder, ignore_errors=True)
        if os.environ.get("CI"):
            pytest.fail(f"Milvus server tests cannot run: {exc}")
        pytest.skip(f"Milvus server tests skipped: {exc}")
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def milvus_server_uri(milvus_server) -> str:
    return milvus_server.uri
