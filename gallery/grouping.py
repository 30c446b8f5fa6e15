"""From nearest faces to nearest identities: the best face of each identity, best first."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from facesearch.embedder.distances import SCALE, from_squared_l2

from .facemap import GONE
from .records import Match

# The most nearest faces one query looks at, whatever its top_k and max_distance (README "Limits"):
# a search asks the index for 4 * top_k + 4 faces and, while too few identities are within the
# cutoff, four times as many again, up to this. An identity whose best face is beyond the first
# MAX_CANDIDATES faces is not returned, so a query can get fewer than top_k identities.
MAX_CANDIDATES = 8192

Floats = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]
Names = dict[int, tuple[str, str]]   # identity pk -> (identity_id, display_name), as FaceMap.names


def nearest(dist: Floats, ids: Ints, owners: Ints, names: Names, cutoff: float) -> list[list[Match]]:
    """group() for top_k = 1, vectorised: the first live face within the cutoff of each row."""
    valid = (owners != GONE) & (dist <= cutoff)
    rows, cols = np.arange(len(dist)), valid.argmax(1)
    out = []
    for ok, d, fid, owner in zip(valid.any(1).tolist(), dist[rows, cols].tolist(), ids[rows, cols].tolist(),
                                 owners[rows, cols].tolist()):
        if ok:
            identity_id, name = names[owner]
            out.append([Match(identity_id, name, SCALE * max(d, 0.0), fid)])
        else:
            out.append([])
    return out


def group(dist: Floats, ids: Ints, owners: Ints, names: Names, cutoff: float, top_k: int) -> list[list[Match]]:
    """For each row of (dist, ids, owners), ascending by distance: the best face of each identity
    within the cutoff, best first, at most top_k. Vectorised over the whole (n, k) answer; only the
    matches returned become Python objects."""
    n, k = dist.shape
    rows, cols = np.nonzero((owners != GONE) & (dist <= cutoff))  # row-major: by row, then column
    who = owners[rows, cols]
    # first (nearest) face of each (row, owner): sort by row, owner, column; keep the first of each run
    order = np.lexsort((cols, who, rows))
    rows, cols, who = rows[order], cols[order], who[order]
    first = np.ones(len(rows), bool)
    first[1:] = (rows[1:] != rows[:-1]) | (who[1:] != who[:-1])
    rows, cols, who = rows[first], cols[first], who[first]
    # back to distance order in each row, then at most top_k per row
    order = np.lexsort((cols, rows))
    rows, cols, who = rows[order], cols[order], who[order]
    rank = np.arange(len(rows)) - np.searchsorted(rows, rows)
    keep = rank < top_k
    rows, cols, who = rows[keep], cols[keep], who[keep]
    out: list[list[Match]] = [[] for _ in range(n)]
    for r, d, fid, owner in zip(rows.tolist(), dist[rows, cols].tolist(), ids[rows, cols].tolist(), who.tolist()):
        identity_id, name = names[owner]
        out[r].append(Match(identity_id, name, float(from_squared_l2(max(d, 0.0))), fid))
    return out
