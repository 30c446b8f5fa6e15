"""Shared fixtures: the real model, loaded once per test run, and the data sets."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.helpers import REPO

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
