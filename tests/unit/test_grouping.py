"""From nearest faces to nearest identities (gallery/grouping.py), against a plain loop."""

from __future__ import annotations

import numpy as np
import pytest

from facesearch.embedder.distances import from_squared_l2
from facesearch.gallery.facemap import GONE
from facesearch.gallery.grouping import group, nearest


def reference(dist, ids, owners, names, cutoff, top_k):
    """The obvious loop per row: the first face of each identity within the cutoff."""
    out = []
    for d_row, i_row, o_row in zip(dist, ids, owners):
        best = {}
        for d, fid, owner in zip(d_row.tolist(), i_row.tolist(), o_row.tolist()):
            if d <= cutoff and owner != GONE and owner not in best and len(best) < top_k:
                best[owner] = (names[owner][0], float(from_squared_l2(max(d, 0.0))), fid)
        out.append(list(best.values()))
    return out


@pytest.mark.parametrize("top_k", [1, 2, 5, 50])
def test_vectorised_grouping_equals_the_loop(top_k):
    rng = np.random.default_rng(top_k)
    n, k = 40, 300
    dist = np.sort(rng.uniform(0, 4, (n, k)).astype(np.float32), axis=1)
    ids = rng.permutation(n * k).reshape(n, k).astype(np.int64)
    owners = rng.integers(0, 30, (n, k))
    owners[:10] = rng.integers(0, 2, (10, k))        # rows with two identities only
    owners[rng.random((n, k)) < 0.1] = GONE          # deleted faces and empty slots
    ids[:, -5:], owners[:, -5:], dist[:, -5:] = -1, GONE, np.finfo(np.float32).max
    names = {o: (f"id{o}", f"Name {o}") for o in range(30)}
    cutoff = 2.5
    grouped = group(dist, ids, owners, names, cutoff, top_k)
    got = [[(m.identity_id, m.distance, m.face_id) for m in row] for row in grouped]
    assert got == reference(dist, ids, owners, names, cutoff, top_k)
    assert all(len(row) <= 2 for row in got[:10]) and max(len(row) for row in got[10:]) == min(top_k, 30)
    if top_k == 1:
        assert [[(m.identity_id, m.face_id) for m in row] for row in nearest(dist, ids, owners, names, cutoff)] == \
            [[(i, f) for i, _, f in row] for row in got]


def test_nothing_within_the_cutoff_is_an_empty_row():
    dist = np.array([[5.0, 6.0]], np.float32)
    assert group(dist, np.array([[1, 2]]), np.array([[0, 0]]), {0: ("a", "")}, 1.0, 3) == [[]]
