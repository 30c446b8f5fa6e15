"""Crash safety: SIGKILL an enrolling process at random points, 20+ rounds."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from sqlalchemy import text

from facesearch.gallery import Gallery, GalleryConfig

from tests.helpers import REPO

from .gallery_crash_child import vector

ROUNDS = 20


def test_acknowledged_enrolments_survive_sigkill(tmp_path):
    rng = np.random.default_rng(2024)
    added: dict[int, int] = {}    # face id -> seed, acknowledged
    deleted: set[int] = set()
    in_doubt: set[int] = set()    # a delete was under way when the kill came
    child = Path(__file__).with_name("gallery_crash_child.py")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for round_ in range(ROUNDS):
        proc = subprocess.Popen([sys.executable, str(child), str(tmp_path), str(round_ * 100_000)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        time.sleep(float(rng.uniform(0.05, 0.6)))
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL, err
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "add":
                added[int(parts[1])] = int(parts[2])
            elif len(parts) == 2 and parts[0] == "deleting":
                in_doubt.add(int(parts[1]))
            elif len(parts) == 2 and parts[0] == "del":
                deleted.add(int(parts[1]))
                in_doubt.discard(int(parts[1]))
        _check(tmp_path, added, deleted, in_doubt)
    assert len(added) > 100 and deleted  # the rounds really did work


def _check(path, added, deleted, in_doubt):
    with Gallery.open(GalleryConfig(data_dir=path), model_id="crash-model", dimension=128) as g:
        with g.engine.connect() as conn:
            assert conn.execute(text("pragma integrity_check")).scalar() == "ok"
            stored = dict(conn.execute(text("select id, embedding from faces")).all())
            orphans = conn.execute(text(
                "select count(*) from faces f left join identities i on i.id = f.identity_pk "
                "where i.id is null")).scalar()
        assert orphans == 0
        live = {fid: seed for fid, seed in added.items() if fid not in deleted | in_doubt}
        assert set(live) <= set(stored), "an acknowledged face is missing from SQL"
        assert not (deleted & set(stored)), "an acknowledged delete came back"
        for fid, seed in live.items():
            np.testing.assert_allclose(np.frombuffer(stored[fid], "<f4"), vector(seed), atol=1e-6)
        assert g.info().face_count == len(stored) == g.indexed_count()
        assert set(g.indexed_ids().tolist()) == set(stored)
        sample = list(live)[-50:]
        if sample:
            got = g.search(np.stack([vector(live[f]) for f in sample]), max_distance=0.01)
            assert [m[0].face_id if m else None for m in got] == sample
