"""Micro-batching: faces (and searches) from concurrent requests run together.

A request puts its items on the queue and awaits a future. One worker takes
up to `max_batch` items, waiting at most `max_wait` for more once the first
arrives, runs the batch in a dedicated thread, and resolves each future with
its own slice. The model sees large batches under load and no extra latency
when idle beyond max_wait. With `lanes` > 1, up to that many batches run at once, each
in its own thread: the next batch is taken as soon as a lane is free.

One request never fails another: when a batch of several requests raises, it is split in
halves and each half run again (recursively), so only the guilty one gets the error, after
about 2·log2(N) runs rather than N. An outage is not a guilty request: when the error is one
of `outages` (the index or database unreachable), every waiter gets it at once, so a batch
costs one timeout, not one per request. Requests cancelled meanwhile are never run again. The
queue is bounded (`max_queued` items): beyond it, submit raises QueueFull at once
instead of letting memory and latency grow. If the worker ever stops, every
waiter gets an error, later submits fail fast, and `on_stopped` is called so that
health can go NOT_SERVING.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

log = logging.getLogger("facesearch.service")


class QueueFull(Exception):
    """More items are waiting than the batcher accepts."""


class BatcherStopped(Exception):
    """The batcher's worker is not running."""


@dataclass(eq=False)   # compared by identity
class _Job:
    items: Sequence[Any]
    future: asyncio.Future[Any]


class MicroBatcher:
    def __init__(self, run: Callable[[list[Any]], Sequence[Any] | np.ndarray], *, max_batch: int, max_wait_s: float, name: str,
                 max_queued: int = 4096, on_batch: Callable[[int], None] | None = None,
                 on_stopped: Callable[[BaseException | None], None] | None = None,
                 outages: tuple[type[BaseException], ...] = (), lanes: int = 1) -> None:
        if lanes < 1:
            raise ValueError(f"lanes must be at least 1, not {lanes}")
        self._run = run
        self.outages = outages
        self.name = name
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_queued = max_queued
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._queued = 0    # items waiting, not jobs
        self.lanes = lanes
        self._executor = concurrent.futures.ThreadPoolExecutor(lanes, thread_name_prefix=name)
        self._task: asyncio.Task[None] | None = None
        self._serving: set[asyncio.Task[None]] = set()   # batches running in the lanes
        self._lane_error: BaseException | None = None
        self._on_batch = on_batch
        self._on_stopped = on_stopped
        self._stopping = False
        self._current: list[_Job] = []   # taken by the worker, not yet settled (every lane's)

    @property
    def depth(self) -> int:
        return self._queued

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._worker())
        self._task.add_done_callback(self._worker_ended)

    async def stop(self) -> None:
        self._stopping = True
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except BaseException:  # noqa: B036 - it was cancelled, or already reported by _worker_ended
                pass
        self._executor.shutdown(wait=True)

    async def submit(self, items: Sequence[Any]) -> list[Any]:
        """Run items through the batch function; returns their results in order."""
        if len(items) == 0:
            return []
        if not self.running:
            raise BatcherStopped(f"the {self.name} batcher is not running")
        if self._queued + len(items) > self.max_queued:
            raise QueueFull(f"{self._queued} {self.name} items are already waiting (the limit is "
                            f"{self.max_queued}); retry with backoff")
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._queued += len(items)
        self._queue.put_nowait(_Job(items, future))
        return await future

    def _worker_ended(self, task: asyncio.Task[None]) -> None:
        error = self._lane_error or (None if task.cancelled() else task.exception())
        waiting = list(self._current)
        while not self._queue.empty():
            waiting.append(self._queue.get_nowait())
        for job in waiting:  # nobody waits forever
            if not job.future.done():
                job.future.set_exception(BatcherStopped(f"the {self.name} batcher stopped"))
        if not self._stopping:
            log.critical("the %s batcher stopped: %r", self.name, error)
            if self._on_stopped:
                self._on_stopped(error)

    async def _take(self) -> list[_Job]:
        loop = asyncio.get_running_loop()
        jobs = [await self._queue.get()]
        size = len(jobs[0].items)
        deadline = loop.time() + self.max_wait_s
        while size < self.max_batch:
            timeout = deadline - loop.time()
            if timeout <= 0:
                break
            try:
                job = await asyncio.wait_for(self._queue.get(), timeout)
            except asyncio.TimeoutError:
                break
            jobs.append(job)
            size += len(job.items)
        self._queued -= size
        return [j for j in jobs if not j.future.cancelled()]

    async def _worker(self) -> None:
        free = asyncio.Semaphore(self.lanes)
        try:
            while True:
                await free.acquire()
                jobs = await self._take()
                if not jobs:
                    free.release()
                    continue
                self._current.extend(jobs)
                task = asyncio.get_running_loop().create_task(self._lane(jobs, free))
                self._serving.add(task)
                task.add_done_callback(self._lane_ended)
        finally:   # stopped or failed: the lanes' batches end with it (their waiters are failed)
            for task in list(self._serving):
                task.cancel()

    def _lane_ended(self, task: asyncio.Task[None]) -> None:
        """A lane that escaped its own handling (a BaseException, as a bug could) stops the batcher."""
        self._serving.discard(task)
        if not task.cancelled() and task.exception() is not None and self._task is not None:
            self._lane_error = task.exception()
            self._task.cancel()

    async def _lane(self, jobs: list[_Job], free: asyncio.Semaphore) -> None:
        try:
            await self._serve(jobs)
        except Exception as exc:  # a bug in the plumbing: fail these waiters, keep serving the rest
            log.exception("%s batcher: unexpected error", self.name)
            for j in jobs:
                if not j.future.done():
                    j.future.set_exception(exc)
        finally:
            for j in jobs:
                if not j.future.done():   # the batcher was stopped meanwhile
                    j.future.set_exception(BatcherStopped(f"the {self.name} batcher stopped"))
                self._current.remove(j)
            free.release()

    async def _serve(self, jobs: list[_Job]) -> None:
        loop = asyncio.get_running_loop()
        flat = [item for j in jobs for item in j.items]
        if self._on_batch:
            self._on_batch(len(flat))
        await self._attempt(jobs, flat)

    async def _attempt(self, jobs: list[_Job], flat: list[Any] | None = None) -> None:
        """Run jobs as one batch; on failure split them (see the module's docstring)."""
        loop = asyncio.get_running_loop()
        flat = [item for j in jobs for item in j.items] if flat is None else flat
        try:
            results = await loop.run_in_executor(self._executor, self._run, flat)
        except Exception as exc:
            live = [j for j in jobs if not j.future.done()]   # cancelled ones are not run again
            if len(jobs) == 1 or isinstance(exc, self.outages):
                for j in live:
                    _settle(j, exc=exc)
                return
            if len(live) == 1:
                await self._attempt(live)
                return
            half = len(live) // 2
            await self._attempt(live[:half])
            await self._attempt(live[half:])
            return
        offset = 0
        for j in jobs:
            _settle(j, results[offset:offset + len(j.items)])
            offset += len(j.items)


def _settle(job: _Job, part: Sequence[Any] | np.ndarray | None = None, exc: BaseException | None = None) -> None:
    if job.future.done():
        return
    if exc is not None:
        job.future.set_exception(exc)
    else:
        job.future.set_result(part if isinstance(part, np.ndarray) else list(part or ()))
