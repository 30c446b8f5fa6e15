"""Open-set calibration: the cutoff that fits the enrolled faces (docs/calibration.md).

Pure numpy/FAISS over (vectors, labels); the Gallery, the server and the
trainer call it. Two estimates come from the enrolled faces themselves:

- genuine side: each face's nearest *other* face of the same identity. If the
  face were a query, it would be missed (FNIR) when that distance is over the
  cutoff, or when a face of another identity is nearer still. The nearer-impostor
  share is a floor that no cutoff goes under.
- impostor side: each face's nearest face of any other identity. A stranger
  like it would be accepted (FPIR) when that distance is within the cutoff.

target_fnir, when set, decides (the smallest cutoff whose FNIR is at most the
target); else target_fpir (the largest cutoff whose FPIR is at most the target);
both unset: target_fnir = DEFAULT_TARGET_FNIR. Both estimates are reported at
the chosen cutoff.

All searches are batched and exact: same-identity distances as one matrix
product per group of equal-size identities, other-identity neighbours as one
flat FAISS k-NN search of all query faces against every face. Every face is a
query while that costs at most QUERY_PAIRS comparisons (20,000 faces); beyond,
a seeded sample of max(MIN_QUERIES, 10 / target_fpir, QUERY_PAIRS / faces)
faces are the queries, still against every face, and the result says so. A calibration
that would compare more than MAX_PAIRS (query, face) pairs, e.g. a tiny target_fpir, is refused
before any work (check_budget). An approximate
index (IVF) was tried instead and under-estimated FPIR by a third at 30k faces:
a stranger's nearest face is about as far as a random one, which is where IVF
misses most.
"""

from __future__ import annotations

import math
from typing import Any
import threading
from dataclasses import dataclass

import faiss
import numpy as np
import numpy.typing as npt

from facesearch.embedder.distances import MAX_DISTANCE, SCALE

from .errors import CalibrationBudgetError, CalibrationCancelled, CalibrationError, InvalidTargetError

DEFAULT_TARGET_FNIR = 0.01
QUERY_PAIRS = 400_000_000    # most (query, face) pairs compared: about 4 s of flat search on 2 busy cores
MIN_QUERIES = 4_000          # a sample has at least this many query faces (and 10 / target_fpir)
MIN_IMPOSTOR_MISSES = 10     # the impostor side needs 10 / target_fpir comparisons
_BLOCK = 1 << 22             # entries per same-identity distance block (16 MiB of float32)
MAX_PAIRS = 8_000_000_000    # the most (query, face) pairs one calibration compares: about 80 s on 2 cores;
                             # the default sample (MIN_QUERIES queries) fits it up to 2M faces
_QUERY_CHUNK = 4096          # queries per k-NN search: a cancelled calibration stops within one


@dataclass(frozen=True)
class Neighbours:
    """Per query face: nearest same-identity and other-identity distances (service scale; inf: none)."""
    genuine: np.ndarray     # nearest other face of the same identity
    impostor: np.ndarray    # nearest face of any other identity
    identities: int         # identities in the gallery
    total_faces: int        # faces in the gallery
    sampled: bool           # True: the queries are a seeded sample of the faces

    @property
    def faces(self) -> int:
        """Faces used as queries."""
        return len(self.genuine)

    @property
    def genuine_comparisons(self) -> int:
        return int(np.isfinite(self.genuine).sum())

    @property
    def impostor_comparisons(self) -> int:
        return int(np.isfinite(self.impostor).sum())

    def _missed_anyway(self) -> npt.NDArray[np.bool_]:
        """Faces with a genuine neighbour whose nearest other identity is nearer: missed at any cutoff."""
        g = np.isfinite(self.genuine)
        missed: npt.NDArray[np.bool_] = self.impostor[g] < self.genuine[g]
        return missed

    @property
    def fnir_floor(self) -> float:
        """The share of faces another identity takes whatever the cutoff."""
        n = self.genuine_comparisons
        return float(self._missed_anyway().sum() / n) if n else float("nan")

    def fnir(self, cutoff: float) -> float:
        """Share of faces (of identities with 2+ faces) missed at this cutoff."""
        g = np.isfinite(self.genuine)
        if not g.any():
            return float("nan")
        missed = (self.genuine[g] > cutoff) | (self.impostor[g] < self.genuine[g])
        return float(missed.mean())

    def fpir(self, cutoff: float) -> float:
        """Share of faces whose nearest other identity is within this cutoff."""
        i = self.impostor[np.isfinite(self.impostor)]
        return float((i <= cutoff).mean()) if len(i) else float("nan")


