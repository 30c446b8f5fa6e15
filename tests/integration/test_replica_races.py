"""Races between replicas sharing one database, each forced deterministically: a hook runs the other
replica's write at the exact point between two reads (or inside a transaction), no sleeps.

Two Gallery objects with their own data directories stand for two replicas (as in test_replicas.py).
"""

from __future__ import annotations

from contextlib import ExitStack

import numpy as np
import pytest

from facesearch.gallery import Gallery, GalleryConfig, IndexConfig, NewFace
from facesearch.gallery.recovery import Recovery

D = 8


def unit(rng, n):
    x = rng.normal(size=(n, D)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def shared_url(tmp_path, database_url) -> str:
    return database_url or f"sqlite:///{tmp_path / 'shared.db'}"


def replica(tmp_path, name, url, **kw) -> Gallery:
    config = GalleryConfig(data_dir=tmp_path / name, database_url=url, index=IndexConfig(use_gpu=False), **kw)
    return Gallery.open(config, model_id="races", dimension=D)


def after(monkeypatch, cls, name, action):
    """Run action() once, right after the next call of cls.name returns (the interleaving point)."""
    original = getattr(cls, name)
    fired = []

    def hooked(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        if not fired:
            fired.append(True)
            action()
        return out

    monkeypatch.setattr(cls, name, hooked)
    return fired


@pytest.mark.parametrize("moment", ["open", "rebuild"])
def test_a_face_committed_while_a_replica_reads_its_map_and_index_is_found(tmp_path, shared_url, monkeypatch,
                                                                          moment):
    """Open reads the face map then rebuilds; a rebuild after a failure rebuilds then reads the map.
    Another replica's enrolment between the two reads once left the face in one and not the other,
    with last_seq past it: that replica never found the acknowledged face."""
    x = unit(np.random.default_rng(1), 3)
    with ExitStack() as stack:
        a = stack.enter_context(replica(tmp_path, "a", shared_url))
        a.add_faces("ann", [NewFace(x[0])])
        late = []

        def enrol():
            late.append(a.add_faces("bob", [NewFace(x[1])], display_name="Bob").face_ids[0])

        if moment == "open":
            fired = after(monkeypatch, Recovery, "_load_map", enrol)
            b = stack.enter_context(replica(tmp_path, "b", shared_url))
        else:
            b = stack.enter_context(replica(tmp_path, "b", shared_url))
            fired = after(monkeypatch, Recovery, "_rebuild", enrol)
            with b._write:
                assert b._recover_locked()
        assert fired and late
        b.follow()
        hit = b.search(x[1], max_distance=1e-3)[0]
        assert [(m.identity_id, m.face_id) for m in hit] == [("bob", late[0])]
        assert sorted(b.indexed_ids().tolist()) == sorted(a.indexed_ids().tolist())   # none indexed twice
