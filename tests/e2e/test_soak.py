"""The soak in short: a real server under the mixed load for 15 s, then the ledger check.

Asserts what was acknowledged and the error counts, never timings (make soak runs 30 minutes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_a_short_soak_loses_nothing_and_fails_only_bad_requests(tmp_path):
    out = tmp_path / "soak.json"
    proc = subprocess.run([sys.executable, "-m", "bench.soak", "--seconds", "15", "--workers", "4",
                           "--sample-every", "4", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["ok"] and result["unexpected_errors"] == {}
    ledger = result["ledger"]
    assert ledger["lost"] == [] and ledger["extra"] == [] and ledger["resurrected"] == []
    assert ledger["faces"] > 0 and ledger["identities"] > 0, "the soak enrolled nothing"
    assert result["bad_requests"] and all(k.endswith(":INVALID_ARGUMENT") for k in result["bad_requests"])
    for op in ("identify_photo", "identify_crop", "identify_embedding", "enroll_embeddings", "verify", "list"):
        assert result["ops"].get(op, 0) > 0, f"no {op} in the mix"
    assert len(result["samples"]) >= 3 and all(s["fds"] > 0 and s["rss_mib"] > 0 for s in result["samples"])
