"""Readers-writer discipline: search throughput with and without a concurrent writer.

    .venv/bin/python -m bench.gallery_rw [--faces 100000] [--seconds 8]

Two threads search (batch 64) a flat gallery; the same run is repeated while a
third thread adds 100 faces and deletes 10 in a loop. Reports searches/s for
both and their ratio, plus the writer's changes/s, in bench/results/gallery_rw.json.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time

import numpy as np

from bench import common

from facesearch.gallery import Enrolment, Gallery, GalleryConfig, NewFace


def unit(rng, n):
    x = rng.normal(size=(n, 128)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def searches(g: Gallery, queries: np.ndarray, seconds: float, writer=None) -> tuple[float, int]:
    stop, counts = threading.Event(), [0, 0]

    def search(slot):
        i = 0
        while not stop.is_set():
            g.search(queries[i % 1024: i % 1024 + 64], max_distance=None)
            counts[slot] += 64
            i += 64

    threads = [threading.Thread(target=search, args=(s,)) for s in range(2)]
    changes = [0]
    if writer:
        threads.append(threading.Thread(target=writer, args=(stop, changes)))
    start = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return sum(counts) / elapsed, changes[0] / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp, \
            Gallery.open(GalleryConfig(data_dir=tmp), model_id="bench", dimension=128) as g:
        for s in range(0, args.faces, 10_000):
            g.add_batch([Enrolment(f"i{s + j}", [NewFace(v)]) for j, v in enumerate(unit(rng, 10_000))])
        queries = unit(rng, 1100)

        def writer(stop, changes):
            n = 0
            while not stop.is_set():
                res = g.add_batch([Enrolment(f"w{n}", [NewFace(v) for v in unit(rng, 100)])])
                for fid in res[0].face_ids[:10]:
                    g.delete_face(fid)
                changes[0] += 110
                n += 1

        alone, _ = searches(g, queries, args.seconds)
        busy, change_rate = searches(g, queries, args.seconds, writer)
        alone2, _ = searches(g, queries, args.seconds)
    base = (alone + alone2) / 2
    print(f"{args.faces:,} faces, flat, 2 search threads at batch 64")
    print(f"  searches/s alone: {alone:.0f} and {alone2:.0f} (before and after)")
    print(f"  searches/s with a writer: {busy:.0f}  (ratio {busy / base:.2f}); writer: {change_rate:.0f} changes/s")
    common.write("gallery_rw", {"faces": args.faces, "seconds": args.seconds, "search_qps_alone": [alone, alone2],
                                "search_qps_with_writer": busy, "ratio": busy / base,
                                "writer_changes_per_s": change_rate})


if __name__ == "__main__":
    main()
