"""XChannel.reply / delete / edit through tweepy against FakeX on 127.0.0.1: each success, each
refusal as X words it, and what the fake records."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from bot.channels.x import XChannel
from bot.config import XChannelConfig, load_config
from bot.errors import PermanentError, PostGone, TransientError
from bot.ledger import Ledger
from bot.model import Article, Correction, Published, Receipt, Takedown
from bot.testing.x_server import FakeX, XFault
from tests.integration.pipelines import started_pipeline
from tests.integration.test_x_channel import (
    KEYS,
    LINK,
    TEASER,
    loopback_only,  # noqa: F401 -- the autouse guard: nothing but 127.0.0.1
    make_post,
    x_config,
)

REPO = Path(__file__).resolve().parents[2]

CORRECTED = f"更正：高雄港與格丁尼亞港 12 月 5 日締結姊妹港（原誤植為 11 月）。🚢 {LINK}"
NOTICE = f"📢 更正啟事：締約日期應為 12 月 5 日，特此更正。{LINK}"


@pytest.fixture
def fake() -> Iterator[FakeX]:
    with FakeX(**KEYS) as server:
        yield server


def published(receipt: Receipt, text: str, *, ago: timedelta = timedelta()) -> Published:
    sent = (receipt.accepted_at or datetime.now(UTC)) - ago
    return Published("x", receipt.remote_id, receipt.url, sent, text)


async def posted(channel: XChannel, text: str = TEASER) -> Published:
    return published(await channel.send(make_post(text)), text)


def unknown() -> Published:
    return Published("x", "1866000000000000000", None, datetime.now(UTC), TEASER)


def test_x_defaults_are_reply_and_delete() -> None:
    """X corrects by reply and takes down by delete unless the config says otherwise."""
    assert XChannel.can_reply and XChannel.can_delete and XChannel.can_edit
    assert XChannel.default_corrections is Correction.REPLY
    assert XChannel.default_takedowns is Takedown.DELETE


# ---------------------------------------------------------------------------------------- reply


async def test_reply_is_a_post_linked_to_the_original(fake: FakeX) -> None:
    """POST /2/tweets with reply.in_reply_to_tweet_id: a new post under the original."""
    channel = XChannel.from_config(x_config(fake))
    original = await posted(channel)
    receipt = await channel.reply(original, make_post(NOTICE))
    [reply] = fake.replies
    assert reply.reply_to == original.remote_id and reply.text == NOTICE
    assert receipt.remote_id == reply.id != original.remote_id
    assert receipt.url == f"https://x.com/i/web/status/{reply.id}"
    assert len(fake.posts) == 2 and fake.edits == []


async def test_reply_to_a_deleted_post_is_post_gone(fake: FakeX) -> None:
    """X's 403 'reply to a Tweet that is deleted' becomes PostGone; nothing is posted."""
    channel = XChannel.from_config(x_config(fake))
    original = await posted(channel)
    await channel.delete(original)
    with pytest.raises(PostGone) as caught:
        await channel.reply(original, make_post(NOTICE))
    assert "You attempted to reply to a Tweet that is deleted or not visible to you." in (
        caught.value.reason
    )
    assert fake.replies == []


async def test_reply_with_text_already_posted_is_a_duplicate(fake: FakeX) -> None:
    """A reply X refuses as duplicate content says so (a lost answer's resend proved sent)."""
    channel = XChannel.from_config(x_config(fake))
    original = await posted(channel)
    await channel.reply(original, make_post(NOTICE))
    with pytest.raises(PermanentError) as caught:
        await channel.reply(original, make_post(NOTICE))
    assert caught.value.duplicate and not isinstance(caught.value, PostGone)
    assert len(fake.replies) == 1


# --------------------------------------------------------------------------------------- delete


async def test_delete_takes_the_post_down(fake: FakeX) -> None:
    """DELETE /2/tweets/:id answered deleted: true; the fake shows the post no more."""
    channel = XChannel.from_config(x_config(fake))
    original = await posted(channel)
    await channel.delete(original)
    [deletion] = fake.deletions
    assert deletion.id == original.remote_id
    assert fake.current(original.remote_id) is None
    assert [a.status for a in fake.attempts_to(f"/2/tweets/{original.remote_id}")] == [200]


async def test_deleting_a_post_that_is_gone_is_post_gone(fake: FakeX) -> None:
    """A second delete (or an unknown id) is X's 404: PostGone, the goal reached."""
    channel = XChannel.from_config(x_config(fake))
    original = await posted(channel)
    await channel.delete(original)
    with pytest.raises(PostGone, match="Could not find tweet"):
        await channel.delete(original)
    with pytest.raises(PostGone):
        await channel.delete(unknown())
    assert len(fake.deletions) == 1


async def test_a_deleted_text_can_be_posted_again(fake: FakeX) -> None:
    """Duplicate content counts only posts still up: delete and repost goes through."""
    channel = XChannel.from_config(x_config(fake))
    await channel.delete(await posted(channel))
    again = await channel.send(make_post())
    assert fake.current(again.remote_id) == TEASER and len(fake.posts) == 2


