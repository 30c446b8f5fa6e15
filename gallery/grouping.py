"""From nearest faces to nearest identities: the best face of each identity, best first."""

from __future__ import annotations

import numpy as np

from facesearch.embedder.distances import SCALE, from_squared_l2

from .facemap import GONE
from .records import Match


def nearest(dist, ids, owners, names: dict, cutoff: float) -> list[list[Match]]:
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


def group(dist, ids, owners, names: dict, cutoff: float, top_k: int) -> list[Match]:
    best: dict[int, Match] = {}
    for d, fid, owner in zip(dist.tolist(), ids.tolist(), owners.tolist()):
        if d > cutoff:
            break  # ascending: the rest are farther
        if owner == GONE or owner in best:
            continue  # empty slot or deleted face, or an identity already placed
        identity_id, name = names[owner]
        best[owner] = Match(identity_id, name, float(from_squared_l2(max(d, 0.0))), fid)
        if len(best) == top_k:
            break
    return list(best.values())
