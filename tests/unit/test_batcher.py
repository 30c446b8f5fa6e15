"""MicroBatcher: one bad request never fails another, a full queue says so, a dead worker never hangs anyone."""

from __future__ import annotations

import asyncio
import threading

import pytest

from facesearch.service.batcher import BatcherStopped, MicroBatcher, QueueFull


class Fatal(BaseException):
    """Escapes `except Exception`, as a bug in a worker could."""


def doubled(items):
    if any(i == "poison" for i in items):
        raise ValueError("poison in the batch")
    return [i * 2 for i in items]


async def _started(run, **kwargs) -> MicroBatcher:
    b = MicroBatcher(run, max_batch=64, max_wait_s=0.05, name="t", **kwargs)
    b.start()
    return b


def test_a_poisoned_request_fails_alone():
    sizes = []

    async def main():
        b = await _started(doubled, on_batch=sizes.append)
        results = await asyncio.gather(b.submit([1, 2]), b.submit(["poison"]), b.submit([3]),
                                       return_exceptions=True)
        await b.stop()
        return results

    ok1, bad, ok2 = asyncio.run(main())
    assert sizes[0] == 4, "the three requests were first tried as one batch"
    assert ok1 == [2, 4] and ok2 == [6]
    assert isinstance(bad, ValueError) and "poison" in str(bad)


def test_a_failing_hook_fails_its_batch_and_the_worker_goes_on():
    calls = []

    def hook(n):
        calls.append(n)
        if len(calls) == 1:
            raise RuntimeError("metrics broke")

    async def main():
        b = await _started(doubled, on_batch=hook)
        with pytest.raises(RuntimeError, match="metrics broke"):
            await b.submit([1])
        later = await asyncio.wait_for(b.submit([5]), 5)
        await b.stop()
        return later

    assert asyncio.run(main()) == [10]


def test_a_dead_worker_fails_waiters_and_later_calls_and_says_so():
    stopped = []

    def fatal(items):
        raise Fatal()

    async def main():
        b = await _started(fatal, on_stopped=stopped.append)
        with pytest.raises((Fatal, BatcherStopped)):
            await asyncio.wait_for(b.submit([1]), 5)
        await asyncio.sleep(0)
        assert not b.running
        with pytest.raises(BatcherStopped, match="not running"):
            await asyncio.wait_for(b.submit([2]), 5)
        await b.stop()

    asyncio.run(main())
    assert len(stopped) == 1 and isinstance(stopped[0], Fatal)


def test_a_full_queue_refuses_at_once():
    gate = threading.Event()

    def slow(items):
        gate.wait(5)
        return items

    async def main():
        b = await _started(slow, max_queued=3)
        first = asyncio.ensure_future(b.submit([1]))      # taken by the worker, blocked in slow()
        await asyncio.sleep(0.2)
        queued = asyncio.ensure_future(b.submit([2, 3, 4]))
        await asyncio.sleep(0)
        with pytest.raises(QueueFull, match="the limit is 3"):
            await b.submit([5])
        gate.set()
        out = await asyncio.gather(first, queued)
        await b.stop()
        return out

    assert asyncio.run(main()) == [[1], [2, 3, 4]]