# ----------------------------------------------------------------------------------------- edit


async def test_edit_within_30_minutes_makes_a_new_version(fake: FakeX) -> None:
    """edit_options.previous_post_id: a new post id in the same chain, the new text shown."""
    channel = XChannel.from_config(x_config(fake))
    original = await posted(channel)
    receipt = await channel.edit(original, make_post(CORRECTED))
    [edit] = fake.edits
    assert (edit.previous_id, edit.original_id, edit.text) == (
        original.remote_id,
        original.remote_id,
        CORRECTED,
    )
    assert receipt.remote_id == edit.id != original.remote_id
    assert receipt.url == f"https://x.com/i/web/status/{edit.id}"
    assert fake.current(original.remote_id) == CORRECTED == fake.current(edit.id)
    assert len(fake.posts) == 1


async def test_only_the_latest_version_can_be_edited(fake: FakeX) -> None:
    """A second edit must name the version the first made; the original's id is refused."""
    channel = XChannel.from_config(x_config(fake))
    original = await posted(channel)
    first = await channel.edit(original, make_post(CORRECTED))
    with pytest.raises(PermanentError, match="latest version"):
        await channel.edit(original, make_post(f"二次更正：{CORRECTED}"))
    await channel.edit(published(first, CORRECTED), make_post(f"二次更正：{CORRECTED}"))
    assert len(fake.edits) == 2


async def test_a_sixth_edit_is_refused(fake: FakeX) -> None:
    """X allows five edits of a post; the sixth is refused with X's reason."""
    channel = XChannel.from_config(x_config(fake))
    latest = await posted(channel)
    for n in range(1, 6):
        text = f"第 {n} 次更正：{CORRECTED}"
        latest = published(await channel.edit(latest, make_post(text)), text)
    with pytest.raises(PermanentError, match="at most 5 times"):
        await channel.edit(latest, make_post(f"第 6 次更正：{CORRECTED}"))
    assert len(fake.edits) == 5


async def test_an_edit_past_30_minutes_is_refused_without_a_request(fake: FakeX) -> None:
    """Past X's window the channel refuses itself ('too old to edit'): no paid request."""
    channel = XChannel.from_config(x_config(fake))
    original = await posted(channel)
    late = published(
        Receipt(original.remote_id, original.url, original.sent_at),
        TEASER,
        ago=timedelta(minutes=31),
    )
    requests_before = len(fake.attempts_to("/2/tweets"))
    with pytest.raises(PermanentError) as caught:
        await channel.edit(late, make_post(CORRECTED))
    assert caught.value.reason.startswith("too old to edit")
    assert "30 minutes" in caught.value.reason and "corrections: reply" in caught.value.reason
    assert len(fake.attempts_to("/2/tweets")) == requests_before and fake.edits == []


async def test_x_refusing_a_late_edit_is_permanent_with_its_reason(fake: FakeX) -> None:
    """When X itself says the window is over (clocks differ), its words are the reason."""
    channel = XChannel.from_config(x_config(fake))
    original = await posted(channel)
    fake.age(minutes=31)
    with pytest.raises(PermanentError, match="within 30 minutes") as caught:
        await channel.edit(original, make_post(CORRECTED))
    assert not isinstance(caught.value, PostGone)
    assert fake.edits == [] and fake.current(original.remote_id) == TEASER


async def test_editing_a_deleted_post_is_post_gone(fake: FakeX) -> None:
    """An edit of a post taken down is X's 404: PostGone."""
    channel = XChannel.from_config(x_config(fake))
    original = await posted(channel)
    await channel.delete(original)
    with pytest.raises(PostGone):
        await channel.edit(original, make_post(CORRECTED))


async def test_deleting_any_version_takes_the_whole_chain_down(fake: FakeX) -> None:
    """Delete by the original id after an edit: every version is gone."""
    channel = XChannel.from_config(x_config(fake))
    original = await posted(channel)
    edited = await channel.edit(original, make_post(CORRECTED))
    await channel.delete(original)
    assert fake.current(edited.remote_id) is None and fake.current(original.remote_id) is None


# ------------------------------------------------------------------------------------- failures


@pytest.mark.parametrize("action", ["reply", "delete", "edit"])
async def test_rate_limit_is_transient_until_xs_reset(fake: FakeX, action: str) -> None:
    """429 with x-rate-limit-reset on a reply, a delete or an edit waits until the reset."""
    channel = XChannel.from_config(x_config(fake))
    original = await posted(channel)
    fake.fail_next(1, XFault.rate_limited(reset_in=90))
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "reply": lambda: channel.reply(original, make_post(NOTICE)),
        "delete": lambda: channel.delete(original),
        "edit": lambda: channel.edit(original, make_post(CORRECTED)),
    }
    with pytest.raises(TransientError) as caught:
        await calls[action]()
    assert caught.value.retry_after is not None and 60 <= caught.value.retry_after <= 91
    assert fake.replies == [] and fake.deletions == [] and fake.edits == []


