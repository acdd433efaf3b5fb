"""Threads and Facebook Pages after publication: edit, reply and delete through the real
channels (aiohttp, Graph's error shapes) to the local fakes on 127.0.0.1, whose own records
(edits, comments, replies, deletions, a post's current text) say what happened."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.channels.facebook import FacebookChannel
from bot.channels.threads import ThreadsChannel
from bot.config import FacebookChannelConfig, ThreadsChannelConfig
from bot.errors import PermanentError, PostGone, TransientError
from bot.model import Published
from bot.testing.facebook_server import FakeFacebook
from bot.testing.graph_server import GraphFault
from bot.testing.threads_server import FakeThreads
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
from tests.integration.test_meta_channels import PAGE_ID, PAGE_TOKEN, THREADS_TOKEN, fb, th

__all__ = ["fb", "th"]  # the fakes' fixtures, imported so that they serve here too

pytestmark = pytest.mark.usefixtures("loopback_only")


@pytest.fixture
async def threads(th: FakeThreads) -> AsyncIterator[ThreadsChannel]:
    config = ThreadsChannelConfig.model_validate(
        {
            "kind": "threads",
            "name": "threads",
            "template": "threads.txt.j2",
            "access_token": THREADS_TOKEN,
            "api_url": th.url,
            "timeout": "2s",
            "container_wait": "50ms",
        }
    )
    async with ThreadsChannel(config) as channel:
        yield channel


def facebook_config(fb: FakeFacebook, **extra: Any) -> FacebookChannelConfig:
    return FacebookChannelConfig.model_validate(
        {
            "kind": "facebook",
            "name": "facebook",
            "template": "facebook.txt.j2",
            "page_id": PAGE_ID,
            "access_token": PAGE_TOKEN,
            "api_url": fb.url,
            "timeout": "2s",
            **extra,
        }
    )


@pytest.fixture
async def facebook(fb: FakeFacebook) -> AsyncIterator[FacebookChannel]:
    async with FacebookChannel(facebook_config(fb)) as channel:
        yield channel


# ------------------------------------------------------------------------------------ Facebook


async def test_facebook_edits_a_link_post_in_place(
    fb: FakeFacebook, facebook: FacebookChannel
) -> None:
    """An edit changes the message of the same post (same id, link kept) and sends no link."""
    sent = await facebook.send(post(FIRST, "facebook"))
    receipt = await facebook.edit(published(sent, "facebook"), post(CORRECTED, "facebook"))

    assert receipt.remote_id == sent.remote_id
    assert receipt.url == f"https://www.facebook.com/{sent.remote_id}"
    (edit,) = fb.edits
    assert (edit.post_id, edit.before, edit.after) == (sent.remote_id, FIRST, CORRECTED)
    now = fb.post(sent.remote_id)
    assert now is not None and (now.message, now.link) == (CORRECTED, LINK)
    assert len(fb.posts) == 1


async def test_facebook_edit_of_a_deleted_post_is_post_gone(
    fb: FakeFacebook, facebook: FacebookChannel
) -> None:
    """Editing a post deleted since answers Graph's code 100 'does not exist': PostGone."""
    gone = await gone_once_deleted(
        facebook, lambda done: facebook.edit(done, post(CORRECTED, "facebook"))
    )
    assert "no longer there" in gone.reason
    assert fb.edits == []


async def test_facebook_refuses_an_over_long_edit(
    fb: FakeFacebook, facebook: FacebookChannel
) -> None:
    """An edit past 63,206 characters is refused for good, with Graph's reason, not as gone."""
    sent = await facebook.send(post(FIRST, "facebook"))
    with pytest.raises(PermanentError, match="longer than 63206") as caught:
        await facebook.edit(published(sent, "facebook"), post("長" * 63_207, "facebook"))
    assert not isinstance(caught.value, PostGone)
    assert fb.post(sent.remote_id).message == FIRST  # type: ignore[union-attr]


async def test_facebook_edit_without_permission_names_it(
    fb: FakeFacebook, facebook: FacebookChannel
) -> None:
    """A token that lost pages_manage_posts is refused as a permission, not as a gone post."""
    sent = await facebook.send(post(FIRST, "facebook"))
    fb.revoke_permission()
    with pytest.raises(PermanentError, match="lack of a permission") as caught:
        await facebook.edit(published(sent, "facebook"), post(CORRECTED, "facebook"))
    assert not isinstance(caught.value, PostGone)


async def test_facebook_edit_throttled_waits(fb: FakeFacebook, facebook: FacebookChannel) -> None:
    """A throttled edit is transient, for as long as the usage header says."""
    sent = await facebook.send(post(FIRST, "facebook"))
    fb.fail_next(1, GraphFault.rate_limited(32, regain_minutes=7), path=f"/{sent.remote_id}")
    with pytest.raises(TransientError) as caught:
        await facebook.edit(published(sent, "facebook"), post(CORRECTED, "facebook"))
    assert caught.value.retry_after == 7 * 60


async def test_facebook_replies_with_a_page_comment(
    fb: FakeFacebook, facebook: FacebookChannel
) -> None:
    """A reply is a comment by the Page under the post, its URL pointing at the comment."""
    sent = await facebook.send(post(FIRST, "facebook"))
    receipt = await facebook.reply(published(sent, "facebook"), post(NOTICE, "facebook"))

    (comment,) = fb.comments
    assert (comment.post_id, comment.message, comment.id) == (
        sent.remote_id,
        NOTICE,
        receipt.remote_id,
    )
    assert receipt.url is not None and receipt.url.startswith(
        f"https://www.facebook.com/{sent.remote_id}?comment_id="
    )
    assert len(fb.posts) == 1


