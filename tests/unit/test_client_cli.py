"""facesearch-client's JSON output (the CLI against a real server: tests/e2e/test_server.py)."""

from __future__ import annotations

import json

from facesearch.client.cli import as_json
from facesearch.v1 import facesearch_pb2 as pb


def test_json_prints_64_bit_counts_as_numbers():
    big = 2**64 - 1  # a uint64 beyond a double's exact range: still exact
    out = json.loads(as_json(pb.Info(model_id="m", identity_count=big, face_count=0, dimension=128)))
    assert out["identity_count"] == big and out["face_count"] == 0 and out["dimension"] == 128
    assert out["model_id"] == "m" and out["calibration_stale"] is False  # fields without presence too


def test_json_walks_nested_repeated_and_map_fields():
    response = pb.ListIdentitiesResponse(identities=[pb.Identity(identity_id="a", face_count=3,
                                                                  metadata={"k": "12"}, face_ids=["f"])])
    out = json.loads(as_json(response))
    assert out["identities"] == [{"identity_id": "a", "display_name": "", "metadata": {"k": "12"},
                                  "face_count": 3, "face_ids": ["f"]}]
    r = pb.CalibrateResponse(identities=7, genuine_comparisons=2**40, faces=9)
    assert json.loads(as_json(r))["genuine_comparisons"] == 2**40
