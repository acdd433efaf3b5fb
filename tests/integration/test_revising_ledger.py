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
from bot.ledger import Mark
from bot.model import Action, DeliveryState, Post, Published, Receipt
from bot.testing.memory import MemoryChannel
from tests.revisions import World, action_rows, article, delivery_row

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


# ------------------------------------------------------- a takedown between the claim and the send


async def test_a_takedown_after_the_claim_stops_the_send(world: World) -> None:
    """The article withdrawn after its post was claimed, before it was marked in flight: the
    marking statement refuses (the claim still held, the reason the retraction), and the
    delete the takedown queued for the claimed post is skipped, never sent."""
    world.source.articles = [article(1)]
    await world.pipeline.poll_all()
    claim = world.ledger.claim(world.clock(), holder="test:1", channel="telegram", pace=None)
    [delivery] = claim.deliveries
    report = await world.pipeline.withdraw("newsvision", article(1).key, reason="誤植")
    assert report is not None and report.queued == 1  # a sending post may have gone out
    assert world.ledger.mark_in_flight(delivery.id, now=world.clock(), holder="test:1") is (
        Mark.RETRACTED
    )
    assert world.ledger.mark_in_flight(delivery.id, now=world.clock(), holder="other:1") is (
        Mark.LOST
    )
    assert delivery_row(world.ledger, delivery.id)["in_flight_at"] is None


async def test_a_post_claimed_before_its_takedown_is_skipped_not_sent(world: World) -> None:
    """Two posts claimed in one batch, both articles withdrawn right after the claim: neither
    goes out (the first refused by mark_in_flight, the second by the mark that rides on the
    first's finish), both recorded skipped as retracted, their deletes skipped."""
    world.source.articles = [article(1), article(2)]
    await world.pipeline.poll_all()
    claim = world.ledger.claim

    def claim_then_withdraw(*args: object, **kwargs: object) -> object:
        claimed = claim(*args, **kwargs)  # type: ignore[arg-type]
        if claimed.deliveries:  # each channel's claim, before any of its sends
            for n in (1, 2):
                world.pipeline._withdraw(
                    "newsvision", article(n).key, reason="撤稿", origin="webhook"
                )
        return claimed

    world.ledger.claim = claim_then_withdraw  # type: ignore[method-assign]
    await world.pipeline.deliver_due()
    assert world.telegram.posts == [] and world.x.posts == []
    rows = world.ledger.deliveries()
    assert {row.state for row in rows} == {DeliveryState.SKIPPED}
    assert all((row.reason or "").startswith("retracted:") for row in rows)
    # A channel whose claim came first had its posts in hand: refused at the mark. (The other
    # may have had its posts still queued when the takedown came, and skipped by it.)
    assert any("withdrawn after this post was claimed" in (row.reason or "") for row in rows)
    await world.pipeline.deliver_due()
    assert world.telegram.deletes == [] and world.x.deletes == []
    # (the second channel's claim withdrew them again: its takedown superseded the first's)
    assert {row["state"] for row in action_rows(world.ledger)} <= {"skipped", "superseded"}


async def test_a_correction_claimed_before_a_takedown_is_refused_at_the_mark(world: World) -> None:
    """An edit claimed, then its article withdrawn before the edit was marked in flight: the
    marking statement refuses it, telling a retraction (the claim still held) from a lost claim."""
    await world.publish(article(1))
    world.revise(1, {"telegram": Action.EDIT}, title="【更正】颱風警報第 1 報")
    [edit] = world.ledger.claim_actions(
        world.clock(), holder="test:1", channel="telegram", pace=None
    ).actions
    assert edit.action is Action.EDIT
    world.revise(1, {"telegram": Action.DELETE}, retract=True)
    now = world.clock()
    assert world.ledger.mark_action_in_flight(edit.id, now=now, holder="test:1") is Mark.RETRACTED
    assert world.ledger.mark_action_in_flight(edit.id, now=now, holder="other:1") is Mark.LOST


async def test_an_edit_of_an_article_withdrawn_after_its_claim_never_reaches_the_platform(
    world: World,
) -> None:
    """The pipeline's reviser holding a claimed edit when the article is withdrawn: the edit is
    recorded skipped as retracted, the platform sees no edit, and the takedown deletes the post."""
    await world.publish(article(1))
    world.revise(1, {"telegram": Action.EDIT}, title="【更正】颱風警報第 1 報")
    claim = world.ledger.claim_actions

    def claim_then_withdraw(*args: object, **kwargs: object) -> object:
        claimed = claim(*args, **kwargs)  # type: ignore[arg-type]
        if any(a.action is Action.EDIT for a in claimed.actions):
            world.pipeline._withdraw("newsvision", article(1).key, reason="撤稿", origin="webhook")
        return claimed

    world.ledger.claim_actions = claim_then_withdraw  # type: ignore[method-assign]
    await world.pipeline.deliver_due()
    world.ledger.claim_actions = claim  # type: ignore[method-assign]
    await world.pipeline.deliver_due()
    assert world.telegram.edits == []
    assert len(world.telegram.deletes) == 1
    rows = {(r["action"], r["state"]): r["reason"] for r in action_rows(world.ledger)
            if r["channel"] == "telegram"}  # fmt: skip
    assert "retracted" in str(rows[("edit", "skipped")])
    assert ("delete", "done") in rows
