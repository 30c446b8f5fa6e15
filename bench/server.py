"""Server throughput and latency, against the raw embedder and bare gallery search in the same run.

    .venv/bin/python -m bench.server [--requests 160] [--concurrency 1,8,32,64] [--gallery-size 100000]

1. Identify with cropped JPEG faces at each concurrency: QPS, p50, p99; the ratio to the raw
   embedder (decode + embed_crops) at its best batch, measured in this process meanwhile idle.
2. Identify by embedding at --gallery-size synthetic clustered faces: QPS at each concurrency,
   against Gallery.search in-process (batch 1 and batch 64), measured before the server starts.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import common

from facesearch.client import AsyncFaceSearchClient, FaceSearchClient
from facesearch.embedder import Embedder, WeightsCache, decode, primary_face
from facesearch.embedder.images import encode_jpeg
from facesearch.gallery import Enrolment, Gallery, GalleryConfig, NewFace
from facesearch.testing import ServerProcess
from facesearch.v1 import facesearch_pb2 as pb


def sample_crops(embedder: Embedder) -> list[bytes]:
    photos = sorted(WeightsCache(embedder.config.cache_dir).sample_gallery().glob("*/*/*.jpg"))
    images = [decode(p.read_bytes()) for p in photos]
    crops = []
    for img, faces in zip(images, embedder.find_faces_many(images)):
        face = primary_face(faces, img.shape)
        if face is not None:
            crops.append(encode_jpeg(face.crop))
    return crops


def raw_embedder(embedder: Embedder, crops: list[bytes], batches=(32, 64), rounds: int = 2) -> dict:
    out = {}
    pool = (crops * 4)[:128]
    for b in batches:
        embedder.embed_crops([decode(c) for c in pool[:b]])
        rates = []
        for _ in range(rounds):
            t = time.perf_counter()
            for i in range(0, len(pool), b):
                embedder.embed_crops([decode(c) for c in pool[i:i + b]])
            rates.append(len(pool) / (time.perf_counter() - t))
        out[b] = float(np.median(rates))
    return out


async def drive(target: str, make_request, concurrency: int, total: int) -> dict:
    latencies: list[float] = []
    counter = iter(range(total))

    async def worker(client):
        for i in counter:
            t = time.perf_counter()
            await client.stub.Identify(make_request(i), timeout=120)
            latencies.append(time.perf_counter() - t)

    clients = [AsyncFaceSearchClient(target) for _ in range(min(concurrency, 8))]
    await asyncio.gather(*(c.stub.Identify(make_request(0), timeout=120) for c in clients))  # warm channels
    start = time.perf_counter()
    await asyncio.gather(*(worker(clients[i % len(clients)]) for i in range(concurrency)))
    elapsed = time.perf_counter() - start
    for c in clients:
        await c.close()
    ms = np.array(latencies) * 1000
    return {"concurrency": concurrency, "requests": len(latencies), "qps": len(latencies) / elapsed,
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "latencies_ms": [round(float(x), 3) for x in np.sort(ms)]}  # every request: bench/report.py's CDFs


def clustered(n: int, rng) -> np.ndarray:
    centres = rng.normal(size=(max(1, n // 5), 128)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = np.repeat(centres, 5, 0)[:n] + 0.35 / np.sqrt(128) * rng.normal(size=(n, 128)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def bare_gallery(gallery: Gallery, queries: np.ndarray) -> dict:
    t = time.perf_counter()
    for q in queries[:200]:
        gallery.search(q[None], max_distance=None)
    single = 200 / (time.perf_counter() - t)
    t = time.perf_counter()
    for i in range(0, 640, 64):
        gallery.search(queries[i:i + 64], max_distance=None)
    batched = 640 / (time.perf_counter() - t)
    return {"batch1_qps": single, "batch64_qps": batched}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=160, help="requests per concurrency level")
    parser.add_argument("--concurrency", default="1,8,32,64")
    parser.add_argument("--gallery-size", type=int, default=100_000)
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="facesearch-bench-"))
    results: dict = {"requests_per_level": args.requests}
    try:
        embedder = Embedder.load()
        crops = sample_crops(embedder)
        raw = raw_embedder(embedder, crops)
        best = max(raw.values())
        results["raw_embedder_crops_per_s"] = raw

        proc = ServerProcess(tmp / "crops", "--max-wait-ms", "5", "--warmup-batch", "64").start()
        try:
            with FaceSearchClient(proc.target, timeout=300) as c:
                for i in range(0, 60, 20):
                    c.enroll(f"person{i}", crops[i:i + 20], face_mode=pb.FACE_MODE_CROPPED)

            def crop_request(i):
                return pb.IdentifyRequest(image=crops[i % len(crops)], face_mode=pb.FACE_MODE_CROPPED)

            rows = [asyncio.run(drive(proc.target, crop_request, n, args.requests)) for n in levels]
        finally:
            proc.terminate()
        for r in rows:
            r["ratio_vs_raw_embedder"] = r["qps"] / best
        results["identify_cropped"] = rows

        rng = np.random.default_rng(0)
        vectors = clustered(args.gallery_size, rng)
        queries = clustered(2000, np.random.default_rng(1))
        config = GalleryConfig(data_dir=tmp / "vectors")
        with Gallery.open(config, model_id=embedder.model_id, dimension=128) as g:
            for s in range(0, len(vectors), 5000):
                g.add_batch([Enrolment(f"id{s + j}", [NewFace(v)]) for j, v in enumerate(vectors[s:s + 5000])])
            bare = bare_gallery(g, queries)
        results["bare_gallery"] = {"faces": args.gallery_size, **bare}
        del embedder
        proc = ServerProcess(tmp / "vectors").start()
        try:
            def vector_request(i):
                q = queries[i % len(queries)]
                return pb.IdentifyRequest(embedding=pb.Embedding(values=q.tolist()))

            vrows = [asyncio.run(drive(proc.target, vector_request, n, max(args.requests, 400))) for n in levels]
        finally:
            proc.terminate()
        for r in vrows:
            r["ratio_vs_bare_batch1"] = r["qps"] / bare["batch1_qps"]
            r["ratio_vs_bare_batch64"] = r["qps"] / bare["batch64_qps"]
        results["identify_embedding"] = vrows
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print("raw embedder (decode + embed_crops): " + ", ".join(f"batch {b}: {v:.1f}/s" for b, v in raw.items()))
    print(f"{'Identify cropped':<18} {'conc':>4} | {'QPS':>7} | {'p50 ms':>7} | {'p99 ms':>7} | ratio vs raw best")
    for r in rows:
        print(f"{'':<18} {r['concurrency']:>4} | {r['qps']:>7.1f} | {r['p50_ms']:>7.1f} | {r['p99_ms']:>7.1f} | "
              f"{r['ratio_vs_raw_embedder']:.2f}")
    print(f"bare Gallery.search at {args.gallery_size:,} faces: batch 1 {bare['batch1_qps']:.0f} QPS, "
          f"batch 64 {bare['batch64_qps']:.0f} QPS")
    print(f"{'Identify embedding':<18} {'conc':>4} | {'QPS':>7} | {'p50 ms':>7} | {'p99 ms':>7} | vs bare b1 | vs bare b64")
    for r in vrows:
        print(f"{'':<18} {r['concurrency']:>4} | {r['qps']:>7.1f} | {r['p50_ms']:>7.1f} | {r['p99_ms']:>7.1f} | "
              f"{r['ratio_vs_bare_batch1']:>10.2f} | {r['ratio_vs_bare_batch64']:.2f}")
    common.write("server", results)


if __name__ == "__main__":
    main()
