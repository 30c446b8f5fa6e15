"""The indexer's read-ahead: chunks come back in order, whether a worker or this process prepared them."""

from __future__ import annotations

import concurrent.futures
import threading
from pathlib import Path

from facesearch.embedder import FaceMode
from facesearch.indexer import add
from facesearch.sources import Item


def _reads(n: int) -> list:
    return [add._Read(Item(Path(f"{i}.jpg"), "someone"), bytes([i]), str(i)) for i in range(n)]


def test_chunks_come_back_in_order_when_this_process_prepares_some(monkeypatch):
    gate = threading.Event()
    here = threading.get_ident()
    where = []

    def fake_prepare_many(items, mode, keep_jpeg, boxes=None):
        if threading.get_ident() != here:
            gate.wait(5)   # the worker is slow: the main thread prepares queued chunks meanwhile
        where.append(threading.get_ident() == here)
        if sum(where) == 2:
            gate.set()
        return [bytes(d) for d in items]

    monkeypatch.setattr(add.prepare, "prepare_many", fake_prepare_many)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        out = []
        for r, p in add._prepared(iter(_reads(40)), FaceMode.DETECT, pool, window=32, chunk=4):
            out.append((r.sha256, p))
    assert [s for s, _ in out] == [str(i) for i in range(40)]
    assert all(p == bytes([int(s)]) for s, p in out)
    assert any(where) and not all(where)
