"""`facesearch-indexer cluster` and `enroll-clusters`: unlabelled photos into proposed people, then names.

Faces come from add's pipeline (reads, worker detection, batched embedding); every face of a photo is
kept, not only the main one. facesearch.gallery.clustering groups them (docs/clustering.md). The
output is DIR/clusters.json (a contract: docs/clustering.md#clustersjson), a contact sheet
DIR/index.html and its thumbnails in DIR/faces/.
"""

from __future__ import annotations

import csv
import functools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median

import numpy as np
from tqdm import tqdm

from facesearch.embedder import FaceMode
from facesearch.gallery.clustering import cluster
from facesearch.sources import Item, SourceError

from . import add
from .contact_sheet import write_contact_sheet

# Defaults, measured in docs/clustering.md (bench/cluster.py).
DEFAULT_MAX_DISTANCE = 2.4
DEFAULT_MIN_FACES = 2
DEFAULT_ATTACH_DISTANCE = 3.0
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
THUMB_SIDE = 112
FACES_DIR = "faces"
NEAREST_QUERIES = 32   # faces of a cluster compared with the gallery (its first ones)


@dataclass
class Faces:
    """Every face found, in input order (photos in the order given, then largest face first)."""
    paths: list[str] = field(default_factory=list)
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    thumbs: list[str | None] = field(default_factory=list)
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    summary: add.Summary = field(default_factory=add.Summary)


def photos(inputs: list[str | Path]) -> list[Path]:
    """Files given, and image files under folders given (recursively), resolved, sorted per folder, once each."""
    out: dict[Path, None] = {}
    for given in map(Path, inputs):
        if given.is_dir():
            found = sorted(p for p in given.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                           and not any(part.startswith(".") for part in p.relative_to(given).parts))
            out.update(dict.fromkeys(p.resolve() for p in found))
        elif given.is_file():
            out[given.resolve()] = None
        else:
            raise SourceError(f"{given} does not exist")
    if not out:
        raise SourceError("no photos found in " + ", ".join(map(str, inputs)))
    return list(out)


def collect(paths: list[Path], embedder, mode: FaceMode, *, pool, batch_size: int = 64, progress: bool = False,
            thumbs_dir: Path | None = None) -> Faces:
    """Detect and embed every face of `paths` through add's pipeline. thumbs_dir: write each face's
    thumbnail there as <n>.jpg (n: its position), else none are made."""
    faces = Faces(summary=add.Summary(images=len(paths)))
    start = time.perf_counter()
    if thumbs_dir is not None:
        thumbs_dir.mkdir(parents=True, exist_ok=True)
    items = [Item(p, "") for p in paths]
    run = functools.partial(add._prepare_part, mode=mode, every_face=True,
                            thumb_side=THUMB_SIDE if thumbs_dir is not None else 0)
    parts: list[np.ndarray] = []
    crops: list[np.ndarray] = []

    def embed():
        if crops:
            parts.append(embedder.embed_crops(crops))
            crops.clear()

    bar = tqdm(total=len(items), unit="img", disable=not progress, dynamic_ncols=True, desc="finding faces")
    try:
        reads = add._read(items, faces.summary)
        for r, found in add._prepared(reads, mode, pool, window=2 * batch_size, run=run):
            bar.update(1)
            if found[0].crop is None:
                faces.summary.reject(r.item, found[0].reason)
                continue
            for p in found:
                n = len(faces.paths)
                faces.paths.append(str(r.item.path))
                faces.boxes.append(tuple(int(v) for v in p.box))
                faces.scores.append(float(p.score))
                thumb = None
                if thumbs_dir is not None:
                    thumb = f"{FACES_DIR}/{n:06d}.jpg"
                    (thumbs_dir / f"{n:06d}.jpg").write_bytes(p.crop_jpeg)
                faces.thumbs.append(thumb)
                crops.append(p.crop)
                if len(crops) >= batch_size:
                    embed()
            bar.set_postfix(faces=len(faces.paths), rejected=len(faces.summary.rejected), refresh=False)
        embed()
    finally:
        bar.close()
    faces.vectors = np.concatenate(parts) if parts else np.zeros((0, embedder.dimension), np.float32)
    faces.summary.added = len(faces.paths)
    faces.summary.seconds = time.perf_counter() - start
    return faces


def members_of(labels: np.ndarray) -> list[np.ndarray]:
    """Each cluster's faces (label order), in input order: one stable sort, not a scan per cluster."""
    order = np.argsort(labels, kind="stable")
    order = order[labels[order] >= 0]
    ends = np.searchsorted(labels[order], np.arange(int(labels.max()) + 1 if len(labels) else 0), side="right")
    return np.split(order, ends[:-1]) if len(ends) else []


