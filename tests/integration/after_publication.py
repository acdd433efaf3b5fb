"""What the tests of edit, reply and delete on each network share: the posts (a correction of
a Kaohsiung harbour story), the published value a receipt becomes, and the checks that read the
same on every platform."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from bot.channels.base import Channel
from bot.errors import PostGone, TransientError
from bot.model import Post, Published, Receipt

LINK = "https://news.example.tw/article/40001?lang=zh-TW"
FIRST = f"高雄港綠能碼頭啟用！年減碳1.2萬公噸🚢 #港口 {LINK}"
CORRECTED = f"【更正】高雄港綠能碼頭啟用，年減碳1.5萬公噸（原誤植為1.2萬）🚢 {LINK}"
NOTICE = f"📌 更正：本文減碳數字已更新為1.5萬公噸，特此致歉。 #更正 {LINK}"


def post(text: str, channel: str, *, image: str | None = None, key: str = "") -> Post:
    return Post(
        channel=channel,
        text=text,
        length=len(text),
        limit=500,
        link=LINK,
        image=image,
        article_key=key or "newsvision-40001",
        source="newsvision",
        title="高雄港綠能碼頭啟用",
        summary="高雄港第一座岸電綠能碼頭今日啟用，預計每年減少碳排1.5萬公噸。",
    )


def published(receipt: Receipt, channel: str) -> Published:
    return Published(channel, receipt.remote_id, receipt.url, receipt.accepted_at, FIRST)


async def deleted_then_gone(channel: Channel, deletions: Callable[[], list[str]]) -> None:
    """DELETE of the post's id takes it down; deleting again is PostGone and deletes nothing."""
    sent = await channel.send(post(FIRST, channel.name))
    await channel.delete(published(sent, channel.name))
    assert deletions() == [sent.remote_id]
    with pytest.raises(PostGone):
        await channel.delete(published(sent, channel.name))
    assert deletions() == [sent.remote_id]


async def gone_once_deleted(
    channel: Channel, act: Callable[[Published], Awaitable[object]]
) -> PostGone:
    """``act`` on a post deleted since is PostGone."""
    sent = await channel.send(post(FIRST, channel.name))
    await channel.delete(published(sent, channel.name))
    with pytest.raises(PostGone) as caught:
        await act(published(sent, channel.name))
    return caught.value


async def replied_once_after_a_lost_answer(
    channel: Channel, lose_next: Callable[[], None], replies: Callable[[], list[str]]
) -> Receipt:
    """A reply whose answer is lost (``lose_next`` makes the platform answer too late, after
    carrying it out) is found by the next attempt and answered as its receipt: one reply."""
    sent = await channel.send(post(FIRST, channel.name))
    lose_next()
    with pytest.raises(TransientError) as caught:
        await channel.reply(published(sent, channel.name), post(NOTICE, channel.name))
    assert caught.value.maybe_sent
    for _ in range(60):  # the late reply is made after the client gave up
        if replies():
            break
        await asyncio.sleep(0.05)
    receipt = await channel.reply(published(sent, channel.name), post(NOTICE, channel.name))
    assert replies() == [receipt.remote_id]
    assert "earlier attempt" in receipt.notes[0]
    return receipt
