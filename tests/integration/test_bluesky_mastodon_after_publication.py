"""Bluesky and Mastodon after publication: edit, reply and delete through the real atproto and
Mastodon.py clients to the local fakes on 127.0.0.1, whose own records (edits, replies,
deletions, a status's current text) say what happened."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.channels.bluesky import BlueskyChannel
from bot.channels.mastodon import MastodonChannel
from bot.config import BlueskyChannelConfig, MastodonChannelConfig
from bot.errors import PermanentError, PostGone, TransientError
from bot.model import Published
from bot.testing import LOCAL_FAKES
from bot.testing.bluesky_server import FakeBluesky
from bot.testing.faults import Fault
from bot.testing.mastodon_server import FakeMastodon
from bot.testing.x_server import tiny_png
from tests.integration.after_publication import (
    CORRECTED,
    FIRST,
    LINK,
    NOTICE,
    deleted_then_gone,
    gone_once_deleted,
    post,
    published,
    replied_once_after_a_lost_answer,
)
from tests.integration.test_bluesky_mastodon_outcomes import PASSWORD, TOKEN, bsky, masto

__all__ = ["bsky", "masto"]  # the fakes' fixtures, imported so that they serve here too

pytestmark = pytest.mark.usefixtures("loopback_only")


def strong_refs(record: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """A reply record's root and parent as (uri, cid)."""
    reply = record["reply"]
    return {part: (reply[part]["uri"], reply[part]["cid"]) for part in ("root", "parent")}


@pytest.fixture
async def bluesky(bsky: FakeBluesky) -> AsyncIterator[BlueskyChannel]:
    config = BlueskyChannelConfig.model_validate(
        {
            "kind": "bluesky",
            "name": "bluesky",
            "template": "bluesky.txt.j2",
            "handle": bsky.handle,
            "app_password": PASSWORD,
            "pds_url": bsky.url,
            "timeout": "2s",
        }
    )
    async with BlueskyChannel.from_config(config, image_policy=LOCAL_FAKES) as channel:
        yield channel


@pytest.fixture
async def mastodon(masto: FakeMastodon) -> AsyncIterator[MastodonChannel]:
    config = MastodonChannelConfig.model_validate(
        {
            "kind": "mastodon",
            "name": "mastodon",
            "template": "mastodon.txt.j2",
            "instance_url": masto.url,
            "access_token": TOKEN,
            "media": True,
            "timeout": "2s",
        }
    )
    async with MastodonChannel.from_config(config, image_policy=LOCAL_FAKES) as channel:
        yield channel


# ------------------------------------------------------------------------------------ Mastodon


async def test_mastodon_edits_in_place_and_keeps_the_image(
    masto: FakeMastodon, mastodon: MastodonChannel
) -> None:
    """PUT /api/v1/statuses/:id changes the same status's text; its image stays attached."""
    image = masto.serve_image("photo.png", tiny_png())
    sent = await mastodon.send(post(FIRST, "mastodon", image=image))
    receipt = await mastodon.edit(published(sent, "mastodon"), post(CORRECTED, "mastodon"))

    assert receipt.remote_id == sent.remote_id and receipt.url == sent.url
    (edit,) = masto.edits
    assert (edit.status_id, edit.before, edit.after) == (sent.remote_id, FIRST, CORRECTED)
    status = masto.status(sent.remote_id)
    assert status is not None and status.text == CORRECTED and status.edited_at is not None
    assert len(status.media_ids) == 1 and status.language == "zh-TW"
    assert len(masto.statuses) == 1


async def test_mastodon_edit_over_the_limit_is_refused_with_the_reason(
    masto: FakeMastodon, mastodon: MastodonChannel
) -> None:
    """An edit past the instance's character limit is a 422, refused for good, text unchanged."""
    sent = await mastodon.send(post(FIRST, "mastodon"))
    with pytest.raises(PermanentError, match=r"422.*character limit of 500") as caught:
        await mastodon.edit(published(sent, "mastodon"), post("更" * 501, "mastodon"))
    assert not isinstance(caught.value, PostGone)
    assert masto.status(sent.remote_id).text == FIRST  # type: ignore[union-attr]


