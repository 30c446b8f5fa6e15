"""Vector backends side by side: FAISS in-process, Milvus Lite and a Milvus 2.3 server.

    python -m bench.backends [--n 100000 1000000] [--index hnsw] [--queries 200]

The same clustered vectors for all (identities with several noisy faces each, 128-d unit
vectors), through the project's own index classes (FaissIndex, MilvusIndex, as the Gallery
uses them): insert rate (faces/s, until searchable with the index built), QPS at batch 1
and batch 64, p50/p99 at batch 1, and recall@1 against an exact search (FAISS flat, the
baseline, measured in the same run). The server runs on loopback in a private network
namespace (bench/milvus_server.py), reached through a relay, and is searched at Strong
consistency (what facesearch uses) and at Session (read-your-writes for one client only);
a note counts how often a search right after an upsert finds it at Session.

Then the lag of a replica following the change log (gallery/follow.py): two galleries with
FAISS on one database (PostgreSQL from pgserver when installed, else a shared SQLite file),
B following every --follow-ms as the server's follower thread does; each write on A is
timed from its acknowledgement until a search on B finds it.

Then (--replicas N, 0 to skip) replicas end to end: N faces on PostgreSQL (pgserver), two
facesearch-server processes on the Milvus server against two on FAISS, one pair at a time on
the same database, each pair driven through gRPC with Identify by embedding at concurrency
1, 8 and 32 (client threads alternating between the two replicas), both on the --index kind.
Milvus replicas search at the guarantee timestamp of the newest committed write
(gallery/milvus_index.py).
Writes bench/results/backends.json (backends_replicas.json with `--n` given no sizes: the
replica pairs alone).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench.common import write

D = 128
FACES_EACH = 5


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def data(n: int, queries: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    people = max(1, n // FACES_EACH)
    centres = unit(rng.normal(size=(people, D)))
    noise = 0.6 / math.sqrt(D)
    owner = np.arange(n) % people
    faces = unit(centres[owner] + noise * rng.normal(size=(n, D)))
    q = unit(centres[rng.integers(0, people, queries)] + noise * rng.normal(size=(queries, D)))
    return np.arange(1, n + 1, dtype=np.int64), faces, q


def timed_searches(index, q: np.ndarray, batch: int, limit: int | None = None) -> tuple[list[float], np.ndarray]:
    lat, ids = [], []
    stop = len(q) if limit is None else min(len(q), limit)
    for i in range(0, stop, batch):
        t = time.perf_counter()
        _, found = index.search(q[i:i + batch], 1)
        lat.append(time.perf_counter() - t)
        ids.append(found[:, 0])
    return lat, np.concatenate(ids)


def measure(name: str, index, ids, x, q, exact, *, strong_queries: int | None = None, wait=None) -> dict:
    t = time.perf_counter()
    index.add(ids, x)
    if wait:
        wait()
    insert_s = time.perf_counter() - t
    index.search(q[:4], 1)   # warm
    lat1, top1 = timed_searches(index, q, 1, strong_queries)
    lat64, _ = timed_searches(index, np.tile(q, (max(1, 320 // len(q) + 1), 1))[:320], 64)
    out = {"backend": name, "description": index.description, "n": int(len(ids)),
           "insert_faces_per_s": len(ids) / insert_s, "insert_s": insert_s,
           "p50_ms": float(np.percentile(lat1, 50) * 1e3), "p99_ms": float(np.percentile(lat1, 99) * 1e3),
           "qps_batch1": len(lat1) / sum(lat1), "qps_batch64": 320 / sum(lat64),
           "recall@1": float(np.mean(top1 == exact[:len(top1)])), "queries_batch1": len(lat1)}
    print(f"{name:24s} insert {out['insert_faces_per_s']:9.0f}/s  p50 {out['p50_ms']:8.2f} ms  "
          f"QPS b1 {out['qps_batch1']:8.1f}  b64 {out['qps_batch64']:8.1f}  R@1 {out['recall@1']:.3f}", flush=True)
    return out


def milvus_wait(index, n: int, timeout: float = 300):
    """Until the collection is flushed and its vector index covers every row (steady state)."""
    def wait():
        c = index.client
        try:
            c.flush(index.collection)
        except Exception:
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                info = c.describe_index(index.collection, "vector")
                if int(info.get("indexed_rows", n)) >= n and int(info.get("pending_index_rows", 0)) == 0:
                    return
            except Exception:
                return
            time.sleep(1)
    return wait


def replica_lag(folder: Path, writes: int, follow_s: float) -> dict:
    """Seconds from a write's acknowledgement on replica A until replica B's search finds it."""
    from facesearch.gallery import Gallery, GalleryConfig, IndexConfig, NewFace

    folder.mkdir(parents=True, exist_ok=True)
    url, database, server = f"sqlite:///{folder / 'shared.db'}", "SQLite file shared by both", None
    try:
        import pgserver

        server = pgserver.get_server(folder / "pg", cleanup_mode="stop")
        url, database = server.get_uri(), "PostgreSQL 16 (pgserver)"   # sql.connect picks psycopg 3
    except Exception as exc:   # not installed, or it cannot start here
        print(f"replica lag on SQLite: {exc}")

    def replica(name):
        config = GalleryConfig(data_dir=folder / name, database_url=url, index=IndexConfig(use_gpu=False))
        return Gallery.open(config, model_id="bench", dimension=D)

    a, b = replica("a"), replica("b")
    stop = threading.Event()

    def follower():   # as service/runtime.py's follower thread
        while not stop.wait(follow_s):
            b.follow()

    thread = threading.Thread(target=follower, daemon=True)
    thread.start()
    rng = np.random.default_rng(7)
    lags = []
    try:
        for i in range(writes):
            v = unit(rng.normal(size=(1, D)))
            face = a.add_faces(f"p{i}", [NewFace(v[0])]).face_ids[0]
            acked = time.perf_counter()
            while not [m for m in b.search(v, max_distance=0.01)[0] if m.face_id == face]:
                time.sleep(0.001)
            lags.append(time.perf_counter() - acked)
            time.sleep(float(rng.uniform(0, follow_s)))   # writes land at every phase of the follower
    finally:
        stop.set()
        thread.join()
        a.close()
        b.close()
        if server is not None:
            server.cleanup()
    out = {"database": database, "follow_ms": follow_s * 1e3, "writes": writes,
           "p50_ms": float(np.percentile(lags, 50) * 1e3), "p99_ms": float(np.percentile(lags, 99) * 1e3),
           "max_ms": float(max(lags) * 1e3)}
    print(f"replica lag ({database}, follow every {out['follow_ms']:.0f} ms): p50 {out['p50_ms']:.0f} ms, "
          f"p99 {out['p99_ms']:.0f} ms, max {out['max_ms']:.0f} ms", flush=True)
    return out


def replica_pairs(folder: Path, n: int, server, seconds: float, kind: str, levels=(1, 8, 32)) -> dict:
    """Identify by embedding through gRPC against two Milvus replicas and two FAISS replicas on
    one PostgreSQL database of n faces, index `kind` for both: QPS and latency per concurrency
    level, pair by pair. The Milvus collection is flushed and indexed first (steady state: rows
    inserted lately sit in growing segments, searched without the index)."""
    from concurrent.futures import ThreadPoolExecutor

    import pgserver

    from facesearch.client import FaceSearchClient
    from facesearch.embedder import DEFAULT_MODEL
    from facesearch.gallery import Enrolment, Gallery, GalleryConfig, IndexConfig, NewFace
    from facesearch.testing import ServerProcess

    folder.mkdir(parents=True, exist_ok=True)
    pg = pgserver.get_server(folder / "pg", cleanup_mode="stop")
    url = pg.get_uri()
    ids, x, q = data(n, 2000, seed=5)
    t = time.perf_counter()
    with Gallery.open(GalleryConfig(data_dir=folder / "loader", database_url=url, index=IndexConfig(use_gpu=False)),
                      model_id=DEFAULT_MODEL, dimension=D) as g:
        people = max(1, n // FACES_EACH)
        for start in range(0, people, 2000):
            g.add_batch([Enrolment(f"p{p}", [NewFace(v) for v in x[p::people]])
                         for p in range(start, min(people, start + 2000))])
    load_s = time.perf_counter() - t
    print(f"replicas: {n:,} faces into PostgreSQL in {load_s:.0f} s", flush=True)
    pairs = {"faiss": {"FACESEARCH_INDEX": kind}}
    if server is not None:
        pairs["milvus"] = {"FACESEARCH_VECTOR_BACKEND": "milvus", "FACESEARCH_MILVUS_URI": server.uri,
                           "FACESEARCH_MILVUS_COLLECTION": "bench_replicas", "FACESEARCH_INDEX": kind}
    out = {"faces": n, "index": kind, "database": "PostgreSQL 16 (pgserver)", "load_s": load_s, "pairs": {}}
    try:
        for backend, env in pairs.items():
            procs = [ServerProcess(folder / f"{backend}_{i}", env={"FACESEARCH_DATABASE_URL": url, **env})
                     for i in range(2)]
            for p in procs:
                p.start(timeout=900, wait_serving=False)
            try:
                for p in procs:
                    p.wait_serving(900)
                if backend == "milvus":
                    from types import SimpleNamespace

                    from pymilvus import MilvusClient

                    admin = MilvusClient(uri=server.uri)
                    milvus_wait(SimpleNamespace(client=admin, collection="bench_replicas"), n)()
                    admin.close()
                clients = [FaceSearchClient(p.target, timeout=60) for p in procs]
                rows = []
                for c in levels:
                    def one(i):
                        t0 = time.perf_counter()
                        reply = clients[i % 2].identify(embedding=q[i % len(q)], top_k=1)
                        return time.perf_counter() - t0, bool(reply.faces and reply.faces[0].matches)
                    with ThreadPoolExecutor(c) as pool:
                        list(pool.map(one, range(2 * c)))   # warm both replicas' channels and caches
                        t0, done = time.perf_counter(), []
                        while time.perf_counter() - t0 < seconds:
                            done += pool.map(one, range(len(done), len(done) + c * 20))
                        wall = time.perf_counter() - t0
                    lat = np.array([d for d, _ in done])
                    rows.append({"concurrency": c, "requests": len(done), "qps": len(done) / wall,
                                 "p50_ms": float(np.percentile(lat, 50) * 1e3),
                                 "p99_ms": float(np.percentile(lat, 99) * 1e3),
                                 "matched": float(np.mean([m for _, m in done]))})
                    r = rows[-1]
                    print(f"replicas {backend:6s} c{c:<3d} QPS {r['qps']:7.1f}  p50 {r['p50_ms']:7.2f} ms  "
                          f"p99 {r['p99_ms']:7.2f} ms  matched {r['matched']:.2f}", flush=True)
                for cl in clients:
                    cl.close()
                out["pairs"][backend] = rows
            finally:
                for p in procs:
                    p.stop()
    finally:
        pg.cleanup()
    if "milvus" in out["pairs"]:
        out["milvus_vs_faiss_qps"] = {r["concurrency"]: r["qps"] / f["qps"]
                                      for r, f in zip(out["pairs"]["milvus"], out["pairs"]["faiss"])}
    return out


def run(n: int, args, tmp: Path, server) -> dict:
    """Every backend on the same n vectors."""
    from facesearch.gallery import FaissIndex, GalleryConfig, IndexConfig
    from facesearch.gallery.milvus_index import MilvusIndex

    print(f"== {n:,} faces", flush=True)
    ids, x, q = data(n, args.queries)
    cfg = IndexConfig(kind=args.index, use_gpu=False, ivf_nprobe=16)
    exact_index = FaissIndex(D, IndexConfig(kind="flat", use_gpu=False))
    exact_index.add(ids, x)
    exact = exact_index.search(q, 1)[1][:, 0]
    exact_index.close()
    results = [measure("faiss flat (exact)", FaissIndex(D, IndexConfig(kind="flat", use_gpu=False)), ids, x, q,
                       exact)]
    if args.index != "flat":
        results.append(measure(f"faiss {args.index}", FaissIndex(D, cfg), ids, x, q, exact))
    notes = []
    if "lite" not in args.skip:
        config = GalleryConfig(data_dir=tmp, vector_backend="milvus", index=cfg,
                               milvus_uri=str(tmp / f"lite_{n}.db"), milvus_collection=f"bench_{n}",
                               milvus_timeout_s=3600)
        index = MilvusIndex(D, config)
        results.append(measure("milvus lite", index, ids, x, q, exact, wait=milvus_wait(index, n)))
        index.drop()
    if server is not None:
        config = GalleryConfig(data_dir=tmp, vector_backend="milvus", index=cfg,
                               milvus_uri=server.uri, milvus_collection=f"bench_{n}",
                               milvus_timeout_s=3600)
        index = MilvusIndex(D, config)
        index.consistency = "Session"
        results.append(measure("milvus server (Session)", index, ids, x, q, exact, wait=milvus_wait(index, n)))
        index.consistency = "Strong"
        r = measure("milvus server (Strong)", index, np.zeros(0, np.int64), np.zeros((0, D), np.float32),
                    q, exact, strong_queries=args.strong_queries)
        r.update(n=n, insert_faces_per_s=None, insert_s=None)
        results.append(r)
        index.consistency = "Session"   # read-your-writes at Session: upsert, then search at once
        seen = 0
        for i in range(20):
            v = unit(np.random.default_rng(100 + i).normal(size=(1, D)))
            new_id = 100_000_000 + i
            index.add(np.array([new_id]), v)
            seen += int(index.search(v, 1)[1][0, 0] == new_id)
        notes.append(f"Session consistency: {seen}/20 searches right after an upsert found it")
        index.drop()
    return {"n": n, "results": results, "notes": notes}


def main(argv=None) -> None:
    from bench.milvus_server import MilvusServer, MilvusUnavailable

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="*", default=[100_000, 1_000_000], help="faces, one run each "
                        "[%(default)s]")
    parser.add_argument("--index", choices=["flat", "ivf", "hnsw"], default="hnsw", help="index kind [%(default)s]")
    parser.add_argument("--queries", type=int, default=200, help="batch-1 queries per backend [%(default)s]")
    parser.add_argument("--strong-queries", type=int, default=30,
                        help="batch-1 queries at Strong consistency on the server (~300 ms each) [%(default)s]")
    parser.add_argument("--skip", nargs="*", default=[], choices=["lite", "server", "lag"])
    parser.add_argument("--lag-writes", type=int, default=100, help="writes timed for the replica lag [%(default)s]")
    parser.add_argument("--follow-ms", type=float, default=250.0,
                        help="the follower's interval, as FACESEARCH_FOLLOW_MS [%(default)s]")
    parser.add_argument("--replicas", type=int, default=100_000,
                        help="faces for the replica pairs through gRPC (0: skip them) [%(default)s]")
    parser.add_argument("--replica-seconds", type=float, default=10.0,
                        help="seconds of Identify per replica pair and concurrency [%(default)s]")
    args = parser.parse_args(argv)

    runs, notes, lag, pairs = [], [], None, None
    with tempfile.TemporaryDirectory(prefix="fs-bench-") as tmp:
        tmp = Path(tmp)
        server = None
        if "server" not in args.skip:
            try:
                server = MilvusServer(tmp / "server").start()
            except MilvusUnavailable as exc:
                notes.append(f"Milvus server skipped: {exc}")
                print(notes[-1])
        try:
            runs = [run(n, args, tmp, server) for n in args.n]
            if args.replicas:
                pairs = replica_pairs(tmp / "replicas", args.replicas, server, args.replica_seconds, args.index)
        finally:
            if server is not None:
                server.stop()
        if "lag" not in args.skip:
            lag = replica_lag(tmp / "lag", args.lag_writes, args.follow_ms / 1000)
    notes.append("the server is reached through a loopback relay (bench/milvus_server.py), which adds "
                 "a little latency per call; Milvus Lite runs in this process")
    write("backends" if args.n else "backends_replicas",
          {"dimension": D, "faces_per_identity": FACES_EACH, "index": args.index, "baseline": "faiss flat (exact)",
           "runs": runs, "replica_lag": lag, "replicas": pairs, "notes": notes})


if __name__ == "__main__":
    main()