def nearest(labels: np.ndarray, vectors: np.ndarray, search) -> list[dict]:
    """Per cluster (label order), its nearest enrolled identity: the one nearest to most of its
    first NEAREST_QUERIES faces (ties: the smaller median distance), with the median distance over
    those faces. search(vectors) -> per face a (identity_id, display_name, distance) or None."""
    out = []
    for members in members_of(labels):
        members = members[:NEAREST_QUERIES]
        votes: dict[str, list] = {}
        for match in search(vectors[members]):
            if match is not None:
                votes.setdefault(match[0], []).append(match)
        if not votes:
            out.append({})
            continue
        best = min(votes.values(), key=lambda ms: (-len(ms), median(m[2] for m in ms), ms[0][0]))
        out.append({"nearest_identity": best[0][0], "nearest_display_name": best[0][1],
                    "nearest_distance": round(float(median(m[2] for m in best)), 4),
                    "nearest_votes": len(best), "nearest_queried": len(members)})
    return out


def gallery_search(gallery, model_id: str):
    def search(vectors):
        return [(m[0].identity_id, m[0].display_name, m[0].distance) if m else None
                for m in gallery.search(vectors, top_k=1, max_distance=None, model_id=model_id)]
    return search


def server_search(client, model_id: str):
    from facesearch.embedder.distances import MAX_DISTANCE

    def search(vectors):
        out = []
        for v in vectors:
            r = client.identify(embedding=v, model_id=model_id, top_k=1, max_distance=MAX_DISTANCE)
            m = r.faces[0].matches[0] if r.faces and r.faces[0].matches else None
            out.append((m.identity_id, m.display_name, float(m.distance)) if m else None)
        return out
    return search


def result(faces: Faces, labels: np.ndarray, *, model_id: str, max_distance: float, min_faces: int,
           attach_distance: float, matches: list[dict] | None = None) -> dict:
    """clusters.json's content (docs/clustering.md#clustersjson)."""
    def face(i: int) -> dict:
        out = {"path": faces.paths[i], "box": list(faces.boxes[i]), "score": round(faces.scores[i], 4)}
        if faces.thumbs[i]:
            out["thumbnail"] = faces.thumbs[i]
        return out

    clusters = []
    for c, members in enumerate(members_of(labels)):
        clusters.append({"id": f"c{c + 1:04d}", "size": len(members), "faces": [face(i) for i in members],
                         **(matches[c] if matches else {})})
    return {"model_id": model_id, "max_distance": max_distance, "min_faces": min_faces,
            "attach_distance": attach_distance, "clusters": clusters,
            "unclustered": [face(i) for i in np.flatnonzero(labels < 0)],
            "images": faces.summary.images, "faces": len(faces.paths),
            "rejected": [{"path": r["path"], "reason": r["reason"]} for r in faces.summary.rejected]}


def write(out_dir: Path, content: dict) -> None:
    (out_dir / "clusters.json").write_text(json.dumps(content, indent=1) + "\n")
    write_contact_sheet(out_dir / "index.html", content)


def run_cluster(paths: list[Path], out_dir: Path, embedder, mode: FaceMode, *, pool, max_distance: float,
                min_faces: int, attach_distance: float, batch_size: int = 64, progress: bool = False,
                search=None) -> dict:
    """The whole `cluster` command once the model is loaded: faces, clusters, gallery, files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in (out_dir / FACES_DIR).glob("[0-9][0-9][0-9][0-9][0-9][0-9].jpg"):   # an earlier run's
        old.unlink()
    faces = collect(paths, embedder, mode, pool=pool, batch_size=batch_size, progress=progress,
                    thumbs_dir=out_dir / FACES_DIR)
    labels = cluster(faces.vectors, max_distance, min_faces, attach_distance)
    matches = nearest(labels, faces.vectors, search) if search else None
    content = result(faces, labels, model_id=embedder.model_id, max_distance=max_distance, min_faces=min_faces,
                     attach_distance=attach_distance, matches=matches)
    write(out_dir, content)
    return content


def named_items(clusters_json: Path, names_csv: Path) -> list[Item]:
    """The faces of each cluster that names.csv names (cluster_id,identity_id[,display_name]; a header
    row is optional), as add's items, each with the box of its face."""
    try:
        content = json.loads(Path(clusters_json).read_text())
        with open(names_csv, newline="") as f:
            rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    except (OSError, ValueError, csv.Error) as exc:
        raise SourceError(f"cannot read {clusters_json} or {names_csv}: {exc}") from None
    if rows and [c.strip() for c in rows[0][:2]] == ["cluster_id", "identity_id"]:
        rows = rows[1:]
    by_id = {c["id"]: c for c in content.get("clusters", [])}
    items = []
    for n, row in enumerate(rows, 1):
        cells = [c.strip() for c in row]
        if len(cells) < 2 or not cells[0] or not cells[1]:
            raise SourceError(f"{names_csv} row {n}: needs cluster_id,identity_id[,display_name]")
        if cells[0] not in by_id:
            raise SourceError(f"{names_csv} row {n}: no cluster {cells[0]} in {clusters_json}")
        name = cells[2] if len(cells) > 2 else ""
        items += [Item(Path(f["path"]), cells[1], name, tuple(f["box"])) for f in by_id[cells[0]]["faces"]]
    return items
