"""What each network's channel says it can do to a published post, and the policies it uses
when a channel's config names none; a channel that cannot edit refuses before any request."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from bot.channels.base import Channel
from bot.channels.bluesky import BlueskyChannel
from bot.channels.console import ConsoleChannel
from bot.channels.facebook import FacebookChannel
from bot.channels.mastodon import MastodonChannel
from bot.channels.threads import ThreadsChannel
from bot.config import BlueskyChannelConfig, ConsoleChannelConfig, ThreadsChannelConfig
from bot.errors import PermanentError, PostGone
from bot.model import Correction, Post, Published, Takedown

# Nothing listens on port 9 of the loopback: a request would fail as a TransientError.
NOWHERE = "http://127.0.0.1:9"


@pytest.mark.parametrize(
    ("channel", "abilities", "corrections", "takedowns"),
    [
        (FacebookChannel, (True, True, True), Correction.EDIT, Takedown.DELETE),
        (MastodonChannel, (True, True, True), Correction.EDIT, Takedown.DELETE),
        (ThreadsChannel, (False, True, True), Correction.REPLY, Takedown.DELETE),
        (BlueskyChannel, (False, True, True), Correction.REPLY, Takedown.DELETE),
    ],
)
def test_capabilities_and_defaults_follow_the_platform(
    channel: type[Channel],
    abilities: tuple[bool, bool, bool],
    corrections: Correction,
    takedowns: Takedown,
) -> None:
    """Edit where the API edits in place (Facebook, Mastodon), else a reply; delete on all."""
    assert (channel.can_edit, channel.can_reply, channel.can_delete) == abilities
    assert (channel.default_corrections, channel.default_takedowns) == (corrections, takedowns)


def _threads() -> Channel:
    return ThreadsChannel(
        ThreadsChannelConfig.model_validate(
            {"kind": "threads", "template": "t.j2", "access_token": "THAAx", "api_url": NOWHERE}
        )
    )


def _bluesky() -> Channel:
    config = BlueskyChannelConfig.model_validate(
        {
            "kind": "bluesky",
            "template": "b.j2",
            "handle": "newsvision.bsky.social",
            "app_password": "abcd-efgh-ijkl-mnop",
            "pds_url": NOWHERE,
        }
    )
    return BlueskyChannel.from_config(config)


@pytest.mark.parametrize("make", [_threads, _bluesky])
async def test_no_edit_is_refused_without_a_request(make: Callable[[], Channel]) -> None:
    """Threads and Bluesky refuse an edit for good, at once (no request, no PostGone)."""
    channel = make()
    published = Published(channel.name, "17900000000000001", None, datetime.now(UTC), "舊標題")
    post = Post(
        channel.name, "新標題 https://news.example.tw/a/1", 30, 500, "https://news.example.tw/a/1"
    )
    with pytest.raises(PermanentError, match="cannot edit") as caught:
        await channel.edit(published, post)
    assert not isinstance(caught.value, PostGone)


async def test_console_shows_an_edit_a_reply_and_a_delete_of_a_post() -> None:
    """The console channel (the runnable default) prints what a correction and a takedown do."""
    stream = io.StringIO()
    channel = ConsoleChannel(
        ConsoleChannelConfig.model_validate({"kind": "console", "template": "t.j2", "name": "c"}),
        stream=stream,
    )
    assert (channel.default_corrections, channel.default_takedowns) == (
        Correction.EDIT,
        Takedown.DELETE,
    )
    post = Post(channel="c", text="更正：颱風假標準", length=8, limit=280, link="https://a.tw/1")
    sent = await channel.send(post)
    published = Published("c", sent.remote_id, None, datetime.now(UTC), post.text)
    edited = await channel.edit(published, post)
    reply = await channel.reply(published, post)
    await channel.delete(published)
    shown = stream.getvalue()
    assert edited.remote_id == sent.remote_id != reply.remote_id
    assert f"[edit {sent.remote_id}]" in shown
    assert f"replies to {sent.remote_id}" in shown
    assert f"[deleted {sent.remote_id}]" in shown