@dataclass(frozen=True)
class Calibration:
    """A chosen cutoff with both estimates at it, the targets and the counts behind it."""
    max_distance: float
    expected_fpir: float
    expected_fnir: float
    target_fpir: float        # 0: not the deciding target
    target_fnir: float        # 0: not the deciding target
    identities: int
    genuine_comparisons: int
    impostor_comparisons: int
    faces: int                # faces used as queries
    total_faces: int
    sampled: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Calibration":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


# -- targets and the default cutoff ------------------------------------------------
def targets(target_fpir: float = 0.0, target_fnir: float = 0.0) -> tuple[float, float]:
    """(target_fpir, target_fnir) with exactly one non-zero: target_fnir decides when set; both 0: FNIR 0.01."""
    for name, value in (("target_fpir", target_fpir), ("target_fnir", target_fnir)):
        if not math.isfinite(value) or not 0.0 <= value < 1.0:
            raise InvalidTargetError(f"{name} {value} must be at least 0 and below 1 (0: unset)")
    # 6 significant digits: a float32 from the API (0.01 arrives as 0.0099999998) means the decimal it was
    target_fpir, target_fnir = float(f"{target_fpir:.6g}"), float(f"{target_fnir:.6g}")
    if target_fnir:
        return 0.0, target_fnir
    if target_fpir:
        return target_fpir, 0.0
    return 0.0, DEFAULT_TARGET_FNIR


def effective_cutoff(requested: float, *, configured: float, explicit: bool,
                     calibrated: float | None) -> tuple[float, str]:
    """The cutoff a search uses, and where it comes from. The one place of the precedence:

    1. the request's max_distance, when non-zero                 -> "request"
    2. FACESEARCH_MAX_DISTANCE / --max-distance, when given      -> "configured"
    3. the gallery's applied calibration, when there is one      -> "calibrated"
    4. the configured value, which defaults to DEFAULT_CUTOFF    -> "default"
    """
    if requested:
        return float(requested), "request"
    if explicit:
        return float(configured), "configured"
    if calibrated is not None:
        return float(calibrated), "calibrated"
    return float(configured), "default"


# -- the two estimates ---------------------------------------------------------------
def threshold_at(negatives: np.ndarray, rate: float) -> float:
    """The largest cutoff (accept d <= t) whose false-accept share of `negatives` is at most `rate`.

    A float32 value, as the API carries cutoffs: the float32 just below the first distance it must reject.
    """
    s = np.sort(np.asarray(negatives, dtype=np.float32))
    if len(s) == 0:
        return float("nan")
    allowed = int(np.floor(rate * len(s) + 1e-9))
    if allowed >= len(s):
        return float(s[-1])
    return float(np.nextafter(s[allowed], np.float32(-np.inf)))


