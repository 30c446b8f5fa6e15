"""Class-balanced batches: the seed's random triplets, or P identities x K images."""

from __future__ import annotations

import numpy as np

from .errors import TrainerError

MININGS = ("random", "semi-hard", "batch-hard")   # see losses.py


class BatchSampler:
    def __init__(self, labels: np.ndarray, mining: str, batch_size: int, images_per_identity: int = 4):
        self.labels = np.asarray(labels)
        self.mining = mining
        self.batch_size = batch_size
        self.k = images_per_identity
        by_class = {int(c): np.flatnonzero(self.labels == c) for c in np.unique(self.labels)}
        self.by_class = by_class
        self.anchor_classes = np.array(sorted(c for c, idx in by_class.items() if len(idx) >= 2))
        if len(by_class) < 2 or len(self.anchor_classes) == 0:
            raise TrainerError("triplets need at least two identities, one of them with two or more usable images")

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(sample indices, labels) of one batch."""
        return self._random(rng) if self.mining == "random" else self._pk(rng)

    def _random(self, rng) -> tuple[np.ndarray, np.ndarray]:
        """The seed's get_batch_random: batch_size (anchor, positive, negative) triples."""
        classes = list(self.by_class)
        ids = np.empty((self.batch_size, 3), dtype=np.int64)
        for t in range(self.batch_size):
            c = int(rng.choice(self.anchor_classes))
            ids[t, :2] = rng.choice(self.by_class[c], 2, replace=False)
            other = classes[int(rng.integers(len(classes) - 1))]
            other = other if other != c else classes[-1]
            ids[t, 2] = rng.choice(self.by_class[other])
        ids = ids.reshape(-1)
        return ids, self.labels[ids]

    def _pk_shape(self) -> tuple[int, int]:
        """(P identities, K images each); with fewer identities than P, each gives more images."""
        p = max(2, self.batch_size // self.k)
        n_classes = len(self.anchor_classes)
        if p <= n_classes:
            return p, self.k
        return n_classes, max(2, self.batch_size // n_classes)

    def _pk(self, rng) -> tuple[np.ndarray, np.ndarray]:
        """P identities x K images (K = images_per_identity), balanced by class."""
        p, k = self._pk_shape()
        chosen = rng.choice(self.anchor_classes, p, replace=False)
        ids = []
        for c in chosen:
            pool = self.by_class[int(c)]
            ids.append(rng.choice(pool, k, replace=len(pool) < k))
        ids = np.concatenate(ids)
        return ids, self.labels[ids]

    def triplets_per_batch(self) -> int:
        """Anchors per step: the triplets (random) or the batch's images (online mining)."""
        if self.mining == "random":
            return self.batch_size
        p, k = self._pk_shape()
        return p * k
