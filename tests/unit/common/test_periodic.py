"""The periodic jobs' pure parts: when a failing job runs next."""

import asyncio

from services.common import periodic
from services.common.periodic import Job


def test_backoff_grows_with_failures_up_to_the_cap() -> None:
    job = Job("j", 1.0, lambda: asyncio.sleep(0), max_backoff=8.0)
    assert 0.8 <= periodic.next_delay(job, 0) <= 1.2
    assert 3.2 <= periodic.next_delay(job, 2) <= 4.8
    assert 6.4 <= periodic.next_delay(job, 10) <= 9.6


async def test_passes_wait_for_that_many_more() -> None:
    passes = periodic.Passes()
    await passes.finished()
    waiting = asyncio.ensure_future(passes.more(2))
    await asyncio.sleep(0)  # it counts from here
    await passes.finished()
    await asyncio.sleep(0)
    assert not waiting.done()  # one more is not two
    await passes.finished()
    await asyncio.wait_for(waiting, 1)
    assert passes.count == 3