def query_count(faces: int, query_pairs: int = QUERY_PAIRS, min_queries: int = MIN_QUERIES) -> int:
    """How many faces are queries: all of them, or a sample when that would compare too many pairs."""
    if faces * faces <= query_pairs:
        return faces
    return min(faces, max(min_queries, query_pairs // faces))


def needed_queries(target_fpir: float) -> int:
    """Query faces the impostor side needs for target_fpir: 10 / target_fpir (0 when unset)."""
    return math.ceil(MIN_IMPOSTOR_MISSES / target_fpir - 1e-9) if target_fpir else 0


def check_budget(faces: int, target_fpir: float = 0.0, max_pairs: int = MAX_PAIRS) -> int:
    """The (query, face) pairs a calibration of `faces` faces compares, or CalibrationBudgetError
    when over max_pairs; cheap, so it runs before anything is read or searched."""
    need = needed_queries(target_fpir)
    queries = max(query_count(faces, QUERY_PAIRS, max(MIN_QUERIES, need)), need)
    pairs = queries * faces
    if pairs > max_pairs:
        why = f"target_fpir {target_fpir:g} needs {need:.3g} query faces" if need > MIN_QUERIES else \
            f"{queries} query faces"
        raise CalibrationBudgetError(f"calibrating {faces} faces: {why} against {faces} faces is {pairs:.3g} "
                                     f"comparisons, over the budget of {max_pairs:.3g}; ask for a larger target_fpir "
                                     "or a target_fnir")
    return pairs


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise CalibrationCancelled("calibration cancelled")


def neighbours(vectors: np.ndarray, labels: np.ndarray, *, query_pairs: int = QUERY_PAIRS,
               min_queries: int = MIN_QUERIES, seed: int = 0, cancel: threading.Event | None = None) -> Neighbours:
    """Nearest same-identity and other-identity distances of each face (or of a seeded sample);
    cancel, once set, stops it with CalibrationCancelled at the next block."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    labels = np.asarray(labels)
    n = len(x)
    if labels.shape != (n,):
        raise ValueError(f"{len(labels)} labels for {n} vectors")
    _, y = np.unique(labels, return_inverse=True)      # dense 0..m-1
    y = y.astype(np.int64)
    identities = int(y.max()) + 1 if n else 0
    q = query_count(n, query_pairs, min_queries)
    sampled = q < n
    queries = np.sort(np.random.default_rng(seed).choice(n, q, replace=False)) if sampled else np.arange(n)
    genuine = _nearest_same(x, y, cancel)[queries]
    impostor = _nearest_other(x, y, queries, cancel)
    return Neighbours(genuine * SCALE, impostor * SCALE, identities, n, sampled)


def _nearest_same(x: np.ndarray, y: np.ndarray, cancel: threading.Event | None = None) -> np.ndarray:
    """Squared L2 from each face to its nearest other face of the same identity (inf when alone).

    Identities of equal size are stacked and done in one batched matrix product per block.
    """
    out = np.full(len(x), np.inf, np.float32)
    order = np.argsort(y, kind="stable")
    _, starts, counts = np.unique(y[order], return_index=True, return_counts=True)
    norms = np.einsum("ij,ij->i", x, x)
    for size in np.unique(counts[counts >= 2]).tolist():
        members = order[starts[counts == size][:, None] + np.arange(size)]      # (groups, size)
        if size * size <= _BLOCK:
            per = max(1, _BLOCK // (size * size))
            for b in range(0, len(members), per):
                _check(cancel)
                m = members[b:b + per]
                v = x[m]                                                         # (g, s, d)
                sq = norms[m][:, :, None] + norms[m][:, None, :] - 2.0 * (v @ v.transpose(0, 2, 1))
                sq[:, np.arange(size), np.arange(size)] = np.inf
                out[m] = np.maximum(sq.min(2), 0.0)
        else:  # one very large identity: blocks of rows against all its faces
            rows = max(1, _BLOCK // size)
            for m in members:
                v, nm = x[m], norms[m]
                for b in range(0, size, rows):
                    _check(cancel)
                    sq = nm[b:b + rows, None] + nm[None, :] - 2.0 * (v[b:b + rows] @ v.T)
                    sq[np.arange(len(sq)), b + np.arange(len(sq))] = np.inf
                    out[m[b:b + rows]] = np.maximum(sq.min(1), 0.0)
    return out


def _nearest_other(x: np.ndarray, y: np.ndarray, queries: np.ndarray,
                   cancel: threading.Event | None = None) -> np.ndarray:
    """Squared L2 from each query face to the nearest face of another identity (inf when there is none).

    One exact k-NN search of all queries at once; the rows whose k neighbours are all their own
    identity search again with 4k. k = largest identity + 1 always reaches another identity, so
    the answer equals brute force.
    """
    out = np.full(len(queries), np.inf, np.float32)
    if len(np.unique(y)) < 2:
        return out
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    k_max = min(len(x), int(np.bincount(y).max()) + 1)
    k = min(k_max, 32)
    todo = np.arange(len(queries))
    while len(todo):
        found = np.zeros(len(todo), bool)
        for start in range(0, len(todo), _QUERY_CHUNK):
            _check(cancel)
            part = todo[start:start + _QUERY_CHUNK]
            dist, ids = index.search(x[queries[part]], k)
            other = (ids >= 0) & (y[np.maximum(ids, 0)] != y[queries[part]][:, None])
            hit = other.any(1)
            first = other.argmax(1)
            rows = np.flatnonzero(hit)
            out[part[rows]] = np.maximum(dist[rows, first[rows]], 0.0)
            found[start:start + len(part)] = hit
        if k >= k_max:
            break
        todo, k = todo[~found], min(k_max, k * 4)
    return out


# -- choosing the cutoff -----------------------------------------------------------------
def choose(nb: Neighbours, target_fpir: float = 0.0, target_fnir: float = 0.0) -> Calibration:
    """The cutoff for the deciding target (see targets()), or CalibrationError with what is missing."""
    target_fpir, target_fnir = targets(target_fpir, target_fnir)
    _enough(nb, target_fpir)
    if target_fnir:
        floor = nb.fnir_floor
        if floor > target_fnir:
            taken = int(nb._missed_anyway().sum())
            raise CalibrationError(
                f"no cutoff reaches target_fnir {target_fnir:g}: another identity is nearer than the nearest own "
                f"face for {taken} of {nb.genuine_comparisons} faces, so FNIR is at least {floor:.4f}",
                floor=floor)
        cutoff = _fnir_cutoff(nb, target_fnir)
    else:
        cutoff = threshold_at(nb.impostor[np.isfinite(nb.impostor)], target_fpir)
    cutoff = float(min(max(cutoff, 1e-6), MAX_DISTANCE))
    return Calibration(max_distance=cutoff, expected_fpir=nb.fpir(cutoff), expected_fnir=nb.fnir(cutoff),
                       target_fpir=target_fpir, target_fnir=target_fnir, identities=nb.identities,
                       genuine_comparisons=nb.genuine_comparisons, impostor_comparisons=nb.impostor_comparisons,
                       faces=nb.faces, total_faces=nb.total_faces, sampled=nb.sampled)


def _fnir_cutoff(nb: Neighbours, target_fnir: float) -> float:
    """The smallest cutoff whose FNIR is at most target_fnir (the floor already fits)."""
    g = nb.genuine[np.isfinite(nb.genuine)]
    i = nb.impostor[np.isfinite(nb.genuine)]
    reachable = np.sort(g[~(i < g)])                 # faces a large enough cutoff identifies
    allowed = int(np.floor(target_fnir * len(g) + 1e-9)) - (len(g) - len(reachable))
    keep = len(reachable) - allowed                  # of these, how many the cutoff must keep
    return float(reachable[keep - 1]) if keep > 0 else float(reachable[0]) if len(reachable) else 0.0


def _enough(nb: Neighbours, target_fpir: float) -> None:
    """Not enough data: both estimates are reported, so both sides need their minimum."""
    missing = []
    if nb.identities < 2:
        missing.append(f"the impostor side needs at least 2 identities; the gallery has {nb.identities}")
    if nb.genuine_comparisons == 0:
        missing.append(f"the genuine side needs identities with at least 2 faces; none of the {nb.identities} "
                       f"identities ({nb.total_faces} faces) has 2")
    if target_fpir and nb.identities >= 2:
        need = math.ceil(MIN_IMPOSTOR_MISSES / target_fpir - 1e-9)
        if nb.impostor_comparisons < need:
            missing.append(f"target_fpir {target_fpir:g} needs at least {need} impostor comparisons "
                           f"(10 / target_fpir); the gallery gives {nb.impostor_comparisons}, "
                           f"{need - nb.impostor_comparisons} short")
    if missing:
        raise CalibrationError("not enough data to calibrate: " + "; ".join(missing))


def calibrate(vectors: np.ndarray, labels: np.ndarray, target_fpir: float = 0.0, target_fnir: float = 0.0,
              **kw: Any) -> Calibration:
    """neighbours() then choose(): the whole calibration of labelled unit vectors."""
    target_fpir, target_fnir = targets(target_fpir, target_fnir)   # a bad target fails before any search
    check_budget(len(vectors), target_fpir)
    if target_fpir:   # a sample must still give the 10 / target_fpir comparisons _enough() asks for
        kw.setdefault("min_queries", max(MIN_QUERIES, needed_queries(target_fpir)))
    return choose(neighbours(vectors, labels, **kw), target_fpir, target_fnir)


def curves(nb: Neighbours, cutoffs: npt.ArrayLike) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(FPIR, FNIR) estimates at each cutoff (what fpir() and fnir() give), for plots."""
    at = np.asarray(cutoffs, np.float64)
    imp = np.sort(nb.impostor[np.isfinite(nb.impostor)])
    fpir = np.searchsorted(imp, at, side="right") / max(len(imp), 1)
    g = np.isfinite(nb.genuine)
    gen, floor = nb.genuine[g], nb._missed_anyway()
    reachable = np.sort(gen[~floor])
    kept = np.searchsorted(reachable, at, side="right")
    fnir = 1.0 - kept / max(len(gen), 1)
    return fpir, fnir
