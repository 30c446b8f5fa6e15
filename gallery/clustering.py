"""Faces into proposed people: DBSCAN over a k-nearest-neighbour graph from FAISS (docs/clustering.md).

Each face's K nearest faces come from one FAISS search (exact up to EXACT_UP_TO faces, an IVF index
beyond), so the cost grows as n x K, not n^2.

1. DBSCAN: a face is a core face when at least min_faces faces (itself included) lie within
   max_distance; cores joined by an edge within max_distance form one cluster (connected
   components); a face that is not a core joins the cluster of its nearest core within
   max_distance. Clusters smaller than min_faces are dissolved.
2. Attachment: a face still unclustered joins the cluster of its nearest clustered face when that
   is within attach_distance. A lone face cannot link two clusters, so this looser distance adds
   a person's harder photos without the chaining that merges look-alikes (docs/clustering.md).

Nothing depends on the order of the input beyond tie-breaks by position, so a fixed input gives
a fixed answer.
"""

from __future__ import annotations

import math
from typing import Any

import faiss
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from facesearch.embedder.distances import to_squared_l2

K = 32                  # neighbours per face: far more than min_faces, so density and links are seen
EXACT_UP_TO = 20_000    # faces searched exactly (flat); above, IVF with IVF_PROBE lists per query
IVF_PROBE = 24


def knn(vectors: np.ndarray, k: int = K) -> tuple[np.ndarray, np.ndarray]:
    """(squared L2 distances, indices), each (n, k'), nearest first, the face itself included;
    k' = min(k, n). Missing neighbours (IVF) have index -1."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    n, d = x.shape
    k = min(k, n)
    index: Any   # faiss's stub types IndexIVFFlat without its k-means parameters
    if n <= EXACT_UP_TO:
        index = faiss.IndexFlatL2(d)
    else:
        nlist = int(4 * math.sqrt(n))
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, nlist)
        index.cp.seed = 1234   # fixed k-means seed: the same lists, so the same answer, every run
        index.train(x)
        index.nprobe = IVF_PROBE
    index.add(x)
    dist, idx = index.search(x, k)
    return np.asarray(dist, np.float32), np.asarray(idx, np.int64)


def cluster(vectors: np.ndarray, max_distance: float, min_faces: int, attach_distance: float = 0.0,
            k: int = K) -> np.ndarray:
    """A label per face: 0 for the largest cluster, 1 for the next..., -1 unclustered.
    Distances on the service scale; min_faces >= 1; attach_distance 0 (or under max_distance):
    no attachment. Ties in size go to the cluster whose first face comes first."""
    n = len(vectors)
    if n == 0:
        return np.zeros(0, np.int64)
    if min_faces < 1:
        raise ValueError("min_faces must be at least 1")
    dist, idx = knn(vectors, max(k, min_faces))
    near = (idx >= 0) & (dist <= float(to_squared_l2(max_distance)))
    core = near.sum(1) >= min_faces   # the face itself is among its neighbours
    rows = np.repeat(np.arange(n), idx.shape[1])[near.ravel()]
    cols = idx[near]
    linked = core[rows] & core[cols] & (rows != cols)
    graph = coo_matrix((np.ones(int(linked.sum()), np.int8), (rows[linked], cols[linked])), shape=(n, n))
    _, component = connected_components(graph, directed=True, connection="weak")
    labels = np.where(core, component, -1)
    # border faces: the cluster of the nearest core within reach (columns are nearest first)
    reach = near & core[np.maximum(idx, 0)] & (idx != np.arange(n)[:, None])
    border = ~core & reach.any(1)
    nearest = idx[border, reach[border].argmax(1)]
    labels[border] = labels[nearest]
    sizes = np.bincount(labels[labels >= 0], minlength=n)
    labels[(labels >= 0) & (sizes[np.maximum(labels, 0)] < min_faces)] = -1
    if attach_distance > max_distance:
        within = (idx >= 0) & (dist <= float(to_squared_l2(attach_distance)))
        reach = within & (labels[np.maximum(idx, 0)] >= 0)
        lone = (labels < 0) & reach.any(1)
        labels[lone] = labels[idx[lone, reach[lone].argmax(1)]]   # nearest first; labels as before this step
    return _ranked(labels)


def _ranked(labels: np.ndarray) -> np.ndarray:
    """Renumber: largest first, then by first face."""
    kept = labels[labels >= 0]
    if not len(kept):
        return np.full(len(labels), -1, np.int64)
    ids, first, sizes = np.unique(kept, return_index=True, return_counts=True)
    first = np.flatnonzero(labels >= 0)[first]
    order = sorted((-int(s), int(f), int(c)) for c, f, s in zip(ids, first, sizes))
    rank = np.full(int(ids.max()) + 1, -1, np.int64)
    for r, (_, _, c) in enumerate(order):
        rank[c] = r
    return np.where(labels >= 0, rank[np.maximum(labels, 0)], -1)
