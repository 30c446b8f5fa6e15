"""Face detection per photo: eager mtcnn 1.0 against the compiled and the batched MTCNN, and each stage's cost.

    .venv/bin/python -m bench.detect [--rounds 5]

On the 25 photos of the 5-celebrity val set, in one run with the three
detectors interleaved round by round (each round rotates their order):
- eager: the `mtcnn` package's `MTCNN.detect_faces`, one photo per call;
- compiled: `FaceDetector.detect`, one photo per call;
- batched: `FaceDetector.detect_many` over all 25 photos.
Then the photo path's stages (decode, PNet, RNet, ONet, crop, embed, search), one
photo at a time and batched, in ms per photo and as shares of the whole.
The machine is shared and noisy: the ratios, measured side by side, are what count.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import common

from facesearch.embedder import Embedder, FaceDetector, WeightsCache, decode, primary_face
from facesearch.embedder.distances import DEFAULT_CUTOFF

STAGES = ("decode", "pnet", "rnet", "onet", "crop", "embed", "search")


def sample_gallery(emb: Embedder, folder: Path, photos: list[Path]):
    """A FAISS + SQLite gallery of the sample train photos, one identity per person."""
    from facesearch.gallery import Gallery, GalleryConfig, IndexConfig, NewFace

    gallery = Gallery.open(GalleryConfig(data_dir=folder, index=IndexConfig(use_gpu=False)),
                           model_id=emb.model_id, dimension=emb.dimension)
    for person in sorted({p.parent.name for p in photos}):
        faces = [f for p in photos if p.parent.name == person for f in emb.embed_image(p.read_bytes())[:1]]
        gallery.add_faces(person, [NewFace(f.embedding) for f in faces])
    return gallery


def stage_costs(emb: Embedder, det: FaceDetector, gallery, photos: list[bytes], batched: bool) -> dict:
    """Seconds per stage over all photos: decode, the three networks (with their post-processing), crop,
    embed, and the gallery search (top 1 within the default cutoff)."""
    t = dict.fromkeys(STAGES, 0.0)
    groups = [photos] if batched else [[p] for p in photos]
    for group in groups:
        start = time.perf_counter()
        images = [decode(p) for p in group]
        t["decode"] += time.perf_counter() - start
        found = det.detect_many(images, timings=t)
        crops = [f.crop for faces, rgb in zip(found, images) if (f := primary_face(faces, rgb.shape))]
        start = time.perf_counter()
        vectors = emb.embed_crops(crops)
        t["embed"] += time.perf_counter() - start
        start = time.perf_counter()
        gallery.search(vectors, top_k=1, max_distance=DEFAULT_CUTOFF)
        t["search"] += time.perf_counter() - start
    return t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds over the val photos")
    args = parser.parse_args()

    from mtcnn import MTCNN

    emb = Embedder.load()
    det = FaceDetector.from_config(emb.config)
    eager = MTCNN()
    paths = sorted(WeightsCache(emb.config.cache_dir).sample_gallery().glob("val/*/*.jpg"))
    photos = [p.read_bytes() for p in paths]
    images = [decode(p) for p in photos]
    min_size, factor = emb.config.min_face_size, emb.config.detect_scale_factor

    def run_eager():
        return [eager.detect_faces(rgb, min_face_size=min_size, scale_factor=factor) for rgb in images]

    def run_compiled():
        return [det.detect(rgb) for rgb in images]

    def run_batched():
        return det.detect_many(images)

    runs = {"eager": run_eager, "compiled": run_compiled, "batched": run_batched}
    # warm up (traces the compiled networks and the embedder) and count the faces each finds
    found = {name: fn() for name, fn in runs.items()}
    faces = {"eager": sum(any(d["confidence"] >= det.min_score for d in ds) for ds in found["eager"]),
             "compiled": sum(bool(f) for f in found["compiled"]), "batched": sum(bool(f) for f in found["batched"])}
    same_boxes = all([f.box for f in a] == [f.box for f in b] for a, b in zip(found["compiled"], found["batched"]))
    gallery = sample_gallery(emb, Path(tempfile.mkdtemp(prefix="bench-detect-")),
                             sorted(WeightsCache(emb.config.cache_dir).sample_gallery().glob("train/*/*.jpg")))
    stage_costs(emb, det, gallery, photos[:4], batched=True)
    stage_costs(emb, det, gallery, photos[:1], batched=False)

    per_photo = {name: [] for name in runs}        # ms per photo, every photo of every round (batched: mean)
    totals = {name: [] for name in runs}           # seconds per round
    names = list(runs)
    for r in range(args.rounds):
        for name in names[r % 3:] + names[:r % 3]:
            if name == "batched":
                start = time.perf_counter()
                run_batched()
                elapsed = time.perf_counter() - start
                per_photo[name] += [1000 * elapsed / len(images)] * len(images)
            else:
                one = run_eager if name == "eager" else run_compiled
                elapsed = 0.0
                for rgb in images:
                    start = time.perf_counter()
                    (eager.detect_faces(rgb, min_face_size=min_size, scale_factor=factor) if one is run_eager
                     else det.detect(rgb))
                    dt = time.perf_counter() - start
                    elapsed += dt
                    per_photo[name].append(1000 * dt)
            totals[name].append(elapsed)

    ratios = {name: float(np.median(np.array(totals[name]) / np.array(totals["eager"]))) for name in runs}
    detectors = {name: {"ms_per_photo": float(np.mean(per_photo[name])),
                        "ms_p50": float(np.percentile(per_photo[name], 50)),
                        "ms_p90": float(np.percentile(per_photo[name], 90)),
                        "time_vs_eager": ratios[name], "photos_with_a_face": faces[name]} for name in runs}

    stages = {}
    for mode in ("one_by_one", "batched"):
        rounds = [stage_costs(emb, det, gallery, photos, batched=mode == "batched") for _ in range(args.rounds)]
        ms = {s: 1000 * float(np.median([t[s] for t in rounds])) / len(photos) for s in STAGES}
        total = sum(ms.values())
        stages[mode] = {"ms_per_photo": ms, "share": {s: v / total for s, v in ms.items()},
                        "total_ms_per_photo": total}

    print(f"{len(images)} val photos, {args.rounds} interleaved rounds")
    print(f"{'detector':>9} | {'ms/photo':>8} | {'p90':>6} | {'vs eager':>8} | faces")
    for name, d in detectors.items():
        print(f"{name:>9} | {d['ms_per_photo']:>8.1f} | {d['ms_p90']:>6.1f} | {d['time_vs_eager']:>8.2f} | "
              f"{d['photos_with_a_face']}/{len(images)}")
    print(f"compiled and batched boxes identical: {same_boxes}")
    for mode, s in stages.items():
        print(f"stages, {mode}: " + ", ".join(f"{k} {v:.1f} ms ({s['share'][k]:.0%})"
                                              for k, v in s["ms_per_photo"].items()))
    common.write("detect", {
        "photos": len(images), "rounds": args.rounds, "min_face_size": min_size, "scale_factor": factor,
        "detectors": detectors, "compiled_equals_batched": same_boxes,
        "tracing_counts": det.networks.tracing_counts(), "stages": stages,
    })


if __name__ == "__main__":
    main()
