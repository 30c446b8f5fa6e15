"""The photo path against the raw model, in one run: the goals of compiled, batched detection.

    .venv/bin/python -m bench.photos [--requests 100] [--concurrency 1,4,8,16,32] [--rounds 2] [--indexer-only]
                                     [--detector mtcnn|yunet]

1. Raw FaceNet: crops/s of embed_crops at batch 64 in this process (the baseline of every ratio),
   and the raw photo pipeline: decode + batched compiled MTCNN + pick + embed, 16 photos a call.
2. Identify on photos (the 25 sample val photos, FACE_MODE_DETECT) through a real server at each
   concurrency, and Identify on crops at concurrency 32: requests/s and their ratio to the raw model.
3. facesearch-indexer add (local) on the sample train photos, copied 4 times: photos/s and the ratio
   to the raw photo pipeline.
The raw baselines are measured before and after the server phases and averaged. Writes
bench/results/photos.json; --indexer-only skips phase 2 and writes photos-indexer.json. --detector
runs every phase with that detector (the raw pipeline, the server, the indexer) and adds its name
to the file's (photos-yunet.json); the raw model is FaceNet either way.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import common
from bench.server import drive, raw_embedder, sample_crops

from facesearch.embedder import Embedder, EmbedderConfig, WeightsCache, decode
from facesearch.embedder.detectors import DEFAULT_DETECTOR, DETECTORS
from facesearch.embedder.prepare import pick
from facesearch.testing import ServerProcess
from facesearch.v1 import facesearch_pb2 as pb

BEFORE = {"identify_photo_c8_vs_raw": 0.21, "identify_crop_c32_vs_raw": 0.80, "photos_per_s": {"1": 7.6, "8": 9.0},
          "measured": "2026-11-30, eager MTCNN one photo per call, before this work (docs/performance.md)"}
PREVIOUS = {"photos_per_s": {"1": 7.87, "4": 11.8, "8": 13.2, "16": 14.5, "32": 17.1},
            "identify_photo_c8_vs_raw": 0.233, "identify_crop_c32_vs_raw": 0.697,
            "measured": "2026-11-30 at 7d21020: compiled MTCNN with PNet once per pyramid level and photo size, "
                        "embeddings padded to shape buckets (bench/REPORT.md)"}


def raw_photos(embedder: Embedder, photos: list[bytes], batch: int = 16, rounds: int = 2) -> float:
    """Photos/s of the whole pipeline in one process: decode, detect (batched), pick, embed."""
    detector = embedder.detector

    def once():
        for i in range(0, len(photos), batch):
            rgbs = [decode(p) for p in photos[i:i + batch]]
            crops = [pick(rgb, faces).crop for rgb, faces in zip(rgbs, detector.detect_many(rgbs))]
            embedder.embed_crops([c for c in crops if c is not None])

    once()
    rates = []
    for _ in range(rounds):
        t = time.perf_counter()
        once()
        rates.append(len(photos) / (time.perf_counter() - t))
    return float(np.median(rates))


def indexer_add(folder: Path, data_dir: Path, detector: str) -> tuple[float, float]:
    """Photos/s of `facesearch-indexer add` on a folder, from its own JSON report (model loads
    excluded), and the command's wall seconds (included)."""
    report = data_dir / "report.json"
    cli = Path(sys.executable).with_name("facesearch-indexer")
    t = time.perf_counter()
    subprocess.run([str(cli), "--data-dir", str(data_dir), "add", str(folder), "--report", str(report),
                    "--detector", detector],
                   check=True, capture_output=True, text=True, timeout=1800)
    import json

    wall = time.perf_counter() - t
    return json.loads(report.read_text())["images_per_s"], wall


