"""Clustering quality and cost (docs/clustering.md, issue #23).

    .venv/bin/python -m bench.cluster [--synthetic 100000] [--centres 20000]

1. The 5-celebrity sample photos (train and val together), every face detected and embedded by
   `facesearch-indexer cluster`'s own code (indexer.cluster.collect); each photo's main face
   (primary_face) carries the folder's name, other faces are clustered but not scored. The seed's
   Avengers crops (/work/shared/data/avengers, when present) as crops (--face-mode cropped).
2. Per set: BCubed and pairwise precision and recall against the true names, at the defaults and
   over a sweep of max_distance x min_faces; unclustered faces count as singletons. The model's
   genuine and impostor distances on the same faces, from which the default is chosen.
3. Time per 1,000 faces: finding and embedding, and clustering.
4. N synthetic faces (random unit vectors around C centres, noise like this model's genuine
   distances): clustering time and peak memory, measured in a child process, and BCubed.
Writes bench/results/cluster.json (--skip-photos: cluster-synthetic.json).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench import common

from facesearch.embedder import Box, Embedder, FaceMode, pairwise, primary_face
from facesearch.embedder.detect import Face
from facesearch.gallery.clustering import cluster
from facesearch.indexer.cluster import DEFAULT_ATTACH_DISTANCE, DEFAULT_MAX_DISTANCE, DEFAULT_MIN_FACES, collect, photos

SWEEP_DISTANCE = [1.8, 2.0, 2.2, 2.4, 2.6, 2.8, 3.0, 3.2, 3.6]
SWEEP_ATTACH = [0.0, 2.8, 3.0, 3.2, 3.4, 3.6]
SWEEP_MIN = [2, 3, 4]
AVENGERS = Path(os.environ.get("FACESEARCH_SHARED", Path(__file__).resolve().parent.parent.parent / "shared")) \
    / "data" / "avengers"   # as tests/conftest.py finds it
SYNTHETIC_NOISE = 0.045   # per dimension: genuine distances around 1.5 on the service scale


def bcubed(labels: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """BCubed precision and recall; label -1 (unclustered) is a singleton cluster."""
    pred = np.where(labels >= 0, labels, -1 - np.arange(len(labels)))
    same_pred = pred[:, None] == pred[None, :]
    same_true = truth[:, None] == truth[None, :]
    both = (same_pred & same_true).sum(1)
    return float(np.mean(both / same_pred.sum(1))), float(np.mean(both / same_true.sum(1)))


def pairwise_pr(labels: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    pred = np.where(labels >= 0, labels, -1 - np.arange(len(labels)))
    off = ~np.eye(len(labels), dtype=bool)
    same_pred = (pred[:, None] == pred[None, :]) & off
    same_true = (truth[:, None] == truth[None, :]) & off
    both = (same_pred & same_true).sum()
    return float(both / max(same_pred.sum(), 1)), float(both / max(same_true.sum(), 1))


def scores(labels: np.ndarray, truth: np.ndarray, scored: np.ndarray) -> dict:
    lab, tru = labels[scored], truth[scored]
    bp, br = bcubed(lab, tru)
    pp, pr = pairwise_pr(lab, tru)
    return {"bcubed_precision": round(bp, 4), "bcubed_recall": round(br, 4), "pairwise_precision": round(pp, 4),
            "pairwise_recall": round(pr, 4), "clusters": int(labels.max() + 1),
            "scored_unclustered": int((lab < 0).sum())}


def distances(vectors: np.ndarray, truth: np.ndarray) -> dict:
    d = pairwise(vectors, vectors)
    off = ~np.eye(len(truth), dtype=bool)
    same = (truth[:, None] == truth[None, :]) & off
    diff = truth[:, None] != truth[None, :]
    genuine, impostor = d[same], d[diff]
    nearest_impostor = np.where(diff, d, np.inf).min(1)
    pct = lambda a, qs: {str(q): round(float(np.percentile(a, q)), 3) for q in qs}   # noqa: E731
    nearest_genuine = np.where(same, d, np.inf).min(1)
    return {"genuine": pct(genuine, [50, 90, 95, 99]), "impostor": pct(impostor, [0.1, 1, 5, 50]),
            "nearest_impostor_per_face": pct(nearest_impostor, [1, 5, 50]),
            # at each distance t: faces whose nearest own face is farther (missed by a lone link), and faces
            # whose nearest other person is nearer (a stranger that would be attached to somebody)
            "nearest_genuine_over": {str(t): round(float((nearest_genuine > t).mean()), 3) for t in SWEEP_DISTANCE},
            "nearest_impostor_within": {str(t): round(float((nearest_impostor <= t).mean()), 3)
                                        for t in SWEEP_DISTANCE},
            "genuine_pairs": int(same.sum() // 2), "impostor_pairs": int(diff.sum() // 2)}


def evaluate(name: str, vectors: np.ndarray, truth: np.ndarray, scored: np.ndarray) -> dict:
    t = time.perf_counter()
    labels = cluster(vectors, DEFAULT_MAX_DISTANCE, DEFAULT_MIN_FACES, DEFAULT_ATTACH_DISTANCE)
    seconds = time.perf_counter() - t
    out = {"faces": len(vectors), "scored_faces": int(scored.sum()), "people": len(set(truth[scored].tolist())),
           "defaults": {"max_distance": DEFAULT_MAX_DISTANCE, "min_faces": DEFAULT_MIN_FACES,
                        "attach_distance": DEFAULT_ATTACH_DISTANCE, **scores(labels, truth, scored)},
           "cluster_s_per_1000_faces": round(seconds / len(vectors) * 1000, 4),
           "distances": distances(vectors[scored], truth[scored]),
           # max_distance x min_faces without attachment (plain DBSCAN), then attach_distance at the defaults
           "sweep": [{"max_distance": e, "min_faces": m, **scores(cluster(vectors, e, m), truth, scored)}
                     for m in SWEEP_MIN for e in SWEEP_DISTANCE],
           "sweep_attach": [{"attach_distance": a, **scores(cluster(vectors, DEFAULT_MAX_DISTANCE, DEFAULT_MIN_FACES,
                                                                    a), truth, scored)} for a in SWEEP_ATTACH]}
    d = out["defaults"]
    print(f"{name}: {len(vectors)} faces, BCubed P {d['bcubed_precision']:.3f} R {d['bcubed_recall']:.3f}, "
          f"pairwise P {d['pairwise_precision']:.3f} R {d['pairwise_recall']:.3f}, {d['clusters']} clusters")
    return out


def celebrities(embedder, samples: Path) -> dict:
    from PIL import Image

    files = photos([samples / "train", samples / "val"])
    faces = collect(files, embedder, FaceMode.DETECT, pool=None, batch_size=64)
    truth = np.array([f"?{i}" for i in range(len(faces.paths))], dtype=object)
    by_photo: dict[str, list[int]] = {}
    for i, p in enumerate(faces.paths):
        by_photo.setdefault(p, []).append(i)
    for p, members in by_photo.items():
        with Image.open(p) as im:
            shape = (im.height, im.width)
        boxes = [Face(Box(*faces.boxes[i]), faces.scores[i], None) for i in members]
        main = primary_face(boxes, shape)
        truth[members[boxes.index(main)]] = Path(p).parent.name
    scored = np.array([not t.startswith("?") for t in truth])
    out = evaluate("5-celebrity", faces.vectors, truth.astype(str), scored)
    out["photos"] = len(files)
    out["find_and_embed_s_per_1000_faces"] = round(faces.summary.seconds / len(faces.paths) * 1000, 1)
    return out


def avengers(embedder) -> dict | None:
    if not AVENGERS.is_dir():
        print(f"avengers: not at {AVENGERS} (FACESEARCH_SHARED names the folder holding data/avengers)")
        return None
    files = photos([AVENGERS])
    faces = collect(files, embedder, FaceMode.CROPPED, pool=None, batch_size=64)
    truth = np.array([Path(p).parent.name for p in faces.paths])
    out = evaluate("avengers", faces.vectors, truth, np.ones(len(truth), bool))
    out["find_and_embed_s_per_1000_faces"] = round(faces.summary.seconds / len(faces.paths) * 1000, 1)
    return out


SYNTHETIC_CHILD = """
import json, sys, time
import numpy as np
from facesearch.gallery.clustering import cluster
n, centres, noise, e, m, a = (int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]),
                              int(sys.argv[5]), float(sys.argv[6]))
