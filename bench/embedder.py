"""Embedder throughput: crops/s by batch size against plain model.predict, photos/s, peak RSS.

    .venv/bin/python -m bench.embedder [--rounds 3]

Figures on this shared machine move about 2x between runs; the ratios, measured
side by side in one run (interleaved rounds), are what count.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from bench import common

from facesearch.embedder import Embedder
from facesearch.embedder.preprocess import preprocess

BATCHES = (1, 8, 32, 64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds per batch size")
    parser.add_argument("--images", type=int, default=64, help="crops embedded per round and batch size")
    args = parser.parse_args()

    t0 = time.perf_counter()
    emb = Embedder.load()
    load_s = time.perf_counter() - t0
    from facesearch.embedder import WeightsCache

    photos = sorted(WeightsCache(emb.config.cache_dir).sample_gallery().glob("*/*/*.jpg"))
    crops = [crop for _, crop in common.face_crops(emb, photos[:32])]
    pool = (crops * (args.images // len(crops) + 1))[: args.images]
    x = preprocess(pool)
    model = emb.model.keras_model

    rows = []
    for b in BATCHES:
        emb.embed_crops(pool[:b])                       # set up this batch size
        model.predict(x[:b], batch_size=b, verbose=0)   # and predict's function
        ours, theirs = [], []
        for _ in range(args.rounds):
            t = time.perf_counter()
            for i in range(0, len(pool), b):
                emb.embed_crops(pool[i:i + b])
            ours.append(len(pool) / (time.perf_counter() - t))
            t = time.perf_counter()
            for i in range(0, len(pool), b):
                model.predict(x[i:i + b], batch_size=b, verbose=0)
            theirs.append(len(pool) / (time.perf_counter() - t))
        rows.append({"batch": b, "crops_per_s": float(np.median(ours)), "predict_crops_per_s": float(np.median(theirs)),
                     "ratio_vs_predict": float(np.median(np.array(ours) / np.array(theirs)))})

    val = [p.read_bytes() for p in photos if "/val/" in str(p)]
    emb.embed_image(val[0])
    emb.embed_images(val[:16])
    t = time.perf_counter()
    faces = sum(len(emb.embed_image(d)) for d in val)
    photo_s = time.perf_counter() - t
    t = time.perf_counter()
    faces_batched = sum(len(r) for i in range(0, len(val), 16) for r in emb.embed_images(val[i:i + 16]))
    photo_batched_s = time.perf_counter() - t
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"model load {load_s:.1f} s; crops: our path includes preprocessing, predict does not")
    print(f"{'batch':>5} | {'crops/s':>8} | {'predict/s':>9} | {'ratio':>5}")
    for r in rows:
        print(f"{r['batch']:>5} | {r['crops_per_s']:>8.1f} | {r['predict_crops_per_s']:>9.1f} | {r['ratio_vs_predict']:>5.2f}")
    print(f"photos (decode + MTCNN + embed), one per call: {len(val) / photo_s:.1f}/s, {faces} faces in {len(val)} photos")
    print(f"photos, embed_images in batches of 16:     {len(val) / photo_batched_s:.1f}/s, {faces_batched} faces "
          f"(x{photo_s / photo_batched_s:.2f})")
    print(f"peak RSS {peak_mb:.0f} MiB")
    common.write("embedder", {
        "model_id": emb.model_id, "load_s": load_s, "rounds": args.rounds, "images_per_round": len(pool),
        "crops": rows, "photos_per_s": len(val) / photo_s, "photos_batched16_per_s": len(val) / photo_batched_s,
        "photos": len(val), "faces": faces, "faces_batched": faces_batched, "peak_rss_mib": peak_mb,
    })


if __name__ == "__main__":
    main()
