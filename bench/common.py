"""Shared bits of the benchmarks: machine facts and the results file."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SHARED = Path(os.environ.get("FACESEARCH_SHARED", Path(__file__).resolve().parent.parent.parent / "shared"))
AVENGERS = SHARED / "data" / "avengers"  # the seed's crops (FACESEARCH_SHARED, as the tests read it)
VERSIONS = ("tensorflow-cpu", "tensorflow", "jax", "keras", "faiss-cpu", "grpcio", "numpy", "mtcnn")   # recorded per run


def face_crops(embedder, photos: list[Path]) -> list[tuple[Path, object]]:
    """(photo, its primary face crop) for each photo with a face: benchmark set-up, untimed."""
    from facesearch.embedder import decode, primary_face

    out = []
    for p in photos:
        rgb = decode(p.read_bytes())
        face = primary_face(embedder.find_faces(rgb), rgb.shape)
        if face is not None:
            out.append((p, face.crop))
    return out


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=RESULTS.parent, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    versions = {}
    for dist in VERSIONS:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return {"cores": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "versions": versions, "commit": commit, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def write(name: str, results: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **results}, indent=2) + "\n")
    print(f"wrote {path}")
    return path