async def test_a_reply_answered_too_late_may_have_been_posted(fake: FakeX) -> None:
    """A reply whose answer times out is transient and maybe sent: the fake posted it."""
    channel = XChannel.from_config(x_config(fake, timeout="1s"))
    original = await posted(channel)
    fake.fail_next(1, XFault.slow(2.0), path="/2/tweets")
    with pytest.raises(TransientError) as caught:
        await channel.reply(original, make_post(NOTICE))
    assert caught.value.maybe_sent
    for _ in range(50):
        if fake.replies:
            break
        await asyncio.sleep(0.1)
    assert [reply.reply_to for reply in fake.replies] == [original.remote_id]


async def test_the_fake_holds_xs_50_deletes_per_15_minutes(fake: FakeX) -> None:
    """The 51st delete within 15 minutes is a 429; the channel waits for X's reset."""
    channel = XChannel.from_config(x_config(fake))
    originals = [await posted(channel, f"第 {n} 則快訊：颱風海葵逼近 {LINK}") for n in range(51)]
    for original in originals[:50]:
        await channel.delete(original)
    with pytest.raises(TransientError) as caught:
        await channel.delete(originals[50])
    assert caught.value.retry_after is not None and 800 <= caught.value.retry_after <= 901
    assert len(fake.deletions) == 50 and fake.current(originals[50].remote_id) is not None


async def test_a_fault_queued_for_deletes_spares_posts(fake: FakeX) -> None:
    """fail_next(path='/2/tweets/:id') meets the next delete, whatever its id, and no post."""
    channel = XChannel.from_config(x_config(fake))
    fake.fail_next(1, XFault.server_error(503), path="/2/tweets/:id")
    original = await posted(channel)
    with pytest.raises(TransientError, match="503"):
        await channel.delete(original)
    await channel.delete(original)
    assert len(fake.deletions) == 1


# ------------------------------------------------- corrections through the pipeline and the ledger


async def test_two_corrections_edit_the_latest_version_then_a_takedown_deletes(
    fake: FakeX, tmp_path: Path
) -> None:
    """`corrections: edit` on X, an article corrected twice within 30 minutes: each edit
    names the version the previous one made (X refuses an edit of an old version), the
    delivery keeps the latest id, and the takedown deletes the whole chain."""
    raw = {
        "timezone": "Asia/Taipei",
        "database": f"sqlite:///{tmp_path / 'ledger.db'}",
        "templates": str(REPO / "templates"),
        "sources": {
            "newsvision": {"kind": "feed", "url": "https://news.example.tw/rss.xml", "backlog": 5}
        },
        "channels": {
            "x": {
                "kind": "x",
                **KEYS,
                "template": "x.txt.j2",
                "api_url": fake.url,
                "timeout": "3s",
                "rate": "100/s",
                "corrections": "edit",
            }
        },
    }
    path = tmp_path / "newsbot.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    config = load_config(path, environ={})
    x_settings = config.channels["x"]
    assert isinstance(x_settings, XChannelConfig)
    ledger = Ledger.open(config.database)
    story = Article(
        key="newsvision-50001",
        url="https://news.example.tw/article/50001",
        title="高雄港與格丁尼亞港 11 月 5 日締結姊妹港",
        summary_html="<p>高雄港務分公司與波蘭格丁尼亞港簽署合作備忘錄。</p>",
        published=datetime.now(UTC),
    )
    try:
        channels = {"x": XChannel.from_config(x_settings)}
        async with started_pipeline(config, ledger, channels) as (source, pipeline):
            source.articles = [story]
            await pipeline.poll("newsvision")
            await pipeline.deliver_due()
            [original] = fake.posts
            for title in (
                "高雄港與格丁尼亞港 12 月 5 日締結姊妹港",
                "高雄港與格丁尼亞港 12 月 5 日締約",
            ):
                source.articles = [dataclasses.replace(story, title=title)]
                report = await pipeline.poll("newsvision")
                assert report.revised is not None and report.revised.queued == 1
                await pipeline.deliver_due()
            first, second = fake.edits
            assert first.previous_id == original.id and second.previous_id == first.id
            assert fake.current(original.id) is not None and "12 月 5 日締約" in (
                fake.current(original.id) or ""
            )
            [row] = ledger.deliveries(channel="x")
            assert row.remote_id == second.id
            assert row.remote_url == f"https://x.com/i/web/status/{second.id}"
            await pipeline.withdraw("newsvision", story.key, reason="撤稿")
            await pipeline.deliver_due()
            [deletion] = fake.deletions
            assert deletion.id == second.id and fake.current(original.id) is None
        [stored] = ledger.find_articles(story.key)
        history = [[(a.action, a.state) for a in r.actions] for r in ledger.history(stored.id)]
        assert history == [[("edit", "done")], [("edit", "done")], [("delete", "done")]]
    finally:
        ledger.close()
