"""Shared fixtures: the real model and one server, each started once per test run, and the data sets.

Levels: tests/unit needs no model (`make test-fast`), tests/integration loads the model and real
galleries in-process, tests/e2e runs servers and CLIs as subprocesses. Each test is marked with its
level, so `pytest -m "not e2e"` works too.

Data: the 5-celebrity sample gallery ships with the weights (`make install`), so tests that need
faces use it, or crops made from it once per session. The seed's Avengers crops are only where CI
puts them (FACESEARCH_SHARED, or ../shared beside the repository): the tests that reproduce the
seed's figures on them take the `avengers` fixture, which owns the one skip when they are absent.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.helpers import REPO

SHARED = Path(os.environ.get("FACESEARCH_SHARED", REPO.parent / "shared"))
AVENGERS = SHARED / "data" / "avengers"
LEVELS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(items):
    for item in items:
        level = item.path.resolve().relative_to(REPO / "tests").parts[0]
        if level in LEVELS:
            item.add_marker(level)


# -- the model and the data --------------------------------------------------------------------
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
def sample_people(samples) -> list[str]:
    return sorted(p.name for p in (samples / "train").iterdir() if p.is_dir())


@pytest.fixture(scope="session")
def sample_crops(embedder, samples, sample_people, tmp_path_factory) -> Path:
    """Four face crops per person, <person>/<photo>.jpg, cut from the sample gallery's train photos
    by the real detector: a small labelled gallery for FACE_MODE_CROPPED (e.g. short training runs)."""
    from facesearch.embedder import decode, primary_face
    from facesearch.embedder.images import encode_jpeg

    root = tmp_path_factory.mktemp("sample-crops")
    photos = [p for person in sample_people for p in sorted((samples / "train" / person).glob("*.jpg"))[:6]]
    images = [decode(p.read_bytes()) for p in photos]
    for path, rgb, faces in zip(photos, images, embedder.find_faces_many(images)):
        folder = root / path.parent.name
        face = primary_face(faces, rgb.shape)
        if face is not None and len(list(folder.glob("*.jpg"))) < 4:
            folder.mkdir(exist_ok=True)
            (folder / f"{path.stem}.jpg").write_bytes(encode_jpeg(face.crop))
    counts = {person: len(list((root / person).glob("*.jpg"))) for person in sample_people}
    assert set(counts.values()) == {4}, f"the detector found too few faces in the sample gallery: {counts}"
    return root


@pytest.fixture(scope="session")
def avengers() -> Path:
    """The seed's Avengers crops and seed_split.json; the one place that skips when they are absent."""
    if not (AVENGERS / "seed_split.json").is_file():
        pytest.skip(f"reproduces the seed's figures on its Avengers data, which is not at {AVENGERS} "
                    "(CI has it; set FACESEARCH_SHARED to the folder holding data/avengers)")
    return AVENGERS


@pytest.fixture(scope="session")
def avengers_split(avengers):
    """The seed's Avengers crops and 80/20 split as (train, test) lists of (person, path)."""
    split = json.loads((avengers / "seed_split.json").read_text())
    people = sorted(p.name for p in avengers.iterdir() if p.is_dir())

    def person_of(name: str) -> str:
        return max((p for p in people if name.startswith(p)), key=len)

    def resolve(groups):
        out = []
        for group in groups:
            for name in group:
                path = avengers / person_of(name) / name
                if path.is_file():  # scarlett_johansson8.png is missing from the seed's data
                    out.append((person_of(name), path))
        return out

    return resolve(split["train_name"]), resolve(split["test_name"])


@pytest.fixture(scope="session")
def trainer_cache(tmp_path_factory) -> Path:
    """The trainer's feature cache, shared by the training and evaluation tests of a session."""
    return tmp_path_factory.mktemp("trainer-cache")


# -- one server for the session ----------------------------------------------------------------
@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """A facesearch-server subprocess on an empty data directory, started once and shared by the
    e2e tests that use it: each enrols under identity ids of its own and checks counts as differences,
    so what others left behind does not change its answers. Tests that need another configuration,
    an empty gallery, a kill or a restart start their own ServerProcess."""
    from facesearch.testing import ServerProcess, free_port

    metrics_port = free_port()
    proc = ServerProcess(tmp_path_factory.mktemp("served"), "--metrics-port", str(metrics_port),
                         "--max-enroll-images", "500")
    proc.metrics_port = metrics_port
    proc.start()
    yield proc
    proc.stop()


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
