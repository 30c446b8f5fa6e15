"""Gallery: add throughput, snapshot and restart times, search latency, throughput and
recall by index type (flat, ivf, hnsw), side by side with bare FAISS over the same vectors.

    .venv/bin/python -m bench.gallery [--sizes 10000,100000,1000000] [--types flat,ivf,hnsw]
                                      [--queries 200] [--rounds 3] [--quick]

Data: synthetic clustered unit vectors, the realistic case (docs/performance.md#clustered-test-data:
on random vectors every approximate index looks terrible). Each identity has --faces-per-identity faces,
its centre plus Gaussian noise of norm about --noise, renormalised; a query is a fresh
noisy face of a random enrolled identity. The data check printed first shows that the
exact nearest face belongs to the query's identity, so identity hit@1 is meaningful.

For each N the first N - tail faces go in through Gallery.add_batch in batches of
--batch faces into the real SQLite file (flat index: that figure is the SQL path).
Then, for each index type, a copy of that database is opened with that index type
(rebuild from SQL, timed), the last `tail` faces are added through add_batch (timed,
so every type is measured adding at size ~N), the snapshot is written, loaded, and
the gallery restarted (all timed). Searches on the restarted gallery:

    gallery  Gallery.search(q, top_k=1, max_distance=None): normalise, FAISS, SQL join, group
    index    Gallery.nearest_faces(q, k): the FaissIndex wrapper alone
    bare     a FAISS index built directly (IndexFlatL2, IndexIVFFlat with the gallery's
             nlist/nprobe, IndexHNSWFlat with the same M/efConstruction/efSearch)

all at the k that Gallery.search asks FAISS for (top_k * 4 + 4 = 8), interleaved
query by query (batch 1) and batch by batch (batch 64), the order rotating each time,
so machine noise hits each alike. Recall is
face-level against exact search (R@1, R@10 of FAISS ids) and identity hit@1 against
the query's true identity. Ratios are gallery/bare: throughput at batch 64 (goal
>= 0.9) and batch-1 p50 latency (1.00 = no overhead, higher = slower).

Threads: bare FAISS runs on FAISS's default OpenMP thread count (--threads to change
it), restored before every bare call; the gallery keeps its own policy (FaissIndex.search
sets the calling thread's count by batch size), so batch-1 ratios include that policy.

Figures on this shared machine move about 2x between runs; the ratios, measured side
by side in one run, are what count.
"""

from __future__ import annotations

import argparse
import logging
import re
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

import faiss

from bench import common

from facesearch.gallery import (
    Enrolment,
    FaissIndex,
    Gallery,
    GalleryConfig,
    IndexConfig,
    NewFace,
)
from facesearch.gallery import snapshot as snapshot_mod

DIM = 128
MODEL = "bench"
TOP_K = 1
SEARCH_K = TOP_K * 4 + 4   # what Gallery.search asks FAISS for on its first pass
BATCH64 = 64
THREADS = faiss.omp_get_max_threads()   # FAISS's default; main() may change it (--threads)


def default_threads() -> None:
    """FaissIndex.search sets the calling thread's OpenMP thread count for its batch size
    and leaves it so; put the default back before bare FAISS work, which must not inherit it."""
    faiss.omp_set_num_threads(THREADS)


