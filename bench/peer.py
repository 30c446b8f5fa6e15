"""facesearch against a peer, face_recognition, on the same photos, alternating.

    .venv/bin/python -m bench.peer --peer-python PATH [--processes 2] [--concurrency 8]
                                   [--passes 4] [--rounds 2] [--detector yunet]

The 25 sample val photos, from JPEG bytes to one embedding per face:
- face_recognition 1.3 (dlib's HOG detector and ResNet encoder) in `--processes` processes of
  the interpreter `--peer-python`, each taking its share of `--passes` passes over the photos;
  the clock starts once every process has imported its models;
- facesearch's Identify through a real server (`--detector`), at `--concurrency`.
The two alternate `--rounds` times (peer first). face_recognition is not a dependency of
facesearch: give it a venv of its own, e.g.

    uv venv /tmp/peer && uv pip install -p /tmp/peer/bin/python dlib-bin face_recognition \\
        face_recognition_models "setuptools<80" numpy pillow click

Writes bench/results/peer.json: photos/s of each, faces found, and facesearch's ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import common
from bench.server import drive

from facesearch.embedder import EmbedderConfig, WeightsCache
from facesearch.embedder.detectors import DETECTORS
from facesearch.testing import ServerProcess
from facesearch.v1 import facesearch_pb2 as pb

# Run by --peer-python: imports face_recognition, says "ready", waits for a line, then embeds its
# photos (paths on argv) and prints one JSON line: seconds, photos, photos with a face.
PEER_WORKER = """
import json, sys, time, warnings
warnings.simplefilter("ignore")
import face_recognition
paths = sys.argv[1:]
print("ready", flush=True)
sys.stdin.readline()
t, found = time.perf_counter(), 0
for p in paths:
    image = face_recognition.load_image_file(p)
    found += bool(face_recognition.face_encodings(image, face_recognition.face_locations(image)))
print(json.dumps({"seconds": time.perf_counter() - t, "photos": len(paths), "found": found}), flush=True)
"""


def peer_round(python: str, photos: list[Path], processes: int, passes: int) -> dict:
    """One timed run of the peer: photos/s over every process, from the go line to the last answer."""
    work = [str(p) for p in photos] * passes
    procs = [subprocess.Popen([python, "-c", PEER_WORKER, *work[i::processes]], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(processes)]
    try:
        for p in procs:
            assert p.stdout is not None
            if p.stdout.readline().strip() != "ready":
                p.wait(timeout=60)
                raise SystemExit(f"the peer did not start under {python}: {p.stderr.read().strip()[-400:]}")
        t = time.perf_counter()
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        answers = [json.loads(p.stdout.readline()) for p in procs]
        wall = time.perf_counter() - t
    finally:
        for p in procs:
            p.kill()
            p.wait()
    found = sum(a["found"] for a in answers)
    return {"photos_per_s": len(work) / wall, "photos": len(work), "found_per_pass": found / passes}


def ours_round(target: str, val: list[bytes], concurrency: int, passes: int) -> dict:
    row = asyncio.run(drive(target, lambda i: pb.IdentifyRequest(image=val[i % len(val)]), concurrency,
                            len(val) * passes))
    row.pop("latencies_ms")
    return {"photos_per_s": row["qps"], "photos": len(val) * passes, "p50_ms": row["p50_ms"]}


def faces_found(target: str, val: list[bytes]) -> int:
    from facesearch.client import FaceSearchClient

    with FaceSearchClient(target, timeout=120) as c:
        return sum(bool(c.stub.Identify(pb.IdentifyRequest(image=v)).faces) for v in val)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer-python", required=True, help="an interpreter that can import face_recognition")
    parser.add_argument("--processes", type=int, default=2, help="peer processes [%(default)s]")
    parser.add_argument("--concurrency", type=int, default=8, help="Identify calls in flight [%(default)s]")
    parser.add_argument("--passes", type=int, default=4, help="passes over the 25 photos per round [%(default)s]")
    parser.add_argument("--rounds", type=int, default=2, help="peer/facesearch alternations [%(default)s]")
    parser.add_argument("--detector", choices=DETECTORS, default="yunet", help="facesearch's detector [%(default)s]")
    args = parser.parse_args(argv)

    samples = WeightsCache(EmbedderConfig.from_env().cache_dir).sample_gallery()
    paths = sorted(samples.glob("val/*/*.jpg"))
    val = [p.read_bytes() for p in paths]
    results: dict = {"photos": len(paths), "passes": args.passes, "processes": args.processes,
                     "concurrency": args.concurrency, "detector": args.detector, "peer": [], "facesearch": []}
    with tempfile.TemporaryDirectory(prefix="bench-peer-") as tmp:
        proc = ServerProcess(Path(tmp) / "data", "--warmup-batch", "64", "--detector", args.detector).start()
        try:
            results["facesearch_faces_found"] = faces_found(proc.target, val)   # and warms every photo's path
            for r in range(args.rounds):
                results["peer"].append(peer_round(args.peer_python, paths, args.processes, args.passes))
                results["facesearch"].append(ours_round(proc.target, val, args.concurrency, args.passes))
                print(f"  round {r + 1}: face_recognition {results['peer'][-1]['photos_per_s']:.1f} photos/s, "
                      f"facesearch {results['facesearch'][-1]['photos_per_s']:.1f}", flush=True)
        finally:
            proc.stop()
    peer = statistics.mean(x["photos_per_s"] for x in results["peer"])
    ours = statistics.mean(x["photos_per_s"] for x in results["facesearch"])
    results["peer_photos_per_s"], results["facesearch_photos_per_s"] = peer, ours
    results["peer_faces_found"] = results["peer"][0]["found_per_pass"]
    results["ratio"] = ours / peer
    path = common.write("peer", results)
    print(f"facesearch {ours:.1f} photos/s ({results['facesearch_faces_found']}/{len(paths)} faces), "
          f"face_recognition x{args.processes} {peer:.1f} ({results['peer_faces_found']:.0f}/{len(paths)}): "
          f"{results['ratio']:.2f}x -> {path}")


if __name__ == "__main__":
    sys.exit(main())
