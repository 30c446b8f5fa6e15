"""`facesearch-indexer add`: a gallery folder or manifest into the store, resumably.

Files are read and hashed in the main process; a face already enrolled from the
same bytes for the same identity is skipped, so a re-run after Ctrl-C or a kill
carries on where it stopped. Decoding and detection run in worker processes,
ahead of the main process, which embeds a batch and writes it in one transaction;
rather than wait for detection (the workers starting up, or behind), it detects
queued chunks itself.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import multiprocessing
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import grpc
from tqdm import tqdm

from facesearch.embedder import Embedder, EmbedderConfig, FaceMode, prepare
from facesearch.embedder.images import DEFAULT_MAX_REQUEST_PIXELS, header_pixels
from facesearch.gallery import Gallery
from facesearch.service.enrolment import Candidate, Dedupe, enrolments
from facesearch.sources import Item

log = logging.getLogger(__name__)

WORKER_TF_THREADS = 1   # MTCNN is as fast on one thread; more would fight the embedding for the cores


@dataclass
class Summary:
    images: int = 0
    added: int = 0
    skipped: int = 0
    rejected: list[dict] = field(default_factory=list)
    identities_created: int = 0
    seconds: float = 0.0

    def reject(self, item: Item, reason: str) -> None:
        self.rejected.append({"path": str(item.path), "identity_id": item.identity_id, "reason": reason})

    def as_dict(self) -> dict:
        return {"images": self.images, "added": self.added, "skipped": self.skipped, "rejected": len(self.rejected),
                "identities_created": self.identities_created, "seconds": round(self.seconds, 3),
                "images_per_s": round(self.images / self.seconds, 2) if self.seconds else 0.0,
                "rejections": self.rejected}


@dataclass
class _Read:
    item: Item
    data: bytes
    sha256: str


def _read(items: list[Item], summary: Summary) -> Iterator[_Read]:
    for item in items:
        try:
            data = item.path.read_bytes()
        except OSError as exc:
            summary.reject(item, f"cannot read the file: {exc.strerror or exc}")
            continue
        yield _Read(item, data, prepare.sha256_of(data))


def _new_only(reads: Iterator[_Read], dedupe: Dedupe, summary: Summary, window: int) -> Iterator[_Read]:
    """Drop images this identity already has a face from (this run included)."""
    buffer: list[_Read] = []

    def flush():
        for r, new in zip(buffer, dedupe.fresh([(r.item.identity_id, r.sha256) for r in buffer])):
            if new:
                yield r
            else:
                summary.skipped += 1
        buffer.clear()

    for r in reads:
        buffer.append(r)
        if len(buffer) >= window:
            yield from flush()
    yield from flush()


def _prepare_part(part: list[_Read], mode: FaceMode, every_face: bool = False, thumb_side: int = 0) -> list:
    """One chunk's Prepared per image (in a worker or here); every_face: a list of every face per image."""
    data = [r.data for r in part]
    if every_face:
        return prepare.every_face_many(data, mode, thumb_side=thumb_side)
    boxes = [r.item.box for r in part]
    return prepare.prepare_many(data, mode, keep_jpeg=True, boxes=boxes if any(boxes) else None)


def _prepared(reads: Iterator[_Read], mode: FaceMode, pool, window: int, chunk: int = 16, run=None):
    """(read, Prepared) in order. Images go in chunks of `chunk`, each detected in one batched
    MTCNN pass; with a pool, up to `window` images are prepared ahead in worker processes.
    Rather than wait idle for the next chunk, this process prepares the last queued one itself.
    run: what prepares a chunk, a picklable function of a list of reads [_prepare_part for mode]."""
    def chunks():
        part: list[_Read] = []
        for r in reads:
            part.append(r)
            if len(part) == chunk:
                yield part
                part = []
        if part:
            yield part

    run = run or functools.partial(_prepare_part, mode=mode)
    if pool is None:
        for part in chunks():
            yield from zip(part, run(part))
        return
    pending: deque = deque()

    def first():
        done, fut = pending.popleft()
        while not fut.done() and _steal(pending, run):
            pass
        return zip(done, fut.result())

    for part in chunks():
        pending.append((part, pool.submit(run, part)))
        if len(pending) * chunk >= window:
            yield from first()
    while pending:
        yield from first()


def _steal(pending: deque, run) -> bool:
    """Prepare here the last chunk no worker has taken yet; False when there is none."""
    for i in range(len(pending) - 1, -1, -1):
        part, fut = pending[i]
        if fut.done():
            continue
        if not fut.cancel():   # a worker has it, and every chunk before it
            return False
        local: concurrent.futures.Future = concurrent.futures.Future()
        local.set_result(run(part))
        pending[i] = (part, local)
        return True
    return False


def start_workers(config: EmbedderConfig, workers: int):
    """The decode/detect processes, started now: each loads and traces MTCNN (seconds) while
    the caller loads the embedding model. None when workers is 0. The caller shuts it down."""
    if workers <= 0:
        return None
    pool = _pool(config, workers)
    for _ in range(workers):
        pool.submit(prepare.warm)
    return pool


def _pool(config: EmbedderConfig, workers: int):
    return concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=prepare.init,
        initargs=(config, WORKER_TF_THREADS))