async def test_facebook_comment_after_a_lost_answer_is_not_made_twice(
    fb: FakeFacebook, facebook: FacebookChannel
) -> None:
    """A comment whose answer was lost is found among the post's comments on the next attempt
    and answered as the receipt: one comment."""
    await replied_once_after_a_lost_answer(
        facebook,
        lambda: fb.fail_next(1, GraphFault.slow(3.0), path="/comments", method="POST"),
        lambda: [c.id for c in fb.comments],
    )
    assert [a.method for a in fb.attempts_to("/comments")] == ["GET", "POST", "GET"]


async def test_facebook_reply_to_a_missing_post_is_post_gone(
    fb: FakeFacebook, facebook: FacebookChannel
) -> None:
    """A comment on a post that is not there is PostGone, and no comment is made."""
    gone = Published("facebook", f"{PAGE_ID}_999", None, datetime.now(UTC), FIRST)
    with pytest.raises(PostGone):
        await facebook.reply(gone, post(NOTICE, "facebook"))
    assert fb.comments == []


async def test_facebook_delete_with_an_expired_token_names_the_setting(
    fb: FakeFacebook, facebook: FacebookChannel
) -> None:
    """An expired token on a delete says which setting to renew and never shows the token."""
    sent = await facebook.send(post(FIRST, "facebook"))
    fb.expire_token()
    with pytest.raises(PermanentError, match="access_token") as caught:
        await facebook.delete(published(sent, "facebook"))
    assert PAGE_TOKEN not in caught.value.reason
    assert fb.live() != []


async def test_facebook_delete_whose_answer_is_lost_may_have_happened(
    fb: FakeFacebook, facebook: FacebookChannel
) -> None:
    """A DELETE that was sent and not answered in time is transient and maybe carried out."""
    sent = await facebook.send(post(FIRST, "facebook"))
    fb.fail_next(1, GraphFault.slow(3.0), path=f"/{sent.remote_id}")
    with pytest.raises(TransientError) as caught:
        await facebook.delete(published(sent, "facebook"))
    assert caught.value.maybe_sent


# ------------------------------------------------------------------------------------- Threads


async def test_threads_replies_in_two_steps_under_the_post(
    th: FakeThreads, threads: ThreadsChannel
) -> None:
    """A reply is a container with reply_to_id, then its publish; the post stays as it was."""
    sent = await threads.send(post(FIRST, "threads"))
    receipt = await threads.reply(published(sent, "threads"), post(NOTICE, "threads"))

    (reply,) = th.replies
    assert (reply.id, reply.reply_to_id, reply.text) == (receipt.remote_id, sent.remote_id, NOTICE)
    assert reply.link_attachment == LINK
    assert receipt.url == reply.permalink
    assert [p.id for p in th.posts] == [sent.remote_id]
    assert len(th.attempts_to("/threads_publish")) == 2


async def test_threads_reply_after_a_lost_answer_is_not_published_twice(
    th: FakeThreads, threads: ThreadsChannel
) -> None:
    """A reply whose publish answer was lost is found under the post on the next attempt and
    answered as the receipt: one reply, no second container."""
    await replied_once_after_a_lost_answer(
        threads,
        lambda: th.fail_next(1, GraphFault.slow(3.0), path="/threads_publish"),
        lambda: [r.id for r in th.replies],
    )
    assert len(th.containers) == 2  # the post's and the one reply's


async def test_threads_reply_to_a_deleted_post_is_post_gone(
    th: FakeThreads, threads: ThreadsChannel
) -> None:
    """Replying under a post deleted since is PostGone, and nothing is published."""
    await gone_once_deleted(threads, lambda done: threads.reply(done, post(NOTICE, "threads")))
    assert th.replies == []


async def test_threads_refuses_an_over_long_reply(th: FakeThreads, threads: ThreadsChannel) -> None:
    """A reply over 500 characters as Threads counts them is refused for good."""
    sent = await threads.send(post(FIRST, "threads"))
    with pytest.raises(PermanentError, match="at most 500") as caught:
        await threads.reply(published(sent, "threads"), post("🚢" * 130, "threads"))
    assert not isinstance(caught.value, PostGone)
    assert th.replies == []


async def test_facebook_deletes_once_and_a_second_delete_is_post_gone(
    fb: FakeFacebook, facebook: FacebookChannel
) -> None:
    """A Page post is deleted once; the second delete finds it gone (the caller counts it done)."""
    await deleted_then_gone(facebook, lambda: fb.deletions)
    assert fb.live() == []


async def test_threads_deletes_once_and_a_second_delete_is_post_gone(
    th: FakeThreads, threads: ThreadsChannel
) -> None:
    """A Threads post is deleted by its media id once; the second delete finds it gone."""
    await deleted_then_gone(threads, lambda: list(th.deleted))
    assert th.posts and th.published(th.posts[0].id) is None


async def test_threads_delete_limit_is_transient(th: FakeThreads, threads: ThreadsChannel) -> None:
    """Past 100 deletes in 24 hours Threads refuses with code 4: try again later."""
    sent = await threads.send(post(FIRST, "threads"))
    now = datetime.now(UTC).timestamp()
    th.deleted.update({f"old-{n}": now - 60 for n in range(100)})
    with pytest.raises(TransientError, match="delete limit") as caught:
        await threads.delete(published(sent, "threads"))
    assert caught.value.retry_after is not None and caught.value.retry_after > 0
    assert th.published(sent.remote_id) is not None
