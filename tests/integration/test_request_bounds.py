"""A bounded cost per request, checked before the work (issue 22): fields against their columns on
both databases, the Calibrate budget and its cancellation, and the search's candidate cap."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from facesearch.embedder.distances import MAX_DISTANCE
from facesearch.gallery import Enrolment, Gallery, GalleryConfig, NewFace
from facesearch.gallery.grouping import MAX_CANDIDATES
from facesearch.service import EmbeddingInput, FaceSearchService, InvalidArgument, Limits, ResourceExhausted, Runtime

from tests.helpers import unit

D = 128


def _serve(embedder, config: GalleryConfig, scenario):
    """scenario(service, gallery) in one event loop with a started runtime."""
    async def main():
        gallery = Gallery.open(config, model_id=embedder.model_id, dimension=embedder.dimension)
        runtime = Runtime(embedder, gallery, detect_workers=1, max_wait_s=0.002)
        runtime.start()
        try:
            return await scenario(FaceSearchService(embedder, gallery, runtime, Limits()), gallery)
        finally:
            await runtime.stop()
            gallery.close()

    return asyncio.run(main())


async def _refusal(call) -> str:
    with pytest.raises(InvalidArgument) as info:
        await call
    return str(info.value)


def test_fields_fit_their_columns_on_both_databases(embedder, tmp_path, database_url):
    v = unit(np.random.default_rng(0), 3)
    wide = "𝔑" * 255   # 255 characters, 1,020 UTF-8 bytes: what VARCHAR(255) holds on PostgreSQL too

    async def scenario(svc: FaceSearchService, gallery):
        refused = [
            await _refusal(svc.enroll("a", embeddings=[EmbeddingInput(v[0])], display_name="n" * 256)),
            await _refusal(svc.enroll("a", embeddings=[EmbeddingInput(v[0])], display_name="a\x00b")),
            await _refusal(svc.enroll("a", embeddings=[EmbeddingInput(v[0])], metadata={"k": "v\x00"})),
            await _refusal(svc.enroll("a\x00b", embeddings=[EmbeddingInput(v[0])])),
            await _refusal(svc.get_identity("a\x00b")),
            await _refusal(svc.get_identity("x" * 256)),
            await _refusal(svc.delete_identity("a\x00b")),
            await _refusal(svc.verify(EmbeddingInput(v[0]), "a\x00b")),
        ]
        added = await svc.enroll("𝔦" * 255, embeddings=[EmbeddingInput(v[1])], display_name=wide,
                                 metadata={"k": "é" * 2048})
        stored = await svc.get_identity("𝔦" * 255)
        return refused, added, stored, (await svc.info()).identity_count

    refused, added, stored, count = _serve(embedder, GalleryConfig(data_dir=tmp_path, database_url=database_url),
                                           scenario)
    assert "display_name is 256 characters; at most 255" in refused[0]
    assert "NUL" in refused[1] and "NUL" in refused[2] and "NUL" in refused[3] and "NUL" in refused[4]
    assert "256 characters" in refused[5] and "NUL" in refused[6] and "NUL" in refused[7]
    assert added.created and stored.display_name == wide and stored.metadata == {"k": "é" * 2048}
    assert count == 1  # nothing refused was stored


def test_a_tiny_calibrate_target_is_refused_before_any_work(embedder, tmp_path):
    x = unit(np.random.default_rng(1), 40)

    async def scenario(svc: FaceSearchService, gallery):
        await svc.enroll("a", embeddings=[EmbeddingInput(r) for r in x[:20]])
        await svc.enroll("b", embeddings=[EmbeddingInput(r) for r in x[20:]])
        read = []
        original = gallery.labelled_vectors
        gallery.labelled_vectors = lambda: read.append(1) or original()   # the work a calibration starts with
        with pytest.raises(ResourceExhausted) as info:
            await svc.calibrate(target_fpir=1e-30)
        ok = await svc.calibrate(target_fnir=0.5)   # within the budget: it runs
        return str(info.value), read, ok

    message, read, ok = _serve(embedder, GalleryConfig(data_dir=tmp_path), scenario)
    assert "over the budget" in message and "target_fpir 1e-30" in message
    assert read == [1], "the refused calibration read nothing; the accepted one read the faces once"
    assert ok.calibration.faces == 40


def test_calibrate_runs_on_its_own_thread_and_stops_when_cancelled(embedder, tmp_path):
    seen: dict = {}
    started, stopped = threading.Event(), threading.Event()

    def calibration(*, cancel: threading.Event):   # stands for the gallery's: waits on its cancel event
        seen["thread"] = threading.current_thread().name
        started.set()
        seen["cancelled"] = cancel.wait(60)
        stopped.set()

    async def scenario(svc: FaceSearchService, gallery):
        task = asyncio.ensure_future(svc.runtime.calibrate(calibration))
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 60)
        assert await svc.runtime.read(gallery.info)  # reads still run while it does
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await asyncio.get_running_loop().run_in_executor(None, stopped.wait, 60)

    assert _serve(embedder, GalleryConfig(data_dir=tmp_path), scenario)
    assert seen == {"thread": "calibrate_0", "cancelled": True}


def test_the_calibration_itself_stops_at_a_set_cancel_event():
    from facesearch.gallery import CalibrationCancelled
    from facesearch.gallery.calibration import neighbours

    x, y = unit(np.random.default_rng(2), 300), np.repeat(np.arange(30), 10)
    cancel = threading.Event()
    assert len(neighbours(x, y, cancel=cancel).genuine) == 300
    cancel.set()
    with pytest.raises(CalibrationCancelled):
        neighbours(x, y, cancel=cancel)


def test_a_search_looks_at_max_candidates_faces_whatever_top_k_and_max_distance(tmp_path):
    """top_k 1,000 and the largest max_distance, with fewer identities than top_k: k used to grow to
    the whole index (1M faces: 12 MB and a Python loop per query). It stops at MAX_CANDIDATES now."""
    rng = np.random.default_rng(3)
    people, per = 5, 4000   # 20,000 faces: more than MAX_CANDIDATES, fewer identities than top_k
    centres = unit(rng, people)
    vectors, owner = [], []
    with Gallery.open(GalleryConfig(data_dir=tmp_path), model_id="m", dimension=D) as g:
        for p in range(people):
            x = centres[p] + 0.05 * rng.standard_normal((per, D)).astype(np.float32)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            g.add_batch([Enrolment(f"p{p}", [NewFace(v) for v in x])])
            vectors.append(x)
            owner += [f"p{p}"] * per
        asked = []
        search = g.index.search
        g.index.search = lambda q, k: asked.append(k) or search(q, k)
        queries = unit(rng, 8)
        found = g.search(queries, top_k=1000, max_distance=MAX_DISTANCE)
    assert asked and max(asked) == MAX_CANDIDATES < people * per
    # by brute force: the identities among each query's MAX_CANDIDATES nearest faces, nearest first
    sq = ((queries[:, None, :] - np.concatenate(vectors)[None]) ** 2).sum(-1)
    owner = np.array(owner)
    for q, matches in zip(sq, found):
        near = owner[np.argsort(q, kind="stable")[:MAX_CANDIDATES]]
        _, first = np.unique(near, return_index=True)
        assert [m.identity_id for m in matches] == near[np.sort(first)].tolist()
    assert max(len(m) for m in found) == people
