"""Where Identify on crops spends its time at concurrency 32: a stage breakdown, in one run.

    .venv/bin/python -m bench.crops [--requests 256] [--concurrency 32] [--rounds 2]

Each row adds one stage to the one before, on the same face crops (the 5-celebrity samples' primary
faces, as JPEG), so the difference of their times per crop is what that stage costs:
1. model: FaceNet alone on preprocessed batches of 64 (Embedder.embed_preprocessed);
2. + preprocess: resize and standardise RGB crops, then the model (embed_crops, batch 64);
3. + decode: JPEG bytes to RGB first; the raw model of bench/photos.py and of the issue's goal;
4. + service: FaceSearchService.identify(face_mode=CROPPED) in this process, `concurrency` requests
   at once, with its decode pool, micro-batching waits, search batcher and answers (no transport);
5. + transport: the same through a real facesearch-server over gRPC (protobuf, HTTP/2, a second
   process), as bench/photos.py measures it.
Rows 1-3 are measured before and after rows 4-5 and averaged. Writes bench/results/crops.json.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import common
from bench.server import drive, sample_crops

from facesearch.embedder import Embedder, EmbedderConfig, FaceMode, WeightsCache, decode
from facesearch.embedder.preprocess import preprocess
from facesearch.gallery import GalleryConfig
from facesearch.service.assembly import Tuning, assemble
from facesearch.service.service import Limits
from facesearch.testing import ServerProcess
from facesearch.v1 import facesearch_pb2 as pb

BATCH = 64
STAGES = ["model", "preprocess", "decode", "service", "transport"]


def rate(fn, n: int, rounds: int) -> float:
    """Items/s of fn() (which handles n items), the median of `rounds` timed runs after one untimed."""
    fn()
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return n / float(np.median(times))


def raw_rows(embedder: Embedder, crops: list[bytes], rounds: int) -> dict[str, float]:
    """Crops/s of rows 1-3 (model; + preprocess; + decode) at batch 64, in this process."""
    pool = (crops * (2 * BATCH // len(crops) + 1))[:2 * BATCH]
    rgbs = [decode(c) for c in pool]
    model = embedder.model
    ready = [preprocess(rgbs[i:i + BATCH], model.image_size, model.standardization) for i in range(0, len(pool), BATCH)]
    return {
        "model": rate(lambda: [embedder.embed_preprocessed(x) for x in ready], len(pool), rounds),
        "preprocess": rate(lambda: [embedder.embed_crops(rgbs[i:i + BATCH]) for i in range(0, len(pool), BATCH)],
                           len(pool), rounds),
        "decode": rate(lambda: [embedder.embed_crops([decode(c) for c in pool[i:i + BATCH]])
                                for i in range(0, len(pool), BATCH)], len(pool), rounds),
    }


async def in_process(data_dir: Path, crops: list[bytes], concurrency: int, total: int, samples: Path) -> dict:
    """Row 4: Identify CROPPED through the service in this process, `concurrency` at once."""
    built = await assemble(EmbedderConfig.from_env(), GalleryConfig(data_dir=data_dir),
                           Tuning(warmup_sizes=(1, BATCH)), Limits())
    try:
        for person in sorted(p.name for p in (samples / "train").iterdir()):
            await built.service.enroll(person, images=[p.read_bytes() for p in sorted((samples / "train" / person)
                                                                                        .glob("*.jpg"))])
        counter = iter(range(total))
        latencies: list[float] = []

        async def worker() -> None:
            for i in counter:
                t = time.perf_counter()
                await built.service.identify(crops[i % len(crops)], face_mode=FaceMode.CROPPED)
                latencies.append(time.perf_counter() - t)

        await asyncio.gather(*(built.service.identify(c, face_mode=FaceMode.CROPPED) for c in crops[:concurrency]))
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    finally:
        await built.close()
    ms = np.array(latencies) * 1000
    return {"concurrency": concurrency, "requests": len(latencies), "qps": len(latencies) / elapsed,
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def over_grpc(data_dir: Path, crops: list[bytes], concurrency: int, total: int) -> dict:
    """Row 5: the same gallery served by a real server; Identify CROPPED over gRPC."""
    proc = ServerProcess(data_dir, "--warmup-batch", str(BATCH)).start()
    try:
        row = asyncio.run(drive(proc.target, lambda i: pb.IdentifyRequest(
            image=crops[i % len(crops)], face_mode=pb.FACE_MODE_CROPPED), concurrency, total))
    finally:
        proc.stop()
    row.pop("latencies_ms")
    return row


def breakdown(rates: dict[str, float]) -> dict[str, dict[str, float]]:
    """Each stage's ms per crop (the difference of its row and the one before) and share of the last row."""
    per_crop = {s: 1000.0 / rates[s] for s in STAGES}
    out, before = {}, 0.0
    for s in STAGES:
        cost = per_crop[s] - before
        out[s] = {"ms_per_crop": cost, "share": cost / per_crop[STAGES[-1]]}
        before = per_crop[s]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=256, help="Identify calls in rows 4 and 5 [256]")
    parser.add_argument("--concurrency", type=int, default=32, help="requests at once in rows 4 and 5 [32]")
    parser.add_argument("--rounds", type=int, default=2, help="timed runs of rows 1-3, each side [2]")
    args = parser.parse_args(argv)

    config = EmbedderConfig.from_env()
    samples = WeightsCache(config.cache_dir).sample_gallery()
    embedder = Embedder.load(config)
    embedder.warmup([1, BATCH])
    crops = sample_crops(embedder)
    before = raw_rows(embedder, crops, args.rounds)
    print("  before:", {k: round(v, 1) for k, v in before.items()}, flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-crops-") as tmp:
        service_row = asyncio.run(in_process(Path(tmp) / "data", crops, args.concurrency, args.requests, samples))
        print(f"  service in process c={args.concurrency}: {service_row['qps']:.1f}/s", flush=True)
        grpc_row = over_grpc(Path(tmp) / "data", crops, args.concurrency, args.requests)
        print(f"  gRPC server c={args.concurrency}: {grpc_row['qps']:.1f}/s", flush=True)
    after = raw_rows(embedder, crops, args.rounds)
    print("  after:", {k: round(v, 1) for k, v in after.items()}, flush=True)
    raw = {k: (before[k] + after[k]) / 2 for k in before}
    rates = {**raw, "service": service_row["qps"], "transport": grpc_row["qps"]}
    results = {"crops": len(crops), "batch": BATCH, "raw_before": before, "raw_after": after,
               "crops_per_s": rates, "service_in_process": service_row, "grpc_server": grpc_row,
               "stages": breakdown(rates),
               "identify_crop_vs_raw": grpc_row["qps"] / raw["decode"],
               "goal": "Identify on crops at c32 >= 0.9x the raw model (row 3: decode + preprocess + FaceNet)"}
    for s, row in results["stages"].items():
        print(f"  {s:>10}: {row['ms_per_crop']:6.2f} ms/crop  {100 * row['share']:5.1f}%")
    print(f"wrote {common.write('crops', results)}")


if __name__ == "__main__":
    main()