async def test_mastodon_edit_of_a_deleted_status_is_post_gone(
    masto: FakeMastodon, mastodon: MastodonChannel
) -> None:
    """Editing a status deleted since answers 404: PostGone, and no edit is recorded."""
    gone = await gone_once_deleted(
        mastodon, lambda done: mastodon.edit(done, post(CORRECTED, "mastodon"))
    )
    assert "no longer there" in gone.reason
    assert masto.edits == []


async def test_mastodon_edit_rate_limited_waits_for_the_reset(
    masto: FakeMastodon, mastodon: MastodonChannel
) -> None:
    """A 429 on an edit is transient until the instance's X-RateLimit-Reset."""
    sent = await mastodon.send(post(FIRST, "mastodon"))
    masto.fail_next(1, Fault.rate_limited(reset_in=90), path=f"/api/v1/statuses/{sent.remote_id}")
    with pytest.raises(TransientError) as caught:
        await mastodon.edit(published(sent, "mastodon"), post(CORRECTED, "mastodon"))
    assert caught.value.retry_after is not None and 60 < caught.value.retry_after <= 91


async def test_mastodon_replies_with_a_key_of_its_own(
    masto: FakeMastodon, mastodon: MastodonChannel
) -> None:
    """A reply is a new status in_reply_to the post, under an Idempotency-Key that is not the
    post's (which would answer the original status), and a resend of it posts nothing more."""
    sent = await mastodon.send(post(FIRST, "mastodon"))
    receipt = await mastodon.reply(published(sent, "mastodon"), post(NOTICE, "mastodon"))
    again = await mastodon.reply(published(sent, "mastodon"), post(NOTICE, "mastodon"))

    (reply,) = masto.replies
    assert (reply.id, reply.in_reply_to_id, reply.text) == (
        receipt.remote_id,
        sent.remote_id,
        NOTICE,
    )
    assert again.remote_id == receipt.remote_id != sent.remote_id
    keys = [a.idempotency_key for a in masto.calls("/api/v1/statuses")]
    assert keys[1] == keys[2] != keys[0]
    assert len(masto.statuses) == 1


async def test_mastodon_reply_to_a_deleted_status_is_post_gone(
    masto: FakeMastodon, mastodon: MastodonChannel
) -> None:
    """Replying to a status deleted since answers 404: PostGone, and nothing is posted."""
    await gone_once_deleted(mastodon, lambda done: mastodon.reply(done, post(NOTICE, "mastodon")))
    assert masto.replies == []


async def test_mastodon_deletes_once_and_a_second_delete_is_post_gone(
    masto: FakeMastodon, mastodon: MastodonChannel
) -> None:
    """DELETE takes the status down; deleting again is a 404, PostGone, counted as done."""
    await deleted_then_gone(mastodon, lambda: masto.deletions)


async def test_mastodon_deletions_past_thirty_in_half_an_hour_wait(
    masto: FakeMastodon, mastodon: MastodonChannel
) -> None:
    """The 31st deletion within 30 minutes is refused with 429: transient, not lost."""
    receipts = []
    for n in range(31):
        text = f"第{n + 1}則：颱風假資訊更新🌀 {LINK}"
        receipts.append(await mastodon.send(post(text, "mastodon", key=f"newsvision-4{n:04d}")))
    for receipt in receipts[:30]:
        await mastodon.delete(published(receipt, "mastodon"))
    with pytest.raises(TransientError, match="429") as caught:
        await mastodon.delete(published(receipts[30], "mastodon"))
    assert caught.value.retry_after is not None and caught.value.retry_after > 60
    assert len(masto.deletions) == 30


# ------------------------------------------------------------------------------------- Bluesky


