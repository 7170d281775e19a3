"""The verify lane: calls run on its threads, errors come back to the caller, the deadline is kept."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from api.db import BlockingLane, LaneUnavailable

from .harness import run_coroutine


def test_lane_runs_calls_off_the_event_loop_and_returns_their_results():
    """Every call runs on a lane thread, never the loop's, and each caller gets its own result."""
    lane = BlockingLane(threads=2, deadline_seconds=2, name="test-lane")

    async def main() -> list[tuple[int, str]]:
        return await asyncio.gather(
            *(lane.run(lambda n=n: (n * n, threading.current_thread().name)) for n in range(50))
        )

    try:
        results = run_coroutine(main())
    finally:
        lane.close()

    assert [square for square, _ in results] == [n * n for n in range(50)]
    assert all(name.startswith("test-lane-") for _, name in results)


def test_lane_hands_a_call_s_exception_to_its_caller_only():
    """An exception raised on the lane is raised in the awaiting caller; other calls in the batch still succeed."""
    lane = BlockingLane(threads=1, deadline_seconds=2, name="test-lane")

    def fail() -> None:
        raise ValueError("boom")

    async def main() -> list[object]:
        return await asyncio.gather(lane.run(fail), lane.run(lambda: "fine"), return_exceptions=True)

    try:
        failed, fine = run_coroutine(main())
    finally:
        lane.close()

    assert isinstance(failed, ValueError)
    assert fine == "fine"


def test_calls_past_the_deadline_fail_at_once_and_queued_ones_never_run():
    """Behind a stuck call, waiting callers get LaneUnavailable at the deadline and their work is skipped."""
    lane = BlockingLane(threads=1, deadline_seconds=0.2, name="test-lane")
    release = threading.Event()
    ran: list[int] = []

    async def main() -> tuple[list[object], float]:
        started = time.monotonic()
        outcomes = await asyncio.gather(
            lane.run(release.wait, 5), *(lane.run(ran.append, n) for n in range(5)), return_exceptions=True
        )
        return outcomes, time.monotonic() - started

    try:
        outcomes, elapsed = run_coroutine(main())
        release.set()
        time.sleep(0.2)
    finally:
        lane.close()

    assert all(isinstance(outcome, LaneUnavailable) for outcome in outcomes)
    assert elapsed < 1.0
    assert ran == []


def test_lane_answers_again_after_a_slow_call_ends():
    """Once the stuck call ends, the lane answers new calls again."""
    lane = BlockingLane(threads=1, deadline_seconds=0.2, name="test-lane")

    async def main() -> object:
        with pytest.raises(LaneUnavailable):
            await lane.run(time.sleep, 0.4)
        await asyncio.sleep(0.3)
        return await lane.run(lambda: "answered")

    try:
        answer = run_coroutine(main())
    finally:
        lane.close()

    assert answer == "answered"


def test_a_stuck_call_never_holds_up_another_call_s_answer():
    """With one lane thread stuck on a slow call, calls taken by the other thread answer at once."""
    lane = BlockingLane(threads=2, deadline_seconds=2, name="test-lane")
    release = threading.Event()

    async def main() -> tuple[float, list[object]]:
        stuck = asyncio.ensure_future(lane.run(release.wait, 5))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        quick = await asyncio.gather(*(lane.run(lambda n=n: n) for n in range(20)))
        elapsed = time.monotonic() - started
        release.set()
        await stuck
        return elapsed, quick

    try:
        elapsed, quick = run_coroutine(main())
    finally:
        lane.close()

    assert quick == list(range(20))
    assert elapsed < 0.5, f"quick calls waited {elapsed:.2f} s behind a stuck one"
