"""Atomic snapshots of an in-process index, with the watermark of the last change they hold.

    <dir>/MANIFEST.json   written last (temp file, fsync, rename)
    <dir>/<files>         whatever the index's save() wrote (FaissIndex:
                          index-<watermark>.faiss and deleted-<watermark>.npy)

A snapshot is used only if its manifest names the same model, dimension, index
type and generation (bumped by each reindex), and its files have the recorded size and sha256. The index owns its
files; this module owns the manifest, the checksums and the pruning.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from facesearch.files import fsync_path, sha256_file

from .index import InProcessIndex

log = logging.getLogger(__name__)

MANIFEST = "MANIFEST.json"
FORMAT = 1


@dataclass(frozen=True)
class SnapshotKey:
    model_id: str
    dimension: int
    index_label: str
    generation: int = 0   # bumped by each reindex (gallery_meta), which logs no changes


def write(folder: Path, key: SnapshotKey, watermark: int, index: InProcessIndex) -> Path:
    """Write index (a VectorIndex that is not durable) as the newest snapshot; older files are removed.
    Returns the path of its first file."""
    folder.mkdir(parents=True, exist_ok=True)
    saved = index.save(folder, str(watermark))
    # an index that hashed its files while writing them says so; others are hashed here
    records = {role: f if isinstance(f, dict) else
               {"name": f, "size": (folder / f).stat().st_size, "sha256": sha256_file(folder / f)}
               for role, f in saved.items()}
    files = {role: r["name"] for role, r in records.items()}
    manifest = {
        "format": FORMAT, "model_id": key.model_id, "dimension": key.dimension, "index": key.index_label,
        "generation": key.generation, "watermark": watermark, "count": len(index),
        "files": records,
    }
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2))
    fsync_path(tmp)
    os.replace(tmp, folder / MANIFEST)
    fsync_path(folder)
    for stale in folder.iterdir():
        if stale.name != MANIFEST and stale.name not in files.values():
            stale.unlink(missing_ok=True)
    return folder / str(next(iter(files.values())))


def read(folder: Path, key: SnapshotKey, index: InProcessIndex) -> int | None:
    """Load the snapshot into index (a fresh one); its watermark, or None if unusable."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        log.info("no index snapshot in %s; rebuilding from SQL", folder)
        return None
    except (OSError, ValueError) as exc:
        log.warning("index snapshot manifest is unreadable (%s); rebuilding from SQL", exc)
        return None
    want = {"format": FORMAT, "model_id": key.model_id, "dimension": key.dimension, "index": key.index_label,
            "generation": key.generation}
    got = {k: manifest.get(k, 0 if k == "generation" else None) for k in want}
    if got != want:
        log.warning("index snapshot is for %s, not %s; rebuilding from SQL", got, want)
        return None
    try:
        files = {role: f["name"] for role, f in manifest["files"].items()}
        for role, f in manifest["files"].items():
            path = folder / files[role]
            if path.stat().st_size != f["size"] or sha256_file(path) != f["sha256"]:
                log.warning("index snapshot file %s is corrupt; rebuilding from SQL", path.name)
                return None
        index.load(folder, files)
        return int(manifest["watermark"])
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        log.warning("index snapshot cannot be loaded (%s); rebuilding from SQL", exc)
        return None