async def test_bluesky_reply_holds_strong_refs_and_cjk_facets(
    bsky: FakeBluesky, bluesky: BlueskyChannel
) -> None:
    """A reply's root and parent are the post's uri and cid (read with getRecord), and its
    facets' UTF-8 byte offsets still cover the tag and the shown link after Chinese text."""
    sent = await bluesky.send(post(FIRST, "bluesky"))
    receipt = await bluesky.reply(published(sent, "bluesky"), post(NOTICE, "bluesky"))

    (original,) = bsky.posts
    (reply,) = bsky.replies
    assert receipt.remote_id == reply.uri and receipt.url is not None
    refs = strong_refs(reply.record)
    assert refs == {"root": (original.uri, original.cid), "parent": (original.uri, original.cid)}
    facets = reply.facet_texts()
    assert ("tag", "#更正", "更正") in facets
    assert ("link", "news.example.tw/article/4000...", LINK) in facets
    link = next(f for f in reply.record["facets"] if "uri" in f["features"][0])
    chars = reply.text.index("news.example.tw")
    assert link["index"]["byteStart"] == len(reply.text[:chars].encode("utf-8")) != chars
    assert reply.record["embed"]["external"]["uri"] == LINK
    assert len(bsky.calls("com.atproto.repo.getRecord")) == 1


async def test_bluesky_reply_after_a_lost_answer_is_not_made_twice(
    bsky: FakeBluesky, bluesky: BlueskyChannel
) -> None:
    """A reply whose createRecord answer was lost is found among the account's records
    (listRecords) on the next attempt and answered as the receipt: one reply."""
    await replied_once_after_a_lost_answer(
        bluesky,
        lambda: bsky.fail_next(1, Fault.slow(3.0), method="com.atproto.repo.createRecord"),
        lambda: [r.uri for r in bsky.replies],
    )
    assert len(bsky.calls("com.atproto.repo.createRecord")) == 2  # the post, the one reply


async def test_bluesky_reply_to_a_reply_keeps_the_thread_root(
    bsky: FakeBluesky, bluesky: BlueskyChannel
) -> None:
    """A reply under a reply names the thread's root as root and the reply as parent."""
    sent = await bluesky.send(post(FIRST, "bluesky"))
    first = await bluesky.reply(published(sent, "bluesky"), post(NOTICE, "bluesky"))
    await bluesky.reply(published(first, "bluesky"), post(f"再次更正 {LINK}", "bluesky"))

    root, parent = bsky.posts[0], bsky.replies[0]
    refs = strong_refs(bsky.replies[1].record)
    assert refs == {"root": (root.uri, root.cid), "parent": (parent.uri, parent.cid)}


async def test_bluesky_reply_to_a_deleted_post_is_post_gone(
    bsky: FakeBluesky, bluesky: BlueskyChannel
) -> None:
    """Replying under a post deleted since: getRecord finds no record, PostGone, no reply."""
    gone = await gone_once_deleted(
        bluesky, lambda done: bluesky.reply(done, post(NOTICE, "bluesky"))
    )
    assert "RecordNotFound" in gone.reason
    assert bsky.replies == []


async def test_bluesky_deletes_by_rkey_and_a_second_delete_is_post_gone(
    bsky: FakeBluesky, bluesky: BlueskyChannel
) -> None:
    """deleteRecord of the post's rkey takes it down; the PDS answers a second one with no
    commit, which is PostGone."""
    await deleted_then_gone(bluesky, lambda: bsky.deletions)
    assert [p.deleted_at is not None for p in bsky.posts] == [True]


async def test_bluesky_delete_rate_limited_waits_for_the_reset(
    bsky: FakeBluesky, bluesky: BlueskyChannel
) -> None:
    """A 429 on deleteRecord is transient until the PDS's ratelimit-reset; nothing deleted."""
    sent = await bluesky.send(post(FIRST, "bluesky"))
    bsky.fail_next(1, Fault.rate_limited(reset_in=120), method="com.atproto.repo.deleteRecord")
    with pytest.raises(TransientError) as caught:
        await bluesky.delete(published(sent, "bluesky"))
    assert caught.value.retry_after is not None and 60 < caught.value.retry_after <= 120
    assert bsky.deletions == []


async def test_bluesky_reply_to_a_post_it_never_made_is_post_gone(
    bsky: FakeBluesky, bluesky: BlueskyChannel
) -> None:
    """A receipt naming a record the repo never had is PostGone too."""
    missing = Published(
        "bluesky",
        f"at://{bsky.did}/app.bsky.feed.post/3lnothere000",
        None,
        datetime.now(UTC),
        FIRST,
    )
    with pytest.raises(PostGone):
        await bluesky.reply(missing, post(NOTICE, "bluesky"))
