"""The labelled gallery: <person>/<images>, split into train and held-out test."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facesearch.embedder import EmbedderConfig, FaceMode
from facesearch.embedder.distances import DEFAULT_CUTOFF
from facesearch.files import sha256_file
from facesearch.sources import SourceError, scan

from .errors import TrainerError


@dataclass(kw_only=True)
class DataConfig:
    """What train, evaluate and calibrate share: the model, the data and split, the report's cutoffs."""
    data: Path
    model: str = "facenet-128"
    split: Path | None = None
    test_fraction: float = 0.2
    seed: int = 0
    face_mode: FaceMode = FaceMode.DETECT
    cutoff: float = DEFAULT_CUTOFF           # acceptance is reported at this service cutoff
    target_fpir: float = 0.01                # the recommended max_distance reaches this open-set FPIR
    target_fnir: float = 0.01                # gallery calibration (the service's Calibrate) on the train images
    detector: str | None = None              # the crop pass's detector; None: FACESEARCH_DETECTOR
    cache_dir: Path = field(default_factory=lambda: EmbedderConfig.from_env().cache_dir / "trainer")
    progress: bool = True

    def embedder_config(self) -> EmbedderConfig:
        """The embedder's settings for this run: FACESEARCH_* variables, with this model and detector."""
        return EmbedderConfig.from_env(model=self.model, **({"detector": self.detector} if self.detector else {}))


@dataclass(frozen=True)
class Sample:
    path: Path
    person: str
    sha256: str


@dataclass
class Dataset:
    people: list[str]
    train: list[Sample]
    test: list[Sample]
    notes: list[str] = field(default_factory=list)   # what was skipped, and why

    def labels(self, samples: list[Sample]) -> np.ndarray:
        index = {p: i for i, p in enumerate(self.people)}
        return np.array([index[s.person] for s in samples], dtype=np.int64)

    def without(self, rejected: set[str]) -> "Dataset":
        """The same split minus samples whose sha256 is in `rejected` (no usable face)."""
        keep = [s for s in self.train if s.sha256 not in rejected], [s for s in self.test if s.sha256 not in rejected]
        return Dataset(self.people, keep[0], keep[1], list(self.notes))


def load_dataset(data: Path, split_file: Path | None = None, test_fraction: float = 0.2,
                 seed: int = 0) -> Dataset:
    try:
        items = scan(Path(data))
    except SourceError as exc:
        raise TrainerError(str(exc)) from None
    samples = [Sample(item.path, item.identity_id, sha256_file(item.path)) for item in items]
    people = sorted({s.person for s in samples})
    if split_file is not None:
        train, test, notes = _split_from_file(samples, Path(split_file))
    else:
        train, test, notes = _random_split(samples, test_fraction, seed)
    if not train:
        raise TrainerError("the split leaves no training images")
    return Dataset(people, train, test, notes)


def _random_split(samples: list[Sample], fraction: float, seed: int):
    if not 0.0 <= fraction < 1.0:
        raise TrainerError(f"--test-fraction must be in [0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for person in sorted({s.person for s in samples}):
        own = [s for s in samples if s.person == person]
        order = rng.permutation(len(own))
        n_test = int(round(fraction * len(own)))
        n_test = min(max(n_test, 1 if fraction > 0 and len(own) >= 2 else 0), len(own) - 1)
        test += [own[i] for i in sorted(order[:n_test])]
        train += [own[i] for i in sorted(order[n_test:])]
    return train, test, []


def _names(groups) -> list[str]:
    out = []
    for g in groups:
        out += [g] if isinstance(g, str) else list(g)
    return out


def _split_from_file(samples: list[Sample], path: Path):
    """The seed's seed_split.json ({"train_name": [[file, ...] per person], "test_name": ...}),
    or {"train": [...], "test": [...]}; entries are file names or <person>/<file> paths."""
    try:
        doc = json.loads(path.read_text())
        train_names = _names(doc.get("train_name", doc.get("train")))
        test_names = _names(doc.get("test_name", doc.get("test")))
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise TrainerError(f"cannot read the split {path}: {exc}; expected train_name/test_name lists") from None
    by_key = {}
    for s in samples:
        by_key[s.path.name] = s
        by_key[f"{s.person}/{s.path.name}"] = s
    notes, out = [], []
    for names in (train_names, test_names):
        found = [by_key[n] for n in names if n in by_key]
        missing = [n for n in names if n not in by_key]
        if missing:
            notes.append(f"{len(missing)} file(s) named in {path.name} are not in the data: {', '.join(missing[:5])}")
        out.append(found)
    overlap = {s.sha256 for s in out[0]} & {s.sha256 for s in out[1]}
    if overlap:
        raise TrainerError(f"{path}: {len(overlap)} image(s) are in both train and test")
    unused = len(samples) - len(out[0]) - len(out[1])
    if unused:
        notes.append(f"{unused} image(s) in the data are in neither list of {path.name}; not used")
    return out[0], out[1], notes
