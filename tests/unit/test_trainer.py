"""facesearch-trainer's maths without the model: losses and online mining against plain-numpy brute
force, balanced seeded batches, thresholds and calibration."""

from __future__ import annotations

import json

import numpy as np
import pytest
from keras import ops

from facesearch.trainer import losses, metrics
from facesearch.trainer.data import load_dataset
from facesearch.trainer.errors import TrainerError
from facesearch.trainer.sampling import BatchSampler

from tests.helpers import unit


def value(t) -> float:
    return float(ops.convert_to_numpy(t))


def brute_force(e, y, margin, mining):
    d = ((e[:, None] - e[None]) ** 2).sum(-1)
    out = []
    for a in range(len(e)):
        pos = [p for p in range(len(e)) if p != a and y[p] == y[a]]
        neg = [n for n in range(len(e)) if y[n] != y[a]]
        if not pos or not neg:
            continue
        if mining == "batch-hard":
            out.append(max(0.0, max(d[a, pos]) - min(d[a, neg]) + margin))
            continue
        for p in pos:
            farther = [d[a, n] for n in neg if d[a, n] > d[a, p]]
            chosen = min(farther) if farther else max(d[a, neg])
            out.append(max(0.0, d[a, p] - chosen + margin))
    return float(np.mean(out))


@pytest.mark.parametrize("mining", ["batch-hard", "semi-hard"])
def test_online_mining_matches_brute_force(mining):
    rng = np.random.default_rng(1)
    e, y = unit(rng, 24, 8), rng.integers(0, 4, 24).astype(np.float32)
    got = value(losses.triplet_loss(mining, 0.9)(y, e))
    assert got == pytest.approx(brute_force(e, y, 0.9, mining), rel=1e-4, abs=1e-5)
    assert got > 0


def test_random_triplet_loss_is_the_seeds():
    rng = np.random.default_rng(2)
    e = unit(rng, 30, 8)
    a, p, n = e[0::3], e[1::3], e[2::3]
    expected = np.maximum(((a - p) ** 2).sum(1) - ((a - n) ** 2).sum(1) + 0.9, 0).mean()
    assert value(losses.triplet_loss("random", 0.9)(np.zeros(30), e)) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="unknown mining"):
        losses.triplet_loss("hardest", 0.9)


def test_batches_are_balanced_and_seeded():
    labels = np.repeat(np.arange(5), [30, 3, 10, 2, 8])
    s = BatchSampler(labels, "random", 64)
    ids, y = s.sample(np.random.default_rng(0))
    t = ids.reshape(-1, 3)
    assert (labels[t[:, 0]] == labels[t[:, 1]]).all() and (t[:, 0] != t[:, 1]).all()
    assert (labels[t[:, 0]] != labels[t[:, 2]]).all()
    # anchors are drawn per class, not per image: the small classes get their share
    assert np.bincount(labels[t[:, 0]], minlength=5).min() >= 4
    again, _ = s.sample(np.random.default_rng(0))
    assert (again == ids).all()
    pk, y = BatchSampler(labels, "batch-hard", 16, 4).sample(np.random.default_rng(0))
    assert len(pk) == 16 and sorted(np.bincount(y.astype(int))[np.bincount(y.astype(int)) > 0]) == [4, 4, 4, 4]
    with pytest.raises(TrainerError, match="two identities"):
        BatchSampler(np.zeros(5), "random", 8)


def test_thresholds_and_calibration():
    neg = np.array([1.0, 2.0, 3.0, 4.0])
    assert metrics.threshold_at(neg, 0.0) < 1.0 and metrics.threshold_at(neg, 0.25) < 2.0
    assert metrics.threshold_at(neg, 0.25) >= 1.0
    d = np.array([0.5, 1.0, 1.5, 3.0, 3.5, 4.0])
    same = np.array([True, True, True, False, False, False])
    t, acc = metrics._best_threshold(d, same)
    assert 1.5 < t < 3.0 and acc == 1.0
    cv = metrics.cross_validated_accuracy(np.tile(d, 5), np.tile(same, 5), folds=5)
    assert cv["accuracy"] == 1.0 and 1.5 < cv["threshold"] < 3.0


def test_split_files_and_random_splits(samples, tmp_path):
    """The sample gallery's photos as a labelled folder: no model, the files are only hashed."""
    data = samples / "train"
    people = sorted(p.name for p in data.iterdir())
    ben = sorted(p.name for p in (data / "ben_afflek").glob("*.jpg"))
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": [f"ben_afflek/{n}" for n in ben[:3]] + ["madonna/nowhere.jpg"],
                                 "test": ben[3:5]}))
    ds = load_dataset(data, split)
    assert ds.people == people and (len(ds.train), len(ds.test)) == (3, 2)
    assert any("nowhere.jpg" in n for n in ds.notes) and any("in neither list" in n for n in ds.notes)
    again = load_dataset(data, test_fraction=0.2, seed=3)
    assert [s.path for s in again.test] == [s.path for s in load_dataset(data, test_fraction=0.2, seed=3).test]
    assert {s.person for s in again.test} == set(people)              # every person is held out once at least
    assert not {s.sha256 for s in again.train} & {s.sha256 for s in again.test}
    split.write_text("[1, 2]")
    with pytest.raises(TrainerError, match="cannot read the split"):
        load_dataset(data, split)