rng = np.random.default_rng(0)
c = rng.normal(size=(centres, 128)).astype(np.float32)
c /= np.linalg.norm(c, axis=1, keepdims=True)
truth = rng.integers(0, centres, n)
x = c[truth] + rng.normal(scale=noise, size=(n, 128)).astype(np.float32)
x /= np.linalg.norm(x, axis=1, keepdims=True)
del c
def hwm():   # this process's peak RSS in KiB (VmHWM: unlike ru_maxrss, not inherited across exec)
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
before = hwm()
with open("/proc/self/clear_refs", "w") as f:   # reset the peak to now: the data's making is not measured
    f.write("5")
t = time.perf_counter()
labels = cluster(x, e, m, a)
seconds = time.perf_counter() - t
peak = hwm()
np.save(sys.argv[7], np.stack([labels, truth]))
print(json.dumps({"seconds": seconds, "peak_rss_mib": peak / 1024, "rss_before_mib": before / 1024}))
"""


def synthetic(n: int, centres: int, tmp: Path) -> dict:
    """In a child process, so that its peak memory is clustering's own (plus Python, NumPy, FAISS)."""
    out_file = tmp / "labels.npy"
    run = subprocess.run([sys.executable, "-c", SYNTHETIC_CHILD, str(n), str(centres), str(SYNTHETIC_NOISE),
                          str(DEFAULT_MAX_DISTANCE), str(DEFAULT_MIN_FACES), str(DEFAULT_ATTACH_DISTANCE),
                          str(out_file)],
                         capture_output=True, text=True, check=True)
    res = json.loads(run.stdout.strip().splitlines()[-1])
    labels, truth = np.load(out_file)
    # BCubed on a sample of the centres (the full n x n comparison would not fit)
    rng = np.random.default_rng(1)
    picked = np.isin(truth, rng.choice(centres, size=min(centres, 2000), replace=False))
    lab, tru = labels[picked], truth[picked]
    relabel = np.where(lab >= 0, lab, -1)
    bp, br = bcubed(relabel, tru)
    out = {"faces": n, "centres": centres, "noise_per_dimension": SYNTHETIC_NOISE,
           "seconds": round(res["seconds"], 2), "peak_rss_mib": round(res["peak_rss_mib"], 1),
           "peak_rss_before_clustering_mib": round(res["rss_before_mib"], 1),
           "clusters": int(labels.max() + 1), "unclustered": int((labels < 0).sum()),
           "bcubed_precision_sampled": round(bp, 4), "bcubed_recall_sampled": round(br, 4)}
    print(f"synthetic: {n} faces around {centres} centres clustered in {out['seconds']} s, "
          f"peak RSS {out['peak_rss_mib']} MiB, BCubed P {bp:.3f} R {br:.3f}")
    return out


def main() -> None:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--synthetic", type=int, default=100_000)
    parser.add_argument("--centres", type=int, default=20_000)
    parser.add_argument("--skip-photos", action="store_true", help="only the synthetic run (no model)")
    args = parser.parse_args()
    results: dict = {"defaults": {"max_distance": DEFAULT_MAX_DISTANCE, "min_faces": DEFAULT_MIN_FACES,
                                  "attach_distance": DEFAULT_ATTACH_DISTANCE}}
    if not args.skip_photos:
        from facesearch.embedder import WeightsCache

        embedder = Embedder.load()
        samples = WeightsCache().sample_gallery()
        results["celebrities"] = celebrities(embedder, samples)
        results["avengers"] = avengers(embedder)
        del embedder
    with tempfile.TemporaryDirectory() as tmp:
        results["synthetic"] = synthetic(args.synthetic, args.centres, Path(tmp))
    common.write("cluster-synthetic" if args.skip_photos else "cluster", results)


if __name__ == "__main__":
    main()