def add_local(items: list[Item], gallery: Gallery, embedder: Embedder, mode: FaceMode, *, workers: int,
              batch_size: int, progress: bool = True, snapshot_every: int = 10_000, pool=None) -> Summary:
    """Enrol items through the service's enrolment pipeline, a batch per transaction.

    The index is snapshotted every `snapshot_every` changes, so a crash after a long run
    replays at most that many at the next open, not the whole run. `pool`: workers from
    start_workers (with this embedder's config), else `workers` processes start at the first photos."""
    summary = Summary(images=len(items))
    start = time.perf_counter()
    bar = tqdm(total=len(items), unit="img", disable=not progress, dynamic_ncols=True, desc="indexing")
    own = pool is None and workers > 0
    if own:
        pool = _pool(embedder.config, workers)
    prepare.init(embedder.config)
    batch: list[Candidate] = []

    def write():
        if not batch:
            return
        vectors = embedder.embed_crops([c.prepared.crop for c in batch])
        results = gallery.add_batch(enrolments(batch, vectors), model_id=embedder.model_id)
        summary.added += sum(len(r.face_ids) for r in results)
        summary.skipped += sum(len(r.duplicates) for r in results)   # committed by a racing writer meanwhile
        summary.identities_created += sum(r.created for r in results)
        if gallery.changes_since_snapshot >= snapshot_every:
            try:
                gallery.snapshot()
            except Exception:   # the faces are committed; the next snapshot (or close) catches up
                log.exception("snapshot failed; carrying on")
        bar.update(len(batch))
        bar.set_postfix(added=summary.added, skipped=summary.skipped, rejected=len(summary.rejected), refresh=False)
        batch.clear()

    try:
        reads = _new_only(_read(items, summary), Dedupe(gallery), summary, window=4 * batch_size)
        for r, p in _prepared(reads, mode, pool, window=2 * batch_size):
            if p.crop is None:
                summary.reject(r.item, p.reason)
                bar.update(1)
                continue
            batch.append(Candidate(r.item.identity_id, r.sha256, p, str(r.item.path), r.item.display_name))
            if len(batch) >= batch_size:
                write()
        write()
        bar.update(bar.total - bar.n)  # the skipped ones
    finally:
        bar.close()
        if own:
            pool.shutdown(cancel_futures=True)
    summary.seconds = time.perf_counter() - start
    return summary


def add_remote(items: list[Item], client, mode: FaceMode, *, batch_size: int, max_bytes: int = 6 << 20,
               max_pixels: int = DEFAULT_MAX_REQUEST_PIXELS, progress: bool = True) -> Summary:
    """--server: Enroll calls of up to batch_size images per identity, each kept under max_bytes
    (the server takes 8 MiB messages) and max_pixels (its FACESEARCH_MAX_REQUEST_PIXELS) before an
    image is added to it. An image over either limit alone is rejected, and the run goes on."""
    summary = Summary(images=len(items))
    start = time.perf_counter()
    bar = tqdm(total=len(items), unit="img", disable=not progress, dynamic_ncols=True, desc="enrolling")
    groups: dict[str, list[Item]] = {}
    for item in items:
        groups.setdefault(item.identity_id, []).append(item)
    try:
        for identity_id, group in groups.items():
            chunk: list[tuple[Item, bytes]] = []
            size = pixels = 0
            for r in _read(group, summary):
                n, px = len(r.data), header_pixels(r.data)
                if n > max_bytes or px > max_pixels:
                    summary.reject(r.item, f"{n:,} bytes, {px:,} pixels: over what one Enroll may carry "
                                           f"({max_bytes:,} bytes, {max_pixels:,} pixels); downscale it")
                    bar.update(1)
                    continue
                if chunk and (len(chunk) >= batch_size or size + n > max_bytes or pixels + px > max_pixels):
                    _enroll(client, identity_id, chunk, mode, summary)
                    bar.update(len(chunk))
                    chunk, size, pixels = [], 0, 0
                chunk.append((r.item, r.data))
                size, pixels = size + n, pixels + px
            if chunk:
                _enroll(client, identity_id, chunk, mode, summary)
                bar.update(len(chunk))
    finally:
        bar.close()
    summary.seconds = time.perf_counter() - start
    return summary


def _enroll(client, identity_id: str, chunk, mode: FaceMode, summary: Summary) -> None:
    """One Enroll; a server with smaller limits (RESOURCE_EXHAUSTED) gets the chunk in halves, and
    an image it refuses alone is rejected with the server's reason."""
    name = next((i.display_name for i, _ in chunk if i.display_name), "")
    try:
        r = client.enroll(identity_id, [d for _, d in chunk], display_name=name, face_mode=int(mode))
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
            raise
        if len(chunk) == 1:
            summary.reject(chunk[0][0], f"the server refused it: {exc.details()}")
            return
        half = len(chunk) // 2
        _enroll(client, identity_id, chunk[:half], mode, summary)
        _enroll(client, identity_id, chunk[half:], mode, summary)
        return
    summary.added += len(r.face_ids)
    summary.skipped += len(r.duplicates)
    summary.identities_created += int(r.created)
    for x in r.rejected:
        summary.reject(chunk[x.index][0], x.reason)


def write_report(summary: Summary, path: Path | None) -> dict:
    import json

    report = summary.as_dict()
    if path:
        Path(path).write_text(json.dumps(report, indent=2) + "\n")
    return report
