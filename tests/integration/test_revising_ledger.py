"""Revisions out on a real SQLite file and on PostgreSQL: corrections applied by two
instances at once reach each post exactly once, and an instance killed mid-way leaves at most
its one in-flight edit uncertain while the rest are applied once by the other."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.compose.length import TELEGRAM_MESSAGE
from bot.model import Action, Post, Published, Receipt
from bot.testing.memory import MemoryChannel
from tests.revisions import World, action_rows, article

BURST = 20


class StallingChannel(MemoryChannel):
    """A memory Telegram whose ``stall_at``-th edit never answers (its process is about to be
    killed): the edit is not applied, and the caller waits for ever."""

    def __init__(self, stall_at: int) -> None:
        super().__init__("telegram", TELEGRAM_MESSAGE)
        self.stall_at = stall_at
        self.edit_calls = 0
        self.stalled = asyncio.Event()

    async def edit(self, published: Published, post: Post) -> Receipt:
        self.edit_calls += 1
        if self.edit_calls == self.stall_at:
            self.stalled.set()
            await asyncio.Event().wait()
        return await super().edit(published, post)


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    made = World(tmp_path, database=database_url)
    yield made
    made.ledger.close()


async def burst(world: World) -> None:
    """BURST articles posted, then every one corrected (Telegram edits, X replies)."""
    await world.publish(*(article(n) for n in range(1, BURST + 1)))
    assert len(world.telegram.posts) == BURST
    for n in range(1, BURST + 1):
        world.revise(
            n,
            {"telegram": Action.EDIT, "x": Action.REPLY},
            title=f"【更正】颱風警報第 {n} 報：暴風圈半徑 250 公里",
        )


async def test_two_instances_apply_each_correction_exactly_once(world: World) -> None:
    """Two instances draining the same corrections at once: every post edited once, every
    reply posted once, none twice."""
    await burst(world)
    other = world.with_holder("test:2")
    await asyncio.gather(world.pipeline.deliver_due(), other.deliver_due())
    edited = Counter(remote_id for remote_id, _ in world.telegram.edits)
    replied = Counter(remote_id for remote_id, _ in world.x.replies)
    assert len(edited) == BURST and set(edited.values()) == {1}
    assert len(replied) == BURST and set(replied.values()) == {1}
    assert {row["state"] for row in action_rows(world.ledger)} == {"done"}


async def test_a_kill_mid_burst_leaves_one_uncertain_and_the_rest_applied_once(
    tmp_path: Path, database_url: str
) -> None:
    """An instance killed while its 5th edit is in flight: after recovery that one edit (and at
    most one reply of X, draining alongside) is uncertain, the next instance applies every
    other correction once, none twice."""
    channel = StallingChannel(stall_at=5)
    world = World(tmp_path, database=database_url, telegram=channel)
    try:
        await burst(world)
        doomed = asyncio.create_task(world.pipeline.deliver_due())
        await asyncio.wait_for(channel.stalled.wait(), timeout=30)
        doomed.cancel()  # killed: no outcome recorded, no claim given back
        with pytest.raises(asyncio.CancelledError):
            await doomed
        report = world.ledger.recover_dead(
            world.clock(), timedelta(seconds=30), also=[world.pipeline.holder]
        )
        await world.with_holder("test:2").deliver_due()
        edited = Counter(remote_id for remote_id, _ in channel.edits)
        assert len(edited) == BURST - 1 and set(edited.values()) == {1}
        replied = Counter(remote_id for remote_id, _ in world.x.replies)
        assert set(replied.values()) == {1}
        states = {
            name: Counter(
                row["state"] for row in action_rows(world.ledger) if row["channel"] == name
            )
            for name in ("telegram", "x")
        }
        assert states["telegram"] == {"done": BURST - 1, "uncertain": 1}
        # X was draining at the same time: at most its one reply in flight is uncertain.
        assert states["x"]["uncertain"] <= 1 and sum(states["x"].values()) == BURST
        assert report.actions_uncertain == 1 + states["x"]["uncertain"]
    finally:
        world.ledger.close()
