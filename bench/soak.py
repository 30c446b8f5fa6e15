"""Soak: a real server under a mixed load at full speed, then a check of everything acknowledged.

    python -m bench.soak                      # 30 minutes (make soak)
    python -m bench.soak --seconds 15         # the short version the test suite runs

Loopback only, bounded in time. Worker threads send Identify (photos, crops, embeddings),
IdentifyStream, Enroll, Verify, ListIdentities, DeleteFace and DeleteIdentity, plus a few
deliberately bad requests that must fail with their expected status. Every 10 s the server's
RSS and open file descriptors are sampled. At the end the gallery is checked against a ledger
of what the server acknowledged: every acknowledged face is there, every acknowledged delete is
gone. Writes bench/results/soak.json (`python -m bench.report` plots it into bench/REPORT.md);
exits 1 on any unexpected error or loss.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import grpc
import numpy as np

from facesearch.client import FaceSearchClient
from facesearch.embedder import WeightsCache
from facesearch.testing import ServerProcess
from facesearch.v1 import facesearch_pb2 as pb

from bench.common import machine

REPO = Path(__file__).resolve().parent.parent
WARMUP_S = 60          # RSS growth is measured after this (the long run); short runs use a fifth of the run
MIX = {                # operation: weight
    "identify_photo": 10, "identify_crop": 20, "identify_embedding": 20, "identify_stream": 4,
    "enroll_embeddings": 10, "enroll_photo": 3, "verify": 8, "list": 5, "delete_face": 4, "delete_identity": 2,
    "bad": 6,
}
INVALID = grpc.StatusCode.INVALID_ARGUMENT


class Ledger:
    """What the server acknowledged, per identity this run created."""

    def __init__(self):
        self.faces: dict[str, set[str]] = {}
        self.deleted: set[str] = set()
        self.lock = threading.Lock()

    def enrolled(self, identity_id: str, face_ids) -> None:
        with self.lock:
            self.faces.setdefault(identity_id, set()).update(face_ids)

    def face_deleted(self, identity_id: str, face_id: str) -> None:
        with self.lock:
            self.faces[identity_id].discard(face_id)

    def identity_deleted(self, identity_id: str) -> None:
        with self.lock:
            self.faces.pop(identity_id, None)
            self.deleted.add(identity_id)


class Data:
    """Photos, crops and embeddings of the sample gallery, made once through the server itself."""

    def __init__(self, client: FaceSearchClient, cache_dir: Path | None):
        from PIL import Image

        root = WeightsCache(cache_dir).sample_gallery()
        self.train = {p.parent.name: p.read_bytes() for p in sorted(root.glob("train/*/*.jpg"))}
        self.photos = [p.read_bytes() for p in sorted(root.glob("val/*/*.jpg"))]
        self.crops, self.embeddings = [], []
        for photo in self.photos:
            for face in client.embed(photo).faces[:1]:
                b = face.box
                img = Image.open(io.BytesIO(photo)).convert("RGB").crop((b.x, b.y, b.x + b.width, b.y + b.height))
                buf = io.BytesIO()
                img.save(buf, "JPEG")
                self.crops.append(buf.getvalue())
                self.embeddings.append(np.asarray(face.embedding.values, np.float32))
        self.people = sorted({p.parent.name for p in root.glob("train/*/*.jpg")})


def bad_requests(data: Data) -> list[tuple[str, object]]:
    """(name, call) pairs; each must fail with INVALID_ARGUMENT."""
    e = data.embeddings[0]
    return [
        ("undecodable_image", lambda c: c.identify(b"\xff\xd8\xff" + b"x" * 200)),
        ("embedding_wrong_size", lambda c: c.identify(embedding=e[:100])),
        ("embedding_nan", lambda c: c.identify(embedding=np.full(128, np.nan))),
        ("unknown_face_mode", lambda c: c.identify(data.crops[0], face_mode=9)),
        ("face_id_not_a_number", lambda c: c.delete_face("abc")),
        ("face_id_beyond_int64", lambda c: c.delete_face(str(1 << 70))),
        ("page_token_garbage", lambda c: c.list_identities(10, "garbage!")),
        ("empty_identity_id", lambda c: c.enroll("", embeddings=[e])),
        ("metadata_too_large", lambda c: c.enroll("soak-bad", embeddings=[e], metadata={"k": "v" * 5000})),
    ]


class Worker(threading.Thread):
    def __init__(self, n: int, target: str, data: Data, ledger: Ledger, deadline: float, seed: int):
        super().__init__(daemon=True)
        self.n, self.data, self.ledger, self.deadline = n, data, ledger, deadline
        self.client = FaceSearchClient(target, timeout=60)
        self.rng = random.Random(seed)
        self.ops = Counter()
        self.valid_errors = Counter()   # status code -> count, for requests that should have succeeded
        self.bad_codes = Counter()      # status code -> count, for the deliberately bad requests
        self.mine: list[str] = []       # identities this worker created and has not deleted
        self.created = 0
        self.bad_calls = bad_requests(data)
        self.names, self.weights = zip(*MIX.items())

    def run(self) -> None:
        while time.monotonic() < self.deadline:
            op = self.rng.choices(self.names, self.weights)[0]
            try:
                getattr(self, op)()
                self.ops[op] += 1
            except grpc.RpcError as exc:
                self.ops[op] += 1
                self.valid_errors[f"{op}:{exc.code().name}"] += 1
            except Exception as exc:  # a wrong answer counts as an error too, and the worker goes on
                self.ops[op] += 1
                self.valid_errors[f"{op}:{type(exc).__name__}"] += 1

    def _noisy(self) -> np.ndarray:
        v = self.rng.choice(self.data.embeddings) + np.asarray([self.rng.gauss(0, 0.02) for _ in range(128)])
        return (v / np.linalg.norm(v)).astype(np.float32)

    # -- the mix --------------------------------------------------------------------------------
    def identify_photo(self):
        self.client.identify(self.rng.choice(self.data.photos), top_k=3)

    def identify_crop(self):
        self.client.identify(self.rng.choice(self.data.crops), face_mode=pb.FACE_MODE_CROPPED)

    def identify_embedding(self):
        self.client.identify(embedding=self._noisy(), top_k=5)

    def identify_stream(self):
        from facesearch.client.client import identify_request

        reqs = [identify_request(embedding=self._noisy()) for _ in range(8)]
        assert len(list(self.client.identify_stream(reqs))) == 8

    def _new_identity(self) -> str:
        self.created += 1
        return f"soak-{self.n}-{self.created}"

    def enroll_embeddings(self):
        identity_id = self.rng.choice(self.mine) if self.mine and self.rng.random() < 0.5 else self._new_identity()
        r = self.client.enroll(identity_id, embeddings=[self._noisy() for _ in range(self.rng.randint(1, 4))],
                               display_name=identity_id, metadata={"worker": str(self.n)})
        self.ledger.enrolled(identity_id, r.face_ids)
        if identity_id not in self.mine:
            self.mine.append(identity_id)

    def enroll_photo(self):
        identity_id = self._new_identity()
        r = self.client.enroll(identity_id, [self.rng.choice(self.data.photos)])
        self.ledger.enrolled(identity_id, r.face_ids)
        if r.face_ids:
            self.mine.append(identity_id)

    def verify(self):
        self.client.verify(self.rng.choice(self.data.people), embedding=self._noisy())

    def list(self):
        self.client.list_identities(page_size=50)

    def delete_face(self):
        if not self.mine:
            return
        identity_id = self.rng.choice(self.mine)
        faces = sorted(self.ledger.faces.get(identity_id, ()))
        if len(faces) < 2:   # keep at least one face, so the identity stays checkable
            return
        face_id = self.rng.choice(faces)
        self.client.delete_face(face_id)
        self.ledger.face_deleted(identity_id, face_id)

    def delete_identity(self):
        if len(self.mine) < 3:
            return
        identity_id = self.mine.pop(self.rng.randrange(len(self.mine)))
        self.client.delete_identity(identity_id)
        self.ledger.identity_deleted(identity_id)

    def bad(self):
        name, call = self.rng.choice(self.bad_calls)
        try:
            call(self.client)
        except grpc.RpcError as exc:
            self.bad_codes[f"{name}:{exc.code().name}"] += 1
            return
        self.bad_codes[f"{name}:OK"] += 1


def _proc_sample(pid: int) -> tuple[float, int]:
    """(RSS in MiB, open file descriptors) of a process."""
    rss = 0.0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def check_ledger(client: FaceSearchClient, ledger: Ledger) -> dict:
    lost, extra, resurrected = [], [], []
    for identity_id, faces in sorted(ledger.faces.items()):
        try:
            stored = set(client.get_identity(identity_id).face_ids)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
            stored = set()
        lost += [f"{identity_id}/{f}" for f in sorted(faces - stored)]
        extra += [f"{identity_id}/{f}" for f in sorted(stored - faces)]
    for identity_id in sorted(ledger.deleted):
        try:
            client.get_identity(identity_id)
            resurrected.append(identity_id)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
    return {"identities": len(ledger.faces), "faces": sum(map(len, ledger.faces.values())),
            "deleted_identities": len(ledger.deleted), "lost": lost, "extra": extra, "resurrected": resurrected}


def rss_growth(samples: list[dict], warmup_s: float) -> float | None:
    """RSS at the end over RSS just after warm-up (medians of three samples), minus 1."""
    after = [s["rss_mib"] for s in samples if s["t"] >= warmup_s]
    if len(after) < 2:
        return None
    head, tail = after[:3], after[-3:]
    return float(np.median(tail) / np.median(head) - 1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="how long to load the server [30]")
    parser.add_argument("--seconds", type=float, help="the same in seconds (overrides --minutes)")
    parser.add_argument("--workers", type=int, default=8, help="concurrent client threads [8]")
    parser.add_argument("--sample-every", type=float, default=10.0, help="seconds between RSS/fd samples [10]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "soak.json")
    args = parser.parse_args(argv)
    duration = args.seconds if args.seconds is not None else args.minutes * 60
    warmup = min(WARMUP_S, duration / 5)

    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        proc = ServerProcess(Path(tmp) / "data", "--warmup-batch", "64").start()
        try:
            client = FaceSearchClient(proc.target, timeout=120)
            data = Data(client, None)
            for person, photo in data.train.items():
                client.enroll(person, [photo], display_name=person)
            ledger = Ledger()
            start = time.monotonic()
            workers = [Worker(i, proc.target, data, ledger, start + duration, args.seed + i)
                       for i in range(args.workers)]
            for w in workers:
                w.start()
            samples, last_ops, last_t = [], 0, 0.0
            while any(w.is_alive() for w in workers):
                time.sleep(min(args.sample_every, max(0.1, start + duration - time.monotonic())))
                ops = sum(sum(w.ops.values()) for w in workers)
                rss, fds = _proc_sample(proc.proc.pid)
                t = time.monotonic() - start
                samples.append({"t": round(t, 1), "rss_mib": round(rss, 1), "fds": fds,
                                "qps": round((ops - last_ops) / max(t - last_t, 1e-3), 1)})
                last_ops, last_t = ops, t
                print(f"  {t:7.0f} s  {ops:8d} requests  RSS {rss:7.1f} MiB  fds {fds}", flush=True)
            elapsed = time.monotonic() - start
            ledger_check = check_ledger(client, ledger)
            proc.terminate()
        finally:
            proc.stop()

    ops = sum((w.ops for w in workers), Counter())
    valid_errors = sum((w.valid_errors for w in workers), Counter())
    bad_codes = sum((w.bad_codes for w in workers), Counter())
    unexpected_bad = {k: v for k, v in bad_codes.items() if not k.endswith(f":{INVALID.name}")}
    growth = rss_growth(samples, warmup)
    result = {
        "seconds": round(elapsed, 1), "workers": args.workers, "requests": sum(ops.values()),
        "qps": round(sum(ops.values()) / elapsed, 1), "ops": dict(ops),
        "unexpected_errors": dict(valid_errors), "bad_requests": dict(bad_codes),
        "bad_requests_with_the_wrong_status": unexpected_bad, "ledger": ledger_check,
        "rss_growth_after_warmup": growth, "warmup_s": warmup, "samples": samples,
        "ok": not valid_errors and not unexpected_bad and not ledger_check["lost"] and not ledger_check["extra"]
        and not ledger_check["resurrected"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine(), **result}, indent=2) + "\n")
    print(f"{result['requests']} requests in {elapsed:.0f} s ({result['qps']}/s); unexpected errors "
          f"{sum(valid_errors.values())}; bad requests {sum(bad_codes.values())} "
          f"({sum(unexpected_bad.values())} with the wrong status); lost {len(ledger_check['lost'])}; "
          f"RSS growth after warm-up {growth if growth is None else f'{growth:+.1%}'}; -> {args.out}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