# -- data -----------------------------------------------------------------------
def make_data(n: int, per_identity: int, noise: float, n_queries: int, seed: int):
    """(faces (n, d), identity of each face (n,), queries (q, d), identity of each query (q,))."""
    rng = np.random.default_rng(seed)
    n_ids = n // per_identity
    centres = rng.standard_normal((n_ids, DIM), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    owner = np.repeat(np.arange(n_ids), per_identity)
    faces = np.empty((n, DIM), np.float32)
    for lo in range(0, n, 200_000):   # in chunks, to keep the temporaries small at 1M
        hi = min(lo + 200_000, n)
        x = centres[owner[lo:hi]] + rng.standard_normal((hi - lo, DIM), dtype=np.float32) * (noise / np.sqrt(DIM))
        faces[lo:hi] = x / np.linalg.norm(x, axis=1, keepdims=True)
    q_owner = rng.integers(0, n_ids, n_queries)
    q = centres[q_owner] + rng.standard_normal((n_queries, DIM), dtype=np.float32) * (noise / np.sqrt(DIM))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return faces, owner, q.astype(np.float32), q_owner


def identity_name(i: int) -> str:
    return f"id{i:07d}"


def enrolments(faces: np.ndarray, owner: np.ndarray, lo: int, hi: int) -> list[Enrolment]:
    out: list[Enrolment] = []
    i = lo
    while i < hi:
        j = i
        while j < hi and owner[j] == owner[i]:
            j += 1
        out.append(Enrolment(identity_name(int(owner[i])), [NewFace(embedding=faces[k]) for k in range(i, j)],
                             display_name=f"Person {int(owner[i])}"))
        i = j
    return out


def add_all(g: Gallery, faces, owner, lo: int, hi: int, batch: int) -> tuple[float, np.ndarray]:
    """Add faces[lo:hi] through add_batch, `batch` faces per call; (seconds, face ids)."""
    ids: list[int] = []
    elapsed = 0.0
    for b in range(lo, hi, batch):
        ens = enrolments(faces, owner, b, min(b + batch, hi))   # built outside the clock
        t = time.perf_counter()
        res = g.add_batch(ens)
        elapsed += time.perf_counter() - t
        ids += [i for r in res for i in r.face_ids]
    return elapsed, np.array(ids, np.int64)


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def copy_db(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True)
    for p in src.iterdir():
        if p.name.startswith("gallery.db"):   # the database, and its -wal/-shm if left
            shutil.copy2(p, dst / p.name)


def nlist_of(description: str) -> int | None:
    """The lists of a trained IVF index, from Gallery.index_description ("ivf(nlist=64,nprobe=16)")."""
    m = re.match(r"ivf\(nlist=(\d+)", description)
    return int(m.group(1)) if m else None


# -- bare FAISS ---------------------------------------------------------------------
def bare_index(g: Gallery, cfg: IndexConfig, faces: np.ndarray, flat):
    """(index, build seconds, label) built directly with FAISS to match the gallery's index."""
    default_threads()
    t = time.perf_counter()
    if cfg.kind == "hnsw":
        ix = faiss.IndexHNSWFlat(DIM, cfg.hnsw_m)
        ix.hnsw.efConstruction = cfg.hnsw_ef_construction
        ix.hnsw.efSearch = cfg.hnsw_ef_search
        ix.add(faces)
        label = f"HNSWFlat(M={cfg.hnsw_m},efc={cfg.hnsw_ef_construction},ef={cfg.hnsw_ef_search})"
    elif cfg.kind == "ivf" and nlist_of(g.index_description):
        nlist = nlist_of(g.index_description)
        quantizer = faiss.IndexFlatL2(DIM)
        ix = faiss.IndexIVFFlat(quantizer, DIM, nlist, faiss.METRIC_L2)
        ix.cp.seed = 1234
        ix.train(faces)
        ix.add(faces)
        ix.nprobe = cfg.ivf_nprobe
        label = f"IVFFlat(nlist={nlist},nprobe={cfg.ivf_nprobe})"
    else:
        return flat, 0.0, "FlatL2" + (" (gallery ivf is untrained: flat)" if cfg.kind == "ivf" else "")
    return ix, time.perf_counter() - t, label


# -- measuring ------------------------------------------------------------------------
def measure(contestants: dict, queries: np.ndarray, rounds: int) -> dict:
    """Batch-1 latencies and batch-64 throughput. Interleaved finely: every query (batch 1)
    and every batch of 64 is run by each contestant in turn, the order rotating each
    time, so a burst of load from elsewhere on the machine hits them all alike."""
    names = list(contestants)
    lat = {n: [] for n in names}
    qps = {n: [] for n in names}
    for fn in contestants.values():   # warm up
        fn(queries[:1])
        fn(queries[:BATCH64])
    turn = 0
    for _ in range(rounds):
        for i in range(len(queries)):
            q = queries[i:i + 1]
            for name in names[turn % len(names):] + names[:turn % len(names)]:
                t = time.perf_counter()
                contestants[name](q)
                lat[name].append(time.perf_counter() - t)
            turn += 1
        spent = dict.fromkeys(names, 0.0)
        for i in range(0, len(queries), BATCH64):
            q = queries[i:i + BATCH64]
            for name in names[turn % len(names):] + names[:turn % len(names)]:
                t = time.perf_counter()
                contestants[name](q)
                spent[name] += time.perf_counter() - t
            turn += 1
        for name in names:
            qps[name].append(len(queries) / spent[name])
    out = {}
    for name in names:
        a = np.array(lat[name]) * 1000
        out[name] = {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
                     "qps_batch64": float(np.median(qps[name])), "qps_batch64_rounds": qps[name]}
    return out


def recall(found: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    r1 = float(np.mean(found[:, 0] == truth[:, 0]))
    r10 = float(np.mean([len(set(a[:10].tolist()) & set(b[:10].tolist())) / 10 for a, b in zip(found, truth)]))
    return r1, r10


def run_type(kind: str, args, n: int, work: Path, template: Path, faces, owner, queries, q_owner,
             bulk_ids: np.ndarray, face_ids: np.ndarray, truth_ids: np.ndarray, flat, tail_lo: int) -> dict:
    icfg = IndexConfig(kind=kind, ivf_nprobe=args.ivf_nprobe, ivf_nlist=args.ivf_nlist, hnsw_m=args.hnsw_m,
                       hnsw_ef_search=args.hnsw_ef_search, hnsw_ef_construction=args.hnsw_ef_construction,
                       use_gpu=False)
    data_dir = work / kind
    copy_db(template, data_dir)
    default_threads()   # the rebuild must not inherit the one thread a small search left behind
    cfg = GalleryConfig(data_dir=data_dir, index=icfg)
    row: dict = {"n": n, "type": kind}

    t = time.perf_counter()
    g = Gallery.open(cfg, model_id=MODEL, dimension=DIM)   # no snapshot: rebuilds from SQL, then snapshots
    row["open_rebuild_s"] = time.perf_counter() - t
    tail_s, tail_ids = add_all(g, faces, owner, tail_lo, n, args.batch)
    assert np.array_equal(np.concatenate([bulk_ids, tail_ids]), face_ids), "face ids differ between copies"
    row["add_tail_faces"] = n - tail_lo
    row["add_tail_faces_per_s"] = (n - tail_lo) / tail_s if tail_s else None
    t = time.perf_counter()
    path = g.snapshot()
    row["snapshot_write_s"] = time.perf_counter() - t
    row["snapshot_bytes"] = dir_bytes(g.snapshot_dir)
    row["description"] = g.index_description
    row["nlist"] = nlist_of(g.index_description)
    key = g._snapshot_key()
    g.close()

    fresh = FaissIndex(DIM, icfg)
    t = time.perf_counter()
    assert snapshot_mod.read(g.snapshot_dir, key, fresh) is not None, "snapshot did not load"
    row["snapshot_load_s"] = time.perf_counter() - t
    del fresh
    t = time.perf_counter()
    faiss.read_index(str(path))
    row["bare_read_index_s"] = time.perf_counter() - t

    t = time.perf_counter()
    g = Gallery.open(cfg)
    row["restart_s"] = time.perf_counter() - t
    try:
        bare, build_s, label = bare_index(g, icfg, faces, flat)
        row["bare_index"], row["bare_build_s"] = label, build_s

        def bare_search(q):
            default_threads()
            return bare.search(q, SEARCH_K)

        contestants = {
            "gallery": lambda q: g.search(q, top_k=TOP_K, max_distance=None),
            "index": lambda q: g.nearest_faces(q, SEARCH_K),
            "bare": bare_search,
        }
        row.update(measure(contestants, queries, args.rounds))

        _, got = g.nearest_faces(queries, 10)
        row["gallery"]["recall@1"], row["gallery"]["recall@10"] = recall(got, truth_ids)
        default_threads()
        _, pos = bare.search(queries, 10)
        row["bare"]["recall@1"], row["bare"]["recall@10"] = recall(face_ids[pos], truth_ids)
        names = [m[0].identity_id if m else None for m in g.search(queries, top_k=1, max_distance=None)]
        row["gallery"]["identity_hit@1"] = float(np.mean([a == identity_name(int(b)) for a, b in zip(names, q_owner)]))
        row["bare"]["identity_hit@1"] = float(np.mean(owner[pos[:, 0]] == q_owner))
        row["ratio_qps_batch64"] = row["gallery"]["qps_batch64"] / row["bare"]["qps_batch64"]
        row["ratio_p50_batch1"] = row["gallery"]["p50_ms"] / row["bare"]["p50_ms"]
        row["ratio_index_qps_batch64"] = row["index"]["qps_batch64"] / row["bare"]["qps_batch64"]
        row["ratio_index_p50_batch1"] = row["index"]["p50_ms"] / row["bare"]["p50_ms"]
    finally:
        g.close(snapshot=False)
        shutil.rmtree(data_dir, ignore_errors=True)
    return row


def run_size(n: int, args, work: Path) -> tuple[dict, list[dict]]:
    per = args.faces_per_identity
    n = n - n % per
    faces, owner, queries, q_owner = make_data(n, per, args.noise, args.queries, args.seed)
    tail = min(args.tail, n // 2)
    tail -= tail % per
    tail_lo = n - tail

    flat = faiss.IndexFlatL2(DIM)
    flat.add(faces)
    dist, pos = flat.search(queries, 10)
    info = {"n": n, "identities": n // per, "faces_per_identity": per, "noise": args.noise,
            "queries": len(queries), "tail_faces": tail,
            "exact_top1_is_own_identity": float(np.mean(owner[pos[:, 0]] == q_owner)),
            "exact_top5_own_share": float(np.mean(owner[pos[:, :per]] == q_owner[:, None])),
            "mean_sq_l2_top1": float(dist[:, 0].mean()),
            f"mean_sq_l2_top{per}": float(dist[:, per - 1].mean()),
            f"mean_sq_l2_top{per + 1}_nearest_other": float(dist[:, per].mean())}

    template = work / "template"
    bulk_cfg = GalleryConfig(data_dir=template, index=IndexConfig(kind="flat", use_gpu=False))
    g = Gallery.open(bulk_cfg, model_id=MODEL, dimension=DIM)
    bulk_s, bulk_ids = add_all(g, faces, owner, 0, tail_lo, args.batch)
    g.close()   # snapshots, which prunes the change log as a running gallery would
    shutil.rmtree(template / "index")
    info["bulk_faces"] = tail_lo
    info["bulk_add_s"] = bulk_s
    info["bulk_add_faces_per_s"] = tail_lo / bulk_s if bulk_s else None
    info["db_bytes"] = sum(p.stat().st_size for p in template.iterdir() if p.name.startswith("gallery.db"))

    # the same ids every copy will hand out for the tail (AUTOINCREMENT continues from the bulk)
    face_ids = np.concatenate([bulk_ids, np.arange(bulk_ids[-1] + 1, bulk_ids[-1] + 1 + tail, dtype=np.int64)
                               if len(bulk_ids) else np.arange(1, tail + 1, dtype=np.int64)])
    truth_ids = face_ids[pos]

    rows = []
    for kind in args.types:
        t = time.perf_counter()
        row = run_type(kind, args, n, work, template, faces, owner, queries, q_owner, bulk_ids, face_ids,
                       truth_ids, flat, tail_lo)
        row["wall_s"] = time.perf_counter() - t
        rows.append(row)
        print_row(row, flush=True)
    shutil.rmtree(template, ignore_errors=True)
    return info, rows


# -- output ---------------------------------------------------------------------------
HEADER = (f"{'N':>8} {'type':<5} | {'rebuild':>7} {'add/s':>7} | {'snap w':>6} {'load':>5} {'MiB':>5} {'restart':>7} | "
          f"{'p50 ms':>13} {'p99 ms':>13} {'p50 x':>5} | {'QPS b64':>15} {'ratio':>5} {'idx':>4} | "
          f"{'R@1':>11} {'R@10':>11} {'id@1':>5}")
SUB = (f"{'':>8} {'':<5} | {'s':>7} {'':>7} | {'s':>6} {'s':>5} {'':>5} {'s':>7} | "
       f"{'gal / bare':>13} {'gal / bare':>13} {'':>5} | {'gal / bare':>15} {'':>5} {'':>4} | "
       f"{'gal / bare':>11} {'gal / bare':>11} {'gal':>5}")


def print_row(r: dict, flush: bool = False) -> None:
    g, b = r["gallery"], r["bare"]
    print(f"{r['n']:>8} {r['type']:<5} | {r['open_rebuild_s']:>7.2f} {r['add_tail_faces_per_s']:>7.0f} | "
          f"{r['snapshot_write_s']:>6.2f} {r['snapshot_load_s']:>5.2f} {r['snapshot_bytes'] / 2**20:>5.0f} "
          f"{r['restart_s']:>7.2f} | {g['p50_ms']:>6.2f}/{b['p50_ms']:<6.2f} {g['p99_ms']:>6.2f}/{b['p99_ms']:<6.2f} "
          f"{r['ratio_p50_batch1']:>5.2f} | {g['qps_batch64']:>7.0f}/{b['qps_batch64']:<7.0f} "
          f"{r['ratio_qps_batch64']:>5.2f} {r['ratio_index_qps_batch64']:>4.2f} | "
          f"{g['recall@1']:>5.3f}/{b['recall@1']:<5.3f} {g['recall@10']:>5.3f}/{b['recall@10']:<5.3f} "
          f"{g['identity_hit@1']:>5.3f}", flush=flush)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="gallery sizes N (faces), comma-separated")
    parser.add_argument("--types", default="flat,ivf,hnsw", help="index types, comma-separated")
    parser.add_argument("--quick", action="store_true", help="only N = 10k")
    parser.add_argument("--queries", type=int, default=200, help="queries per round (batch 1 and batch 64)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    parser.add_argument("--batch", type=int, default=1000, help="faces per add_batch call")
    parser.add_argument("--tail", type=int, default=10_000, help="faces each index type adds at size ~N")
    parser.add_argument("--faces-per-identity", type=int, default=5)
    parser.add_argument("--noise", type=float, default=0.6, help="norm of each face's offset from its centre")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--ivf-nlist", type=int, default=0, help="0: the gallery's own choice, 4*sqrt(N at training)")
    parser.add_argument("--ivf-nprobe", type=int, default=IndexConfig().ivf_nprobe)
    parser.add_argument("--hnsw-m", type=int, default=IndexConfig().hnsw_m)
    parser.add_argument("--hnsw-ef-search", type=int, default=IndexConfig().hnsw_ef_search)
    parser.add_argument("--hnsw-ef-construction", type=int, default=IndexConfig().hnsw_ef_construction)
    parser.add_argument("--threads", type=int, default=0, help="FAISS OpenMP threads (0: FAISS default)")
    args = parser.parse_args()
    sizes = [10_000] if args.quick else [int(s) for s in args.sizes.split(",") if s]
    args.types = [t.strip() for t in args.types.split(",") if t.strip()]
    global THREADS
    if args.threads:
        THREADS = args.threads
    default_threads()
    logging.basicConfig(level=logging.WARNING)

    policy = getattr(IndexConfig(), "parallel_batch", None)
    print(f"FAISS threads {THREADS} for bare (gallery: "
          f"{f'1 below batch {policy}, else its own default' if policy else 'inherits'}); k={SEARCH_K} for every contestant (Gallery.search's "
          f"first pass at top_k={TOP_K}); {args.queries} queries x {args.rounds} rounds; "
          f"hnsw M={args.hnsw_m} efConstruction={args.hnsw_ef_construction} efSearch={args.hnsw_ef_search}; "
          f"ivf nprobe={args.ivf_nprobe} nlist={args.ivf_nlist or 'auto (gallery)'}", flush=True)
    started = time.perf_counter()
    args.commit_at_start = common.machine()["commit"]   # the code measured, if HEAD moves during the run
    infos, rows = [], []
    work = Path(tempfile.mkdtemp(prefix="facesearch-bench-gallery-"))
    try:
        for n in sizes:
            t = time.perf_counter()
            print(f"-- N = {n:,}: generating, then {args.batch}-face add_batch calls into SQLite", flush=True)
            if not rows:
                print(HEADER + "\n" + SUB, flush=True)
            info, size_rows = run_size(n, args, work)
            info["wall_s"] = time.perf_counter() - t
            infos.append(info)
            rows += size_rows
            print("   " + size_line(info, args.faces_per_identity), flush=True)
            save(args, sizes, infos, rows, time.perf_counter() - started, complete=False)   # keep what we have
    finally:
        shutil.rmtree(work, ignore_errors=True)
    total = time.perf_counter() - started

    print()
    print("Summary (gallery/bare; p50 x = gallery p50 / bare p50, 1.00 = no overhead; ratio = QPS gallery/bare at "
          "batch 64, goal >= 0.9; idx = FaissIndex wrapper alone / bare)")
    print(HEADER + "\n" + SUB)
    for r in rows:
        print_row(r)
    for info in infos:
        print(f"  {size_line(info, args.faces_per_identity)}")
    for r in rows:
        print(f"  {r['n']:>8} {r['type']:<5}: gallery {r['description']}; bare {r['bare_index']} built in "
              f"{r['bare_build_s']:.1f} s; bare read_index {r['bare_read_index_s']:.2f} s; {r['wall_s']:.0f} s")
    print(f"total {total:.0f} s, peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    save(args, sizes, infos, rows, total, complete=True)


def size_line(info: dict, per: int) -> str:
    return (f"N={info['n']:,}: bulk add_batch {info['bulk_faces']:,} faces at {info['bulk_add_faces_per_s']:.0f}/s "
            f"(flat index), db {info['db_bytes'] / 2**20:.0f} MiB; data: exact top-1 is the query's identity "
            f"{info['exact_top1_is_own_identity']:.3f}, own share of exact top-{per} {info['exact_top5_own_share']:.3f}, "
            f"sq L2 to top-1 {info['mean_sq_l2_top1']:.2f}, to nearest other identity "
            f"{info[f'mean_sq_l2_top{per + 1}_nearest_other']:.2f}; {info['wall_s']:.0f} s")


def save(args, sizes, infos, rows, total: float, complete: bool) -> None:
    common.write("gallery", {
        "complete": complete,
        "settings": {k: v for k, v in vars(args).items() if k != "quick"} | {
            "sizes": sizes, "search_k": SEARCH_K, "top_k": TOP_K, "batch_throughput": BATCH64,
            "faiss_threads_bare": THREADS, "faiss_version": faiss.__version__,
            "gallery_parallel_batch": getattr(IndexConfig(), "parallel_batch", None)},
        "sizes": infos, "results": rows, "total_s": total,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "notes": ["add_tail_faces_per_s: add_batch of the last `tail` faces into a gallery of ~N, per index type",
                  "bulk_add_faces_per_s: add_batch of the first N - tail faces, flat index (the SQL path)",
                  "open_rebuild_s: Gallery.open with no snapshot: rebuild the index from SQL, then snapshot",
                  "snapshot_load_s: snapshot.read (sha256 check + faiss.read_index) into a fresh FaissIndex",
                  "restart_s: Gallery.open after close, with a current snapshot",
                  ("gallery = Gallery.search(top_k=1, max_distance=None); index = Gallery.index.search(k=8); "
                   "bare = FAISS index built directly, search(k=8)"),
                  "ratio_p50_batch1 = gallery p50 / bare p50 (higher = slower); ratio_qps_batch64 = gallery / bare"],
    })

if __name__ == "__main__":
    main()
