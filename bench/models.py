"""Detectors and models, in one run: what each costs and what each separates.

    .venv/bin/python -m bench.models [--rounds 3] [--no-open-set]

1. Detection: ms per photo of each detector over the 25 sample val photos, 16 photos a call
   (the server's FACESEARCH_DETECT_BATCH), interleaved rounds; and the photos and Avengers crops
   in which each finds a face.
2. Embedding throughput at batch 64: facenet-128 and facenet-128+sface on the same crops,
   interleaved rounds, and their ratio.
3. Accuracy of every model and detector pair, on the 5-celebrity photos (118, the primary face
   of each) and on the seed's Avengers crops (273, each run through the detector too), each set
   cut to the images where both detectors find a face:
   genuine and impostor distances (service scale), their separation d', TAR at FAR 1e-3 over
   every pair, and 10-fold accuracy over the genuine pairs and as many impostor pairs (drawn
   with a fixed seed), in the style of a 6,000-pair benchmark. FaceNet and SFace alone come
   from the fused vector's halves, so all three see the same crops.
4. The fusion weight: the same figures for SFace's share of the squared distance from 0 to 1, and
   each model's spread on the train photos (embedder/models.py FUSION_SPREADS).
5. Open set on the Avengers seed split (facenet-128, each detector; --no-open-set skips it):
   top-1 and strangers rejected at the 3.5 cutoff, as the trainer's `evaluate` reports them.
Writes bench/results/models.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import common

from facesearch.embedder import Embedder, EmbedderConfig, FaceMode, WeightsCache, decode, primary_face
from facesearch.embedder.detectors import DETECTORS, create_detector
from facesearch.embedder.models import DEFAULT_MODEL_ID, FUSED_MODEL_ID, LoadedModel, load_model
from facesearch.trainer import metrics

FAR = 1e-3


def pair_figures(v: np.ndarray, people: np.ndarray, seed: int = 0) -> dict:
    """Distances of every pair of rows of v (unit vectors) and what they separate."""
    iu = np.triu_indices(len(v), 1)
    d = (3.0 * np.sum((v[:, None] - v[None, :]) ** 2, axis=-1))[iu]
    same = (people[:, None] == people[None, :])[iu]
    g, i = d[same], d[~same]
    threshold = np.sort(i)[int(np.floor(FAR * len(i)))]          # at most FAR of impostors at or below
    rng = np.random.default_rng(seed)
    picked = rng.choice(np.flatnonzero(~same), size=min(len(g), len(i)), replace=False)
    keep = np.concatenate([np.flatnonzero(same), picked])
    cv = metrics.cross_validated_accuracy(d[keep], same[keep], folds=10, seed=seed)
    return {"genuine": {"count": int(len(g)), "mean": float(g.mean()), "sd": float(g.std())},
            "impostor": {"count": int(len(i)), "mean": float(i.mean()), "sd": float(i.std())},
            "d_prime": float((i.mean() - g.mean()) / np.sqrt((g.var() + i.var()) / 2)),
            "tar_at_far_1e-3": float(np.mean(g < threshold)),
            "accuracy_10fold_balanced": cv["accuracy"], "balanced_pairs": int(len(keep))}


def halves(fused: Embedder, crops: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    v = fused.embed_crops(crops)
    w_facenet, w_sface = fused.model.fusion_weights
    return v[:, :128] / w_facenet, v[:, 128:] / w_sface


def fuse(facenet: np.ndarray, sface: np.ndarray, share: float) -> np.ndarray:
    """The fused vector with SFace's share `share` of the squared distance."""
    return np.concatenate([np.sqrt(1 - share) * facenet, np.sqrt(share) * sface], axis=1)


