"""REST/JSON against gRPC: Identify on crops and by embedding, through each transport, against one server.

    .venv/bin/python -m bench.http [--requests 160] [--concurrency 1,8,32]

One facesearch-server serves both transports over one service. At each concurrency, gRPC and REST
runs alternate for --rounds rounds and each keeps its median, so each ratio REST / gRPC is measured
in the same minutes on the same server. The goal: REST at least 0.8x gRPC on crops at concurrency 8.

Clients: grpc.aio stubs (as bench/server.py), and one httpx.AsyncClient with a connection per
concurrent request; crops go as multipart file parts, embeddings as JSON. Both clients run in this
process, so their own CPU cost is part of what is measured (on 2 cores it competes with the server):
client_cpu_ms is this process's CPU time per request.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from bench import common
from bench.server import sample_crops

from facesearch.client import AsyncFaceSearchClient, FaceSearchClient
from facesearch.embedder import Embedder
from facesearch.testing import ServerProcess
from facesearch.v1 import facesearch_pb2 as pb

GOAL = 0.8   # REST / gRPC on crops at concurrency 8


def summary(concurrency: int, latencies: list[float], elapsed: float, cpu: float) -> dict:
    ms = np.array(latencies) * 1000
    return {"concurrency": concurrency, "requests": len(latencies), "qps": len(latencies) / elapsed,
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "client_cpu_ms": cpu * 1000 / len(latencies)}


def median_run(runs: list[dict]) -> dict:
    """The run with the median QPS, and every round's QPS."""
    best = sorted(runs, key=lambda r: r["qps"])[len(runs) // 2]
    return {**best, "rounds_qps": [round(r["qps"], 2) for r in runs]}


async def run(concurrency: int, total: int, call) -> dict:
    """total calls of call(i), concurrency at a time; after one warm-up call per worker."""
    latencies: list[float] = []
    counter = iter(range(total))
    await asyncio.gather(*(call(i) for i in range(concurrency)))

    async def worker():
        for i in counter:
            t = time.perf_counter()
            await call(i)
            latencies.append(time.perf_counter() - t)

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return summary(concurrency, latencies, time.perf_counter() - start, time.process_time() - cpu)


async def level(proc: ServerProcess, concurrency: int, total: int, crops: list[bytes], vectors: np.ndarray,
                rounds: int) -> dict:
    clients = [AsyncFaceSearchClient(proc.target, timeout=120) for _ in range(min(concurrency, 8))]
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    rest = httpx.AsyncClient(base_url=proc.http_url, timeout=120, limits=limits)

    async def grpc_crop(i):
        request = pb.IdentifyRequest(image=crops[i % len(crops)], face_mode=pb.FACE_MODE_CROPPED)
        await clients[i % len(clients)].stub.Identify(request, timeout=120)

    async def rest_crop(i):
        r = await rest.post("/v1/identify", files={"image": ("crop.jpg", crops[i % len(crops)], "image/jpeg")},
                            data={"face_mode": "FACE_MODE_CROPPED"})
        r.raise_for_status()

    async def grpc_vector(i):
        request = pb.IdentifyRequest(embedding=pb.Embedding(values=vectors[i % len(vectors)].tolist()))
        await clients[i % len(clients)].stub.Identify(request, timeout=120)

    async def rest_vector(i):
        r = await rest.post("/v1/identify", json={"embedding": {"values": vectors[i % len(vectors)].tolist()}})
        r.raise_for_status()

    try:
        out: dict = {"concurrency": concurrency}
        for kind, (on_grpc, on_rest, n) in {"crops": (grpc_crop, rest_crop, total),
                                            "embedding": (grpc_vector, rest_vector, total * 3)}.items():
            runs: dict[str, list[dict]] = {"grpc": [], "rest": []}
            for _ in range(rounds):   # alternating, so that drift in the machine's load hits both alike
                runs["grpc"].append(await run(concurrency, n, on_grpc))
                runs["rest"].append(await run(concurrency, n, on_rest))
            out[f"grpc_{kind}"], out[f"rest_{kind}"] = median_run(runs["grpc"]), median_run(runs["rest"])
        out["ratio_crops"] = out["rest_crops"]["qps"] / out["grpc_crops"]["qps"]
        out["ratio_embedding"] = out["rest_embedding"]["qps"] / out["grpc_embedding"]["qps"]
        return out
    finally:
        await rest.aclose()
        for c in clients:
            await c.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=160, help="crop requests per transport and concurrency "
                                                                  "(three times as many by embedding)")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per transport; the median counts")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="facesearch-bench-http-"))
    try:
        embedder = Embedder.load()
        crops = sample_crops(embedder)
        del embedder
        proc = ServerProcess(tmp / "data", "--max-wait-ms", "5", "--warmup-batch", "64").start()
        try:
            with FaceSearchClient(proc.target, timeout=300) as c:
                for i in range(0, 60, 20):
                    c.enroll(f"person{i}", crops[i:i + 20], face_mode=pb.FACE_MODE_CROPPED)
                vectors = np.array([f.embedding.values for crop in crops[:32]
                                    for f in c.embed(crop, face_mode=pb.FACE_MODE_CROPPED).faces], np.float32)
            rows = [asyncio.run(level(proc, n, args.requests, crops, vectors, args.rounds)) for n in levels]
        finally:
            proc.terminate()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"{'conc':>4} | {'kind':<9} | {'gRPC QPS':>8} | {'REST QPS':>8} | {'REST/gRPC':>9} | "
          f"{'gRPC p50':>8} | {'REST p50':>8} | {'gRPC p99':>8} | {'REST p99':>8} | client CPU ms gRPC / REST")
    for r in rows:
        for kind in ("crops", "embedding"):
            g, h = r[f"grpc_{kind}"], r[f"rest_{kind}"]
            print(f"{r['concurrency']:>4} | {kind:<9} | {g['qps']:>8.1f} | {h['qps']:>8.1f} | "
                  f"{r[f'ratio_{kind}']:>9.2f} | {g['p50_ms']:>8.1f} | {h['p50_ms']:>8.1f} | {g['p99_ms']:>8.1f} | "
                  f"{h['p99_ms']:>8.1f} | {g['client_cpu_ms']:.2f} / {h['client_cpu_ms']:.2f}")
    c8 = next((r["ratio_crops"] for r in rows if r["concurrency"] == 8), None)
    if c8 is not None:
        print(f"goal REST >= {GOAL}x gRPC on crops at c8: {c8:.2f}x, {'met' if c8 >= GOAL else 'NOT met'}")
    common.write("http", {"requests_per_level": args.requests, "rounds": args.rounds, "goal_ratio_crops_c8": GOAL,
                          "levels": rows})


if __name__ == "__main__":
    main()
