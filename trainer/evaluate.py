"""`evaluate` and `calibrate`: any model spec the service loads, on a labelled split."""

from __future__ import annotations

import numpy as np

from facesearch.embedder import Embedder, EmbedderConfig

from . import metrics
from .crops import CropCache
from .data import DataConfig, load_dataset

EvalConfig = DataConfig   # evaluate and calibrate need nothing more


def evaluate_model(cfg: EvalConfig, embedder: Embedder | None = None) -> dict:
    """The report of metrics.evaluate, plus the model id and dataset notes."""
    dataset = load_dataset(cfg.data, cfg.split, cfg.test_fraction, cfg.seed)
    embedder_config = cfg.embedder_config()
    crops, rejected = CropCache(cfg.cache_dir, cfg.face_mode, embedder_config).load(
        dataset.train + dataset.test, cfg.progress)
    dataset = dataset.without(set(rejected))
    if not dataset.test:
        from .errors import TrainerError

        raise TrainerError("the split leaves no held-out images to evaluate on; use --split or --test-fraction")
    embedder = embedder or Embedder.load(embedder_config)

    def embed(samples) -> np.ndarray:
        return embedder.embed_crops([crops[s.sha256] for s in samples])

    ev = metrics.evaluate(embed(dataset.train), dataset.labels(dataset.train), embed(dataset.test),
                          dataset.labels(dataset.test), dataset.people, cutoff=cfg.cutoff,
                          target_fpir=cfg.target_fpir, target_fnir=cfg.target_fnir, seed=cfg.seed)
    ev["model_id"] = embedder.model_id
    ev["notes"] = dataset.notes + [f"no usable face, skipped: {why}" for why in rejected.values()]
    return ev
