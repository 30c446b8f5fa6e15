"""The clustering core (facesearch.gallery.clustering) on synthetic vectors: no model."""

from __future__ import annotations

import numpy as np
import pytest

from facesearch.embedder.distances import pairwise
from facesearch.gallery import clustering
from tests.helpers import unit


def people(rng, centres: int, per: int, noise: float = 0.03) -> tuple[np.ndarray, np.ndarray]:
    """`per` faces around each of `centres` random people, shuffled; (vectors, true person)."""
    c = unit(rng, centres)
    truth = np.repeat(np.arange(centres), per)
    x = c[truth] + rng.normal(scale=noise, size=(len(truth), c.shape[1])).astype(np.float32)
    order = rng.permutation(len(truth))
    return (x / np.linalg.norm(x, axis=1, keepdims=True))[order], truth[order]


def test_recovers_people_and_leaves_strangers_out():
    rng = np.random.default_rng(1)
    x, truth = people(rng, 30, 6)
    strangers = unit(rng, 10)
    labels = clustering.cluster(np.concatenate([x, strangers]), max_distance=2.2, min_faces=2)
    assert (labels[len(x):] == -1).all()          # lone faces stay unclustered
    found = labels[:len(x)]
    assert (found >= 0).all() and labels.max() == 29
    for c in range(30):                            # each cluster is exactly one person's faces
        assert len(set(truth[found == c])) == 1 and (found == c).sum() == 6


def test_largest_first_and_small_clusters_dissolved():
    rng = np.random.default_rng(2)
    sizes = [2, 9, 4, 1, 7]
    c = unit(rng, len(sizes))
    x = np.concatenate([np.repeat(c[i:i + 1], n, 0) + rng.normal(scale=0.02, size=(n, 128)).astype(np.float32)
                        for i, n in enumerate(sizes)])
    labels = clustering.cluster(x / np.linalg.norm(x, axis=1, keepdims=True), max_distance=2.2, min_faces=3)
    counts = [int((labels == c).sum()) for c in range(labels.max() + 1)]
    assert counts == [9, 7, 4]
    assert (labels == -1).sum() == 3               # the pair and the single face


def test_deterministic_and_order_free_up_to_tie_breaks():
    rng = np.random.default_rng(3)
    x, _ = people(rng, 40, 5, noise=0.05)
    a = clustering.cluster(x, 2.2, 2)
    assert (a == clustering.cluster(x.copy(), 2.2, 2)).all()
    perm = rng.permutation(len(x))
    b = clustering.cluster(x[perm], 2.2, 2)
    # the same partition, whatever the order (labels may be renumbered among clusters of equal size)
    same_a = a[:, None] == a[None, :]
    same_b = np.empty_like(same_a)
    same_b[np.ix_(perm, perm)] = b[:, None] == b[None, :]
    assert (same_a == same_b).all()


def test_ivf_path_above_the_exact_limit(monkeypatch):
    monkeypatch.setattr(clustering, "EXACT_UP_TO", 500)
    rng = np.random.default_rng(4)
    x, truth = people(rng, 200, 5)
    labels = clustering.cluster(x, 2.2, 3)
    assert labels.max() == 199 and (labels >= 0).all()
    assert all(len(set(truth[labels == c])) == 1 for c in range(200))
    assert (labels == clustering.cluster(x, 2.2, 3)).all()


def test_edge_cases():
    assert clustering.cluster(np.zeros((0, 128), np.float32), 2.2, 2).shape == (0,)
    one = unit(np.random.default_rng(5), 1)
    assert clustering.cluster(one, 2.2, 2).tolist() == [-1]
    assert clustering.cluster(one, 2.2, 1).tolist() == [0]
    with pytest.raises(ValueError):
        clustering.cluster(one, 2.2, 0)



def test_attachment_adds_lone_faces_one_step_only():
    rng = np.random.default_rng(6)
    a, b = unit(rng, 2)
    x = np.concatenate([a + rng.normal(scale=0.02, size=(5, 128)), b + rng.normal(scale=0.02, size=(5, 128)),
                        [a + 1.5 * unit(rng, 1)[0]]]).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    step = x[10] + 1.5 * unit(rng, 1)[0]           # a face beyond a's harder photo x[10], reachable only through it
    x = np.concatenate([x, [step / np.linalg.norm(step)]])
    d = pairwise(x, x)
    assert 2.4 < d[10, :5].min() < 3.0 and 2.4 < d[11, 10] < 3.0 < d[11, :10].min()
    plain = clustering.cluster(x, 2.4, 2)
    assert plain[10] == -1 and plain[11] == -1
    attached = clustering.cluster(x, 2.4, 2, attach_distance=3.0)
    assert attached[10] == attached[0] != attached[5]   # the harder photo joins its person
    assert attached[11] == -1                            # but attached faces attach nothing further
