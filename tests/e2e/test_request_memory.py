"""What a request may cost in memory, measured as the server process's peak RSS (issue 22).

The decode bomb: a 6400x6250 solid-colour lossless WebP is about 1.6 KB and decodes to 114 MiB
(40 MP, exactly FACESEARCH_MAX_PIXELS, so each one alone is accepted). Peak RSS is Linux's
VmHWM of the session's server, reset through /proc/PID/clear_refs before the requests.
"""

from __future__ import annotations

import io
import sys
import threading
from pathlib import Path

import grpc
import pytest
from PIL import Image

from facesearch.client import FaceSearchClient
from facesearch.v1 import facesearch_pb2 as pb

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="peak RSS is read from /proc (Linux)")

MiB = 1 << 20
BOMB_SIDE = (6400, 6250)
DECODED = BOMB_SIDE[0] * BOMB_SIDE[1] * 3    # 114 MiB of RGB each


@pytest.fixture(scope="module")
def bomb() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", BOMB_SIDE, (200, 120, 80)).save(buf, "WEBP", lossless=True)
    data = buf.getvalue()
    assert len(data) < 4096
    return data


def variants(bomb: bytes, n: int, first: int = 0) -> list[bytes]:
    """n different bombs (trailing bytes after the RIFF container, which decoders ignore), so that
    an Enroll's duplicate check does not skip any."""
    return [bomb + i.to_bytes(4, "big") for i in range(first, first + n)]


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in bytes."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


def _peak_growth(pid: int, requests) -> int:
    """Bytes the process's peak RSS rose above its RSS at the start, over running requests()."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")   # peak RSS := current RSS
    before = _status(pid)["VmRSS"]
    requests()
    return _status(pid)["VmHWM"] - before


def test_a_request_over_the_pixel_budget_is_refused_before_decoding(server, bomb):
    """256 bombs in one Enroll (400 KB): 10 GP, refused from the headers; nothing is decoded."""
    failed = {}

    def enroll():
        with FaceSearchClient(server.target, timeout=120) as c:
            with pytest.raises(grpc.RpcError) as info:
                c.enroll("bombs", [bomb] * 256)
            failed["code"], failed["details"] = info.value.code(), info.value.details()

    growth = _peak_growth(server.proc.pid, enroll)
    assert failed["code"] == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "10,240,000,000 pixels" in failed["details"] and "FACESEARCH_MAX_REQUEST_PIXELS" in failed["details"]
    assert growth < 64 * MiB, f"peak RSS rose {growth / MiB:.0f} MiB"


def test_concurrent_enrolls_of_large_images_hold_the_decode_workers_worth(server, bomb):
    """Three CROPPED Enrolls at once of six bombs each (within the request budget): 18 x 114 MiB
    = 2 GiB decoded if all were held together, as before (then the peak rose 3.3 GiB). Decodes now
    wait for picks, so the peak stays near the two decode workers' photos and their decode buffers
    (Pillow and libwebp: about 600 MiB each): bound 2 GiB. CROPPED isolates decoding: MTCNN's own
    peak on a 1600-pixel photo is far larger than a decoded photo."""
    results, errors = [], []

    def enroll(i: int):
        try:
            with FaceSearchClient(server.target, timeout=300) as c:
                results.append(c.enroll(f"bombs-{i}", variants(bomb, 6, 6 * i), face_mode=pb.FACE_MODE_CROPPED))
        except Exception as exc:   # reported below, not swallowed
            errors.append(exc)

    def requests():
        threads = [threading.Thread(target=enroll, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    growth = _peak_growth(server.proc.pid, requests)
    assert not errors, errors
    assert sorted(len(r.face_ids) for r in results) == [6, 6, 6]   # the image is the face: each one enrolled
    assert growth < 2048 * MiB, f"peak RSS rose {growth / MiB:.0f} MiB ({18 * DECODED / MiB:.0f} MiB if all were held)"
