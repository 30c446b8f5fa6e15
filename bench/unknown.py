"""Identify's latency with unknown-face retention on and off (issue #23: it must not change measurably).

    .venv/bin/python -m bench.unknown [--requests 60] [--concurrency 4] [--rounds 3]

One process, one model, two in-process services over two galleries with the same four enrolled
people of the 5-celebrity samples: one keeps unknown faces (--keep-unknown-days 7, its keeper
thread running: writes, clustering, purges), the other keeps nothing. The queries are the photos
of all five (one person never enrolled, so about a fifth of the faces are unknown; a photo's
background faces are unknown too). Rounds alternate off/on so the machine's drift hits both.
Reports per-request latency percentiles and throughput per mode, the on/off ratio of the medians,
and how many faces were kept. Writes bench/results/unknown.json.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import common

from facesearch.embedder import Embedder, EmbedderConfig
from facesearch.embedder import WeightsCache
from facesearch.gallery import Gallery, GalleryConfig
from facesearch.service import FaceSearchService, Limits, Retention, Runtime
from facesearch.service.unknown import keeper_for

STRANGER = "madonna"   # never enrolled


async def _load(service: FaceSearchService, samples: Path) -> None:
    for person in sorted(p.name for p in (samples / "train").iterdir()):
        if person != STRANGER:
            photos = sorted((samples / "train" / person).glob("*.jpg"))
            await service.enroll(person, images=[p.read_bytes() for p in photos])


async def _round(service: FaceSearchService, photos: list[bytes], requests: int, concurrency: int) -> list[float]:
    latencies: list[float] = []
    todo = iter(range(requests))

    async def worker():
        for i in todo:
            start = time.perf_counter()
            await service.identify(photos[i % len(photos)], source="bench")
            latencies.append(time.perf_counter() - start)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


async def run(args) -> dict:
    embedder = Embedder.load(EmbedderConfig.from_env(model="facenet-128"))
    embedder.warmup([1, 8])
    samples = WeightsCache().sample_gallery()
    photos = [p.read_bytes() for p in sorted((samples / "val").glob("*/*.jpg"))]
    out: dict = {"requests_per_round": args.requests, "concurrency": args.concurrency, "rounds": args.rounds,
                 "photos": len(photos)}
    with tempfile.TemporaryDirectory() as tmp:
        services, parts = {}, []
        for mode, retention in (("off", Retention()), ("on", Retention(keep_days=7))):
            gallery = Gallery.open(GalleryConfig(data_dir=Path(tmp) / mode), model_id=embedder.model_id,
                                   dimension=embedder.dimension)
            runtime = Runtime(embedder, gallery, detect_workers=2, follow_s=0)
            runtime.start()
            keeper = keeper_for(gallery, retention)
            if keeper is not None:
                keeper.start()
            service = FaceSearchService(embedder, gallery, runtime, Limits(), keeper)
            await _load(service, samples)
            await _round(service, photos, len(photos), args.concurrency)   # warm: every photo's shape once
            services[mode] = service
            parts.append((gallery, runtime, keeper))
        timings: dict[str, list[float]] = {"off": [], "on": []}
        walls: dict[str, float] = {"off": 0.0, "on": 0.0}
        for _ in range(args.rounds):
            for mode in ("off", "on"):
                start = time.perf_counter()
                timings[mode] += await _round(services[mode], photos, args.requests, args.concurrency)
                walls[mode] += time.perf_counter() - start
        for mode, values in timings.items():
            ms = np.array(values) * 1000
            out[mode] = {"p50_ms": round(float(np.percentile(ms, 50)), 1),
                         "p95_ms": round(float(np.percentile(ms, 95)), 1),
                         "mean_ms": round(statistics.fmean(ms), 1),
                         "requests_per_s": round(len(values) / walls[mode], 2)}
        out["p50_on_over_off"] = round(out["on"]["p50_ms"] / out["off"]["p50_ms"], 3)
        out["throughput_on_over_off"] = round(out["on"]["requests_per_s"] / out["off"]["requests_per_s"], 3)
        for gallery, runtime, keeper in parts:
            await runtime.stop()
            if keeper is not None:
                keeper.stop()
                out["kept_faces"] = gallery.unknown_count()
                page = gallery.unknown_clusters(1000)
                out["clusters"] = len(page.clusters)
                out["dropped"] = keeper.dropped
            gallery.close()
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=60, help="Identify calls per round and mode")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    results = asyncio.run(run(args))
    print(results)
    common.write("unknown", results)


if __name__ == "__main__":
    main()
