"""MicroBatcher: one bad request never fails another, a full queue says so, a dead worker never hangs anyone."""

from __future__ import annotations

import asyncio
import threading

import pytest

from facesearch.service.batcher import BatcherStopped, MicroBatcher, QueueFull


class Fatal(BaseException):
    """Escapes `except Exception`, as a bug in a worker could."""


def fatal(items):
    raise Fatal()


def _gated():
    """A run function that holds each batch until the event is set (5 s at most), and the event."""
    gate = threading.Event()

    def slow(items):
        gate.wait(5)
        return items

    return gate, slow


def doubled(items):
    if any(i == "poison" for i in items):
        raise ValueError("poison in the batch")
    return [i * 2 for i in items]


async def _started(run, **kwargs) -> MicroBatcher:
    b = MicroBatcher(run, **{"max_batch": 64, "max_wait_s": 0.05, "name": "t", **kwargs})
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


@pytest.mark.parametrize("lanes", [1, 2])   # with two, the dead lane's task stops the worker
def test_a_dead_worker_fails_waiters_and_later_calls_and_says_so(lanes):
    stopped = []

    async def main():
        b = await _started(fatal, on_stopped=stopped.append, lanes=lanes)
        with pytest.raises((Fatal, BatcherStopped)):
            await asyncio.wait_for(b.submit([1]), 5)
        for _ in range(10):
            await asyncio.sleep(0)
        assert not b.running
        with pytest.raises(BatcherStopped, match="not running"):
            await asyncio.wait_for(b.submit([2]), 5)
        await b.stop()

    asyncio.run(main())
    assert len(stopped) == 1 and isinstance(stopped[0], Fatal)


def test_a_full_queue_refuses_at_once():
    gate, slow = _gated()

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


def test_a_poisoned_request_among_many_costs_log_n_runs_not_n():
    runs = []

    def counted(items):
        runs.append(len(items))
        return doubled(items)

    async def main():
        b = await _started(counted)
        results = await asyncio.gather(*(b.submit([i]) for i in range(15)), b.submit(["poison"]),
                                       return_exceptions=True)
        await b.stop()
        return results

    *good, bad = asyncio.run(main())
    assert good == [[2 * i] for i in range(15)] and isinstance(bad, ValueError)
    assert runs[0] == 16 and len(runs) <= 1 + 2 * 4   # halves: 2·log2(16) more at most, not 16


class Down(Exception):
    """An outage: the index or database cannot be reached."""


def test_an_outage_fails_every_waiter_after_one_run_and_cancelled_jobs_never_run_again():
    runs, release = [], threading.Event()

    def unreachable(items):
        runs.append(list(items))
        release.wait(5)   # the call hangs until its timeout
        raise Down("index unreachable")

    async def main():
        b = MicroBatcher(unreachable, max_batch=64, max_wait_s=0.05, name="t", outages=(Down,))
        b.start()
        tasks = [asyncio.ensure_future(b.submit([i])) for i in range(8)]
        while not runs:
            await asyncio.sleep(0.01)
        tasks[0].cancel()
        release.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await b.stop()
        return results

    results = asyncio.run(main())
    assert len(runs) == 1 and len(runs[0]) == 8   # one batch, one timeout: not one per request
    assert isinstance(results[0], asyncio.CancelledError)
    assert all(isinstance(r, Down) for r in results[1:])


def test_when_a_batch_fails_the_cancelled_requests_are_not_run_again():
    runs, release = [], threading.Event()

    def flaky(items):
        runs.append(list(items))
        if len(runs) == 1:
            release.wait(5)
            raise ValueError("the first run failed")
        return [i * 2 for i in items]

    async def main():
        b = await _started(flaky)
        tasks = [asyncio.ensure_future(b.submit([i])) for i in range(4)]
        while not runs:
            await asyncio.sleep(0.01)
        tasks[1].cancel()
        release.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await b.stop()
        return results

    results = asyncio.run(main())
    assert results[0] == [0] and results[2:] == [[4], [6]]
    assert all(1 not in run for run in runs[1:])


def test_with_two_lanes_two_batches_run_at_once_and_each_request_gets_its_own_results():
    inside = threading.Barrier(2, timeout=5)   # broken (an error) unless two batches are inside together
    sizes = []

    def paired(items):
        sizes.append(len(items))
        if len(sizes) <= 2:
            inside.wait()
        return doubled(items)

    async def main():
        b = await _started(paired, lanes=2, max_batch=4)
        results = await asyncio.gather(*(b.submit([i]) for i in range(8)), b.submit(["poison"]),
                                       return_exceptions=True)
        await b.stop()
        return results

    *good, bad = asyncio.run(main())
    assert good == [[2 * i] for i in range(8)] and isinstance(bad, ValueError)
    assert not inside.broken and max(sizes) <= 4


def test_stopping_with_both_lanes_busy_fails_their_waiters_rather_than_hang():
    gate, slow = _gated()

    async def main():
        b = await _started(slow, lanes=2, max_batch=1)
        tasks = [asyncio.ensure_future(b.submit([i])) for i in range(3)]   # two in the lanes, one queued
        await asyncio.sleep(0.2)
        threading.Timer(0.1, gate.set).start()   # stop() waits for the lanes' threads, blocking the loop
        await b.stop()
        return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)

    assert all(isinstance(r, BatcherStopped) for r in asyncio.run(main()))


@pytest.mark.parametrize("cores, lanes, threads", [(2, 2, 1), (16, 2, 8), (3, 2, 1), (1, 4, 1), (16, 1, 0)])
def test_lanes_share_the_cores_the_process_may_use(monkeypatch, cores, lanes, threads):
    from facesearch.service.assembly import lane_threads

    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    assert lane_threads(lanes) == threads