def timed_rounds(jobs: dict, rounds: int) -> dict:
    """Median seconds of each job, the jobs interleaved round by round."""
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(rounds):
        for name, job in jobs.items():
            t = time.perf_counter()
            job()
            times[name].append(time.perf_counter() - t)
    return {name: float(np.median(ts)) for name, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds [3]")
    parser.add_argument("--no-open-set", action="store_true", help="skip the Avengers open-set evaluation")
    args = parser.parse_args()

    config = EmbedderConfig.from_env()
    cache = WeightsCache(config.cache_dir)
    fused_model = load_model(FUSED_MODEL_ID, cache)
    fused = Embedder(fused_model, config)
    facenet = Embedder(LoadedModel(DEFAULT_MODEL_ID, 128, fused_model.keras_model), config)  # the same FaceNet
    detectors = {name: create_detector(config, cache, name=name) for name in DETECTORS}
    for det in detectors.values():
        det.warm()
    photos = sorted(cache.sample_gallery().glob("*/*/*.jpg"))
    rgbs = [decode(p.read_bytes()) for p in photos]
    people = np.array([p.parent.name for p in photos])
    val = [rgb for p, rgb in zip(photos, rgbs) if p.parent.parent.name == "val"]
    avengers_paths = sorted(p for p in common.AVENGERS.glob("*/*") if p.suffix.lower() in (".png", ".jpg"))
    avengers = [decode(p.read_bytes()) for p in avengers_paths]
    avengers_people = np.array([p.parent.name for p in avengers_paths])

    train = np.array([p.parent.parent.name == "train" for p in photos])

    # 1. detection
    def detect_all(det):
        return lambda: [det.detect_many(val[i:i + 16]) for i in range(0, len(val), 16)]

    for det in detectors.values():
        detect_all(det)()
    seconds = timed_rounds({name: detect_all(det) for name, det in detectors.items()}, args.rounds)
    detection = {}
    crops: dict[str, dict[str, list]] = {}
    for name, det in detectors.items():
        detection[name] = {"ms_per_photo": 1000 * seconds[name] / len(val), "photos_with_a_face": {}}
        for set_name, images in (("5-celebrity", rgbs), ("avengers", avengers)):
            found = det.detect_many(images)
            crops.setdefault(set_name, {})[name] = [primary_face(f, rgb.shape) if f else None
                                                    for f, rgb in zip(found, images)]
            detection[name]["photos_with_a_face"][set_name] = f"{sum(1 for f in found if f)}/{len(images)}"
        print(f"{name}: {detection[name]}")
    # accuracy is compared on the photos where every detector found a face (coverage is above)
    sets: dict[str, dict[str, tuple[list, np.ndarray]]] = {name: {} for name in DETECTORS}
    for set_name, labels, extra in (("5-celebrity", people, train), ("avengers", avengers_people, None)):
        both = [k for k in range(len(labels)) if all(crops[set_name][d][k] is not None for d in DETECTORS)]
        for name in DETECTORS:
            sets[name][set_name] = ([crops[set_name][name][k].crop for k in both], labels[both])
            if extra is not None:
                sets[name]["5-celebrity-train"] = ([crops[set_name][name][k].crop for k in both if extra[k]],
                                                   labels[[k for k in both if extra[k]]])

    # 2. embedding throughput at batch 64
    pool = (sets["mtcnn"]["5-celebrity"][0] * 2)[:64]
    facenet.embed_crops(pool)
    fused.embed_crops(pool)
    seconds = timed_rounds({"facenet": lambda: facenet.embed_crops(pool), "fused": lambda: fused.embed_crops(pool)},
                           args.rounds)
    sface_s = timed_rounds({"sface": lambda: fused_model.sface.embed(pool)}, args.rounds)["sface"]
    throughput = {"batch": 64, "facenet-128_crops_per_s": 64 / seconds["facenet"],
                  "facenet-128+sface_crops_per_s": 64 / seconds["fused"],
                  "sface_alone_crops_per_s": 64 / sface_s,
                  "fused_vs_facenet": seconds["facenet"] / seconds["fused"]}
    print(f"throughput: {throughput}")

    # 3. and 4. accuracy, and the fusion weight
    _, w_sface = fused_model.fusion_weights
    accuracy: dict = {}
    sweep: dict = {}
    spreads: dict = {}
    for det_name, per_set in sets.items():
        for set_name, (set_crops, labels) in per_set.items():
            if len(set_crops) < 2:   # no Avengers crops here (FACESEARCH_SHARED)
                continue
            a, b = halves(fused, set_crops)
            if set_name == "5-celebrity-train":   # the spreads FUSION_SPREADS holds (squared L2)
                spreads[det_name] = {m: float(np.sqrt((f["genuine"]["sd"] ** 2 + f["impostor"]["sd"] ** 2) / 2) / 3)
                                     for m, f in (("facenet-128", pair_figures(a, labels)),
                                                  ("sface", pair_figures(b, labels)))}
                continue
            for model, v in (("facenet-128", a), ("sface", b), (FUSED_MODEL_ID, fuse(a, b, w_sface ** 2))):
                accuracy.setdefault(model, {}).setdefault(det_name, {})[set_name] = pair_figures(v, labels)
            sweep.setdefault(det_name, {})[set_name] = {
                f"{share:.1f}": {k: pair_figures(fuse(a, b, share), labels)[k] for k in
                                 ("d_prime", "tar_at_far_1e-3", "accuracy_10fold_balanced")}
                for share in np.linspace(0, 1, 11)}
    for model, per in accuracy.items():
        for det_name, sets in per.items():
            for set_name, f in sets.items():
                print(f"{model:18s} {det_name:6s} {set_name:12s} d' {f['d_prime']:.2f}  TAR@FAR1e-3 "
                      f"{f['tar_at_far_1e-3']:.4f}  10-fold {f['accuracy_10fold_balanced']:.4f}  genuine "
                      f"{f['genuine']['mean']:.2f}±{f['genuine']['sd']:.2f}  impostor "
                      f"{f['impostor']['mean']:.2f}±{f['impostor']['sd']:.2f}")

    # 5. open set on the Avengers seed split
    open_set = {}
    split = common.AVENGERS / "seed_split.json"
    if not args.no_open_set and split.is_file():
        from facesearch.trainer.evaluate import EvalConfig, evaluate_model

        with tempfile.TemporaryDirectory() as tmp:
            for det_name in DETECTORS:
                ev = evaluate_model(EvalConfig(data=common.AVENGERS, split=split, face_mode=FaceMode.DETECT,
                                               detector=det_name, cache_dir=Path(tmp), progress=False), facenet)
                at = ev["open_set"]["at_cutoff"]
                rejected = np.sum(list(at["nonmated_rejected"].values()), axis=0).tolist()
                open_set[det_name] = {**ev["identification"], "strangers_rejected_at_3.5": rejected,
                                      "fnir_at_3.5": at["fnir"], "counts": ev["counts"]}
                print(f"open set, facenet-128 + {det_name}: {open_set[det_name]}")

    print(f"spreads on the train photos (FUSION_SPREADS): {spreads}")
    common.write("models", {"detection": detection, "throughput": throughput, "accuracy": accuracy,
                            "spreads": spreads,
                            "fusion_weight_sweep": sweep, "fusion_weights": list(fused_model.fusion_weights),
                            "open_set": open_set, "rounds": args.rounds})


if __name__ == "__main__":
    main()
