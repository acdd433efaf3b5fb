"""Revisions out through the pipeline, with memory channels on a real SQLite ledger: each
correction or takedown reaches each post once, in place or as the channel's policy says;
refusals are recorded with their reason and stop nothing else; the pace is the posts'."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.errors import PermanentError, TransientError
from bot.ledger import revision_actions
from bot.model import Action, DeliveryState
from tests.revisions import DEAD, World, action_rows, article, delivery_row

EDIT_X_REPLY = {"telegram": Action.EDIT, "x": Action.REPLY}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = World(tmp_path)
    yield made
    made.ledger.close()


NEW_TITLE = "【更正】立法院三讀通過《數位中介法》修正草案，罰鍰上限 2,000 萬元"


async def test_an_edit_reaches_the_post_once_and_the_ledger_keeps_the_new_text(
    world: World,
) -> None:
    """A corrected title is edited into the Telegram post once; the delivery's text becomes the
    edited text; another pass does nothing more."""
    await world.publish(article(1))
    world.revise(1, {"telegram": Action.EDIT}, title=NEW_TITLE)
    report = await world.pipeline.deliver_due()
    assert report.actions == {"done": 1}
    [(remote_id, post)] = world.telegram.edits
    assert NEW_TITLE in post.text and world.telegram.live[remote_id] == post.text
    [row] = action_rows(world.ledger)
    assert row["text"] == post.text and row["done_at"] is not None
    assert delivery_row(world.ledger, row["delivery_id"])["text"] == post.text
    await world.pipeline.deliver_due()
    assert len(world.telegram.edits) == 1


async def test_an_editors_title_override_wins(world: World) -> None:
    """``title_override`` (newsbot correct --title) is what the edited post says."""
    await world.publish(article(1))
    world.revise(1, {"telegram": Action.EDIT}, title_override="【獨家】修法過關")
    await world.pipeline.deliver_due()
    assert "【獨家】修法過關" in world.telegram.edits[0][1].text


async def test_a_reply_posts_the_correction_template_under_the_original(world: World) -> None:
    """X's policy reply: the correction_template is posted as a reply to the original post,
    which itself is left as it was."""
    await world.publish(article(1))
    original = world.x.posts[0].text
    world.revise(1, EDIT_X_REPLY, title=NEW_TITLE)
    await world.pipeline.deliver_due()
    [(parent, notice)] = world.x.replies
    assert notice.text.startswith("【更正】") and NEW_TITLE in notice.text
    assert world.x.live[parent] == original
    row = next(r for r in action_rows(world.ledger) if r["channel"] == "x")
    assert (row["state"], row["text"]) == ("done", notice.text)
    assert row["remote_id"] not in (None, parent)
    assert delivery_row(world.ledger, row["delivery_id"])["text"] == original


async def test_a_correction_that_would_not_change_the_post_is_skipped_without_a_call(
    world: World,
) -> None:
    """A revision that renders the same post: skipped "the post would not change", and no
    platform call at all (Telegram would refuse it as 'not modified')."""
    await world.publish(article(1))
    calls = world.telegram.attempts
    world.revise(1, {"telegram": Action.EDIT})
    await world.pipeline.deliver_due()
    assert world.telegram.attempts == calls
    assert world.states() == [("telegram", "edit", "skipped")]
    assert world.reason("telegram") == "the post would not change"


async def test_a_takedown_deletes_every_post_and_one_already_gone_counts_as_done(
    world: World,
) -> None:
    """A takedown deletes the posts; a post someone already deleted by hand is 'done' with
    the reason 'already gone from the platform'."""
    await world.publish(article(1))
    by_hand = next(iter(world.x.live))
    del world.x.live[by_hand]
    world.revise(1, {"telegram": Action.DELETE, "x": Action.DELETE}, retract=True)
    await world.pipeline.deliver_due()
    assert world.telegram.live == {} and len(world.telegram.deletes) == 1
    assert world.states() == [("telegram", "delete", "done"), ("x", "delete", "done")]
    assert "already gone from the platform" in world.reason("x")


async def test_a_refusal_is_recorded_with_its_reason_and_stops_nothing_else(
    world: World,
) -> None:
    """Telegram refusing one edit (too old) fails that action with the platform's reason and
    an alert; X's reply and Telegram's edit of another article still go."""
    await world.publish(article(1), article(2))
    world.telegram.fail_next(PermanentError("Bad Request: message can't be edited"))
    world.revise(1, EDIT_X_REPLY, title=NEW_TITLE)
    world.revise(2, {"telegram": Action.EDIT}, title="颱風假訊息更正：臺北市明（16）日照常上班上課")
    report = await world.pipeline.deliver_due()
    assert report.actions == {"failed": 1, "done": 2}
    assert world.reason("telegram") == "Bad Request: message can't be edited"
    assert len(world.telegram.edits) == 1 and len(world.x.replies) == 1
    assert any(kind == "correction failed" for kind, _ in world.alerts)
    await world.pipeline.deliver_due()
    assert len(world.telegram.edits) == 1  # never retried


async def test_a_transient_error_pauses_the_channel_and_retries_once_due(world: World) -> None:
    """'retry after 30' queues the edit again and pauses the channel; 30 s later it is
    applied, once."""
    await world.publish(article(1))
    world.telegram.fail_next(TransientError("Too Many Requests: retry after 30", retry_after=30))
    world.revise(1, {"telegram": Action.EDIT}, title=NEW_TITLE)
    report = await world.pipeline.deliver_due()
    assert "telegram" in report.paused_channels and world.telegram.edits == []
    assert world.states() == [("telegram", "edit", "queued")]
    world.clock.advance(seconds=10)
    await world.pipeline.deliver_due()
    assert world.telegram.edits == []
    world.clock.advance(seconds=25)
    await world.pipeline.deliver_due()
    assert len(world.telegram.edits) == 1 and world.states() == [("telegram", "edit", "done")]


async def test_an_edit_in_flight_at_a_crash_is_uncertain_and_never_applied_again(
    world: World,
) -> None:
    """An instance that died after marking an edit in flight leaves it 'uncertain'; the next
    instance does not apply it; `retry --uncertain` (retry_actions) puts it back."""
    await world.publish(article(1))
    world.revise(1, {"telegram": Action.EDIT}, title=NEW_TITLE)
    world.claimed_by_the_dead(in_flight=True)
    assert world.recovery.actions_uncertain == 1
    await world.with_holder("test:2").deliver_due()
    assert world.telegram.edits == [] and world.states() == [("telegram", "edit", "uncertain")]
    assert "newsbot retry --uncertain" in world.reason("telegram")
    moved = world.ledger.retry_actions(states=["uncertain"], now=world.clock())
    assert moved == 1
    await world.with_holder("test:2").deliver_due()
    assert len(world.telegram.edits) == 1


async def test_a_claim_never_in_flight_at_a_crash_goes_back_and_is_applied_once(
    world: World,
) -> None:
    """Claimed but not yet in flight when its instance died: back to the queue, applied by
    the next instance exactly once; the dead claim cannot finish it afterwards."""
    await world.publish(article(1))
    world.revise(1, {"telegram": Action.EDIT}, title=NEW_TITLE)
    action = world.claimed_by_the_dead(in_flight=False)
    assert world.recovery.actions_returned == 1
    await world.with_holder("test:2").deliver_due()
    assert len(world.telegram.edits) == 1
    assert not world.ledger.mark_action_in_flight(action.id, now=world.clock(), holder=DEAD)


async def test_a_delete_in_flight_at_a_crash_is_made_again_safely(world: World) -> None:
    """A delete in flight at a crash goes back to the queue (not uncertain): made again, a post
    already gone answers PostGone, which is done."""
    await world.publish(article(1))
    world.revise(1, {"telegram": Action.DELETE}, retract=True)
    world.telegram.live.clear()  # the dead instance's delete had gone through
    world.claimed_by_the_dead(in_flight=True)
    assert world.recovery.actions_returned == 1
    await world.with_holder("test:2").deliver_due()
    assert world.states() == [("telegram", "delete", "done")]
    assert "already gone" in world.reason("telegram")


async def test_edits_spend_the_channels_pace_like_posts(tmp_path: Path) -> None:
    """With min_gap 60s, an edit right after a post waits for the gap, and the next post
    waits a gap after the edit."""
    world = World(tmp_path, gap="60s")
    try:
        await world.publish(article(1))
        assert len(world.telegram.posts) == 1
        world.revise(1, {"telegram": Action.EDIT}, title=NEW_TITLE)  # a minute later...
        world.clock.advance(seconds=-30)  # ...made half a minute after the post
        report = await world.pipeline.deliver_due()
        assert world.telegram.edits == []
        assert report.next_wake is not None and report.next_wake > world.clock()
        world.clock.advance(seconds=31)
        await world.pipeline.deliver_due()
        assert len(world.telegram.edits) == 1
        world.source.articles = [article(3), article(1)]
        await world.pipeline.poll_all()
        world.clock.advance(seconds=30)
        await world.pipeline.deliver_due()
        assert len(world.telegram.posts) == 1  # the gap after the edit holds the post back
        world.clock.advance(seconds=31)
        await world.pipeline.deliver_due()
        assert len(world.telegram.posts) == 2
    finally:
        world.ledger.close()


async def test_a_queued_post_of_a_retracted_article_is_skipped(world: World) -> None:
    """An article withdrawn before its post went out: the post is skipped, 'retracted'."""
    world.source.articles = [article(1)]
    await world.pipeline.poll_all()
    world.revise(1, {}, retract=True)
    await world.pipeline.deliver_due()
    assert world.telegram.posts == [] and world.x.posts == []
    [row, *_] = world.ledger.deliveries(states=[DeliveryState.SKIPPED])
    assert row.reason is not None and row.reason.startswith("retracted")


async def test_delete_and_repost_moves_the_delivery_to_the_new_post(world: World) -> None:
    """delete_and_repost deletes the post and posts the new text; the delivery then names the
    new post, so the next correction edits that one."""
    await world.publish(article(1))
    [old] = list(world.telegram.live)
    world.revise(1, {"telegram": Action.DELETE_AND_REPOST}, title=NEW_TITLE)
    await world.pipeline.deliver_due()
    [new] = list(world.telegram.live)
    assert new != old and world.telegram.deletes == [old]
    row = action_rows(world.ledger)[0]
    delivery = delivery_row(world.ledger, row["delivery_id"])
    assert (delivery["remote_id"], delivery["text"]) == (new, world.telegram.live[new])
    world.revise(1, {"telegram": Action.EDIT}, title="第二次更正：罰鍰上限 2,500 萬元")
    await world.pipeline.deliver_due()
    assert world.telegram.edits[0][0] == new


async def test_an_action_on_a_post_that_never_went_out_is_skipped(world: World) -> None:
    """A correction of a post whose delivery failed is skipped, saying so; it is never sent."""
    world.telegram.fail_next(PermanentError("Bad Request: chat not found"))
    await world.publish(article(1))
    world.revise(1, {"telegram": Action.EDIT, "x": Action.REPLY}, title=NEW_TITLE)
    failed = world.ledger.deliveries(channel="telegram")[0].id
    # An action recorded while the post still looked published (it was being sent then).
    with world.ledger.engine.begin() as conn:
        conn.execute(
            revision_actions.insert().values(
                revision_id=1,
                delivery_id=failed,
                channel="telegram",
                action="edit",
                state="queued",
                due_at=world.clock(),
                created_at=world.clock(),
                updated_at=world.clock(),
            )
        )
    await world.pipeline.deliver_due()
    assert world.telegram.edits == []
    assert ("telegram", "edit", "skipped") in world.states()
    assert "never published" in world.reason("telegram")


async def test_a_post_has_one_action_in_hand_at_a_time(world: World) -> None:
    """While one instance holds a correction of a post, another does not take the next
    correction of that post; once the first is given back, it goes first, rendered from the
    article as it reads now, and the second then finds nothing left to change."""
    await world.publish(article(1))
    world.revise(1, {"telegram": Action.EDIT}, title=NEW_TITLE)
    other = "host:other"
    [first] = world.ledger.claim_actions(
        world.clock(), holder=other, channel="telegram", pace=None
    ).actions
    world.revise(1, {"telegram": Action.EDIT}, title="第二次更正：罰鍰上限 2,500 萬元")
    await world.pipeline.deliver_due()
    assert world.telegram.edits == []
    world.ledger.release_action(first.id, now=world.clock(), holder=other)
    await world.pipeline.deliver_due()
    assert [s for _, _, s in world.states()] == ["done", "skipped"]
    assert len(world.telegram.edits) == 1
    assert "第二次更正" in next(iter(world.telegram.live.values()))


async def test_in_quiet_hours_silent_changes_go_and_replies_wait(tmp_path: Path) -> None:
    """During X's quiet hours a takedown's delete still goes (it notifies nobody) while a
    correction reply, a new post, waits for the morning."""
    world = World(tmp_path, quiet="16:00-23:00")  # 08:00 UTC is 16:00 in Taipei
    try:
        world.clock.advance(hours=-1)  # publish before the quiet hours
        await world.publish(article(1), article(2))
        world.clock.advance(hours=1)
        world.revise(1, {"x": Action.REPLY}, title=NEW_TITLE)
        world.revise(2, {"x": Action.DELETE}, retract=True)
        report = await world.pipeline.deliver_due()
        assert world.x.replies == [] and len(world.x.deletes) == 1
        assert world.states() == [("x", "reply", "queued"), ("x", "delete", "done")]
        assert report.next_wake is not None
        world.clock.advance(hours=7)
        await world.pipeline.deliver_due()
        assert len(world.x.replies) == 1
    finally:
        world.ledger.close()