def server_phase(tmp: Path, samples: Path, val: list[bytes], crops, levels: list[int], requests: int,
                 results: dict, detector: str) -> None:
    """Phase 2: Identify on photos at each concurrency, and on crops at 32, through a real server."""
    proc = ServerProcess(tmp / "data", "--warmup-batch", "64", "--detector", detector).start()
    try:
        from facesearch.client import FaceSearchClient

        with FaceSearchClient(proc.target, timeout=300) as c:
            for person in sorted({p.parent.name for p in samples.glob("train/*/*.jpg")}):
                c.enroll(person, [p.read_bytes() for p in sorted((samples / "train" / person).glob("*.jpg"))])
        for conc in levels:
            row = asyncio.run(drive(proc.target, lambda i: pb.IdentifyRequest(image=val[i % len(val)]),
                                    conc, max(requests, 2 * conc)))
            row.pop("latencies_ms")
            results["identify_photo"].append(row)
            print(f"  Identify photo c={conc}: {row['qps']:.1f}/s p50 {row['p50_ms']:.0f} ms", flush=True)
        crop_row = asyncio.run(drive(proc.target, lambda i: pb.IdentifyRequest(
            image=crops[i % len(crops)], face_mode=pb.FACE_MODE_CROPPED), 32, max(requests * 2, 64)))
        crop_row.pop("latencies_ms")
        results["identify_crop_c32"] = crop_row
        print(f"  Identify crop c=32: {crop_row['qps']:.1f}/s", flush=True)
    finally:
        proc.stop()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100, help="Identify calls per concurrency level [100]")
    parser.add_argument("--concurrency", default="1,4,8,16,32")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--indexer-only", action="store_true", help="skip the server: the indexer's ratio only")
    parser.add_argument("--detector", choices=DETECTORS, default=DEFAULT_DETECTOR,
                        help="the detector of every phase [%(default)s]")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    suffix = "" if args.detector == DEFAULT_DETECTOR else f"-{args.detector}"

    embedder = Embedder.load(EmbedderConfig.from_env(detector=args.detector))
    samples = WeightsCache(embedder.config.cache_dir).sample_gallery()
    val = [p.read_bytes() for p in sorted(samples.glob("val/*/*.jpg"))]
    crops = sample_crops(embedder)
    raw = {"before": {"crops_per_s_b64": raw_embedder(embedder, crops, batches=(64,), rounds=args.rounds)[64],
                      "photos_per_s": raw_photos(embedder, val * 2, rounds=args.rounds)}}

    tmp = Path(tempfile.mkdtemp(prefix="bench-photos-"))
    results: dict = {"identify_photo": [], "before_this_work": BEFORE, "previous_run": PREVIOUS}
    try:
        if not args.indexer_only:
            server_phase(tmp, samples, val, crops, levels, args.requests, results, args.detector)
        gallery = tmp / "photos"
        for n in range(4):   # distinct bytes per copy, so none is skipped as a duplicate
            for p in samples.glob("train/*/*.jpg"):
                (gallery / p.parent.name).mkdir(parents=True, exist_ok=True)
                (gallery / p.parent.name / f"{n}-{p.name}").write_bytes(p.read_bytes() + bytes([n]))
        results["indexer_photos_per_s"], results["indexer_wall_s"] = indexer_add(gallery, tmp / "indexed",
                                                                                 args.detector)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    raw["after"] = {"crops_per_s_b64": raw_embedder(embedder, crops, batches=(64,), rounds=args.rounds)[64],
                    "photos_per_s": raw_photos(embedder, val * 2, rounds=args.rounds)}
    crops_s = float(np.mean([raw[k]["crops_per_s_b64"] for k in raw]))
    photos_s = float(np.mean([raw[k]["photos_per_s"] for k in raw]))
    results["indexer_vs_raw_pipeline"] = results["indexer_photos_per_s"] / photos_s
    results["raw"] = {**raw, "crops_per_s_b64": crops_s, "photos_per_s": photos_s}
    if args.indexer_only:
        path = common.write("photos-indexer" + suffix, results)
        print(f"indexer {results['indexer_photos_per_s']:.1f} photos/s, raw pipeline {photos_s:.1f} photos/s "
              f"({raw['before']['photos_per_s']:.1f} before, {raw['after']['photos_per_s']:.1f} after): "
              f"{results['indexer_vs_raw_pipeline']:.2f}x; the command: {results['indexer_wall_s']:.1f} s -> {path}")
        return
    for row in results["identify_photo"]:
        row["vs_raw_model"] = row["qps"] / crops_s
    results["identify_crop_c32"]["vs_raw_model"] = results["identify_crop_c32"]["qps"] / crops_s
    c8 = next((r for r in results["identify_photo"] if r["concurrency"] == 8), None)
    photo_goal = 0.8 if args.detector == "yunet" else 0.5
    results["detector"] = args.detector
    results["goals"] = {
        f"identify_photo_c8_vs_raw >= {photo_goal}": c8 and c8["vs_raw_model"],
        "identify_crop_c32_vs_raw >= 0.9": results["identify_crop_c32"]["vs_raw_model"],
        "indexer_vs_raw_pipeline >= 0.9": results["indexer_vs_raw_pipeline"],
    }
    path = common.write("photos" + suffix, results)
    print(f"raw model {crops_s:.1f} crops/s, raw pipeline {photos_s:.1f} photos/s; goals {results['goals']} -> {path}")


if __name__ == "__main__":
    main()
