"""Trainer speed: steps/s and triplets/s with the cached frozen-base features (the default)
against running the whole network each step (--no-feature-cache), at the same batch size.

    .venv/bin/python -m bench.trainer [--batch-size 32] [--steps 5]

Uses the seed's Avengers crops and split. The feature pass (every train and test image,
times --augment-copies) is timed on its own: it is paid once per data set and cut.
Ratios are measured in one run; this machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from bench import common

from facesearch.embedder import FaceMode
from facesearch.trainer.train import Run, TrainConfig


def timed_steps(run: Run, steps: int) -> float:
    x, y = run.batch()
    run.trained.train_on_batch(x, y)          # trace once, untimed
    t = time.perf_counter()
    for _ in range(steps):
        x, y = run.batch()
        run.trained.train_on_batch(x, y)
    return steps / (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=32, help="triplets per step for both paths [32]")
    parser.add_argument("--seed-batch-size", type=int, default=128, help="also time the cached path at this [128]")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per path [5]")
    parser.add_argument("--augment-copies", type=int, default=4)
    args = parser.parse_args()

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        def config(**kw):
            return TrainConfig(data=common.AVENGERS, split=common.AVENGERS / "seed_split.json", out=Path(tmp) / "out",
                               face_mode=FaceMode.CROPPED, augment_copies=args.augment_copies,
                               cache_dir=Path(tmp) / "cache", progress=False, **kw)

        t = time.perf_counter()
        cached = Run(config(batch_size=args.batch_size)).prepare()
        prepare_s = time.perf_counter() - t
        n_images = (len(cached.dataset.train) + len(cached.dataset.test)) * args.augment_copies
        results["feature_pass"] = {"images": n_images, "seconds": cached.timings["features_s"],
                                   "images_per_s": n_images / cached.timings["features_s"],
                                   "prepare_total_s": prepare_s}
        cached_sps = timed_steps(cached, args.steps)
        full = Run(config(batch_size=args.batch_size, feature_cache=False)).prepare()
        full_sps = timed_steps(full, args.steps)
        seed = Run(config(batch_size=args.seed_batch_size)).prepare()
        seed_sps = timed_steps(seed, args.steps)

    b = args.batch_size
    results["paths"] = {
        "whole_network": {"batch_triplets": b, "steps_per_s": full_sps, "triplets_per_s": full_sps * b},
        "cached_features": {"batch_triplets": b, "steps_per_s": cached_sps, "triplets_per_s": cached_sps * b},
        "cached_features_seed_batch": {"batch_triplets": args.seed_batch_size, "steps_per_s": seed_sps,
                                       "triplets_per_s": seed_sps * args.seed_batch_size},
    }
    results["speedup_cached_vs_whole_network"] = cached_sps / full_sps
    steps_seed = 20 * -(-len(seed.dataset.train) // args.seed_batch_size)
    results["seed_schedule"] = {"epochs": 20, "steps": steps_seed,
                                "estimated_s_cached": results["feature_pass"]["seconds"] + steps_seed / seed_sps}
    results["device"] = cached.hardware
    print(f"feature pass: {n_images} images in {results['feature_pass']['seconds']:.1f} s "
          f"({results['feature_pass']['images_per_s']:.1f} img/s), once per data set")
    for name, r in results["paths"].items():
        print(f"{name:28} batch {r['batch_triplets']:4d}: {r['steps_per_s']:7.3f} steps/s "
              f"{r['triplets_per_s']:8.1f} triplets/s")
    print(f"cached features vs whole network, same batch: x{results['speedup_cached_vs_whole_network']:.1f}")
    print(f"the seed's schedule ({steps_seed} steps of {args.seed_batch_size}): about "
          f"{results['seed_schedule']['estimated_s_cached']:.0f} s with the feature cache")
    common.write("trainer", {"args": vars(args), **results})


if __name__ == "__main__":
    main()
