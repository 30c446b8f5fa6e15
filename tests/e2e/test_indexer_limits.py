"""facesearch-indexer add --server keeps every Enroll within the server's limits (issue 22)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from facesearch.client import FaceSearchClient

from tests.helpers import encode


def test_an_image_over_the_request_limit_is_rejected_and_the_run_goes_on(server, samples, tmp_path):
    """A noise PNG of about 9.7 MB is over the 6 MiB an Enroll may carry: rejected by name, and every
    other photo is enrolled in Enrolls that each stay under the limit (no RESOURCE_EXHAUSTED)."""
    person = tmp_path / "gallery" / "limits-ben"
    person.mkdir(parents=True)
    photos = sorted((samples / "train" / "ben_afflek").glob("*.jpg"))[:4]
    for p in photos:
        (person / p.name).write_bytes(p.read_bytes())
    noise = encode(np.random.default_rng(0).integers(0, 256, (1800, 1800, 3), dtype=np.uint8))
    assert len(noise) > 8 << 20   # over the server's message limit too: it used to end the run
    (person / "huge.png").write_bytes(noise)
    report = tmp_path / "report.json"
    indexer = [str(Path(sys.executable).with_name("facesearch-indexer")), "add", str(tmp_path / "gallery"),
               "--server", server.target, "--report", str(report), "--batch-size", "64"]
    r = subprocess.run(indexer, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(report.read_text())
    assert out["added"] == len(photos) and out["rejected"] == 1
    (rejection,) = out["rejections"]
    assert rejection["path"].endswith("huge.png") and "over what one Enroll may carry" in rejection["reason"]
    with FaceSearchClient(server.target, timeout=60) as c:
        assert c.get_identity("limits-ben").face_count == len(photos)
