"""TelegramChannel.edit / reply / delete through python-telegram-bot against FakeTelegram on
127.0.0.1: each success, each refusal in the Bot API's own words, and what the fake records."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from markupsafe import escape

from bot.channels.telegram import TelegramChannel
from bot.errors import PermanentError, PostGone, TransientError
from bot.model import Correction, Post, Published, Receipt, Takedown
from bot.testing.telegram_server import FakeTelegram, Fault
from tests.integration.test_telegram_channel import (
    CHANNEL_ID,
    IMAGE,
    LINK,
    TOKEN,
    config,
    loopback_only,  # noqa: F401 -- the autouse guard: nothing but 127.0.0.1
    make_post,
)

CORRECTED_TITLE = "更正：高雄港與格丁尼亞港 12 月 5 日締結姊妹港（原誤植為 11 月）"
CORRECTION_NOTICE = "📢 更正啟事：本報導締約日期應為 12 月 5 日，特此更正。"


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token=TOKEN, chats={"@newsvision": CHANNEL_ID}) as server:
        yield server


def corrected(image: str | None = None) -> Post:
    text = f'<b>{escape(CORRECTED_TITLE)}</b>\n<a href="{escape(LINK)}">閱讀全文</a>'
    return make_post(text, image=image)


def published(receipt: Receipt, post: Post, *, sent_at: datetime | None = None) -> Published:
    return Published(
        channel="telegram",
        remote_id=receipt.remote_id,
        url=receipt.url,
        sent_at=sent_at or receipt.accepted_at or datetime.now(UTC),
        text=post.text,
    )


def gone(message_id: int = 4242) -> Published:
    return Published("telegram", str(message_id), None, datetime.now(UTC), "")


def foreign(tg: FakeTelegram) -> Published:
    """A message an editor posted by hand in the channel: not the bot's to edit or delete."""
    return gone(tg.add_foreign_message(CHANNEL_ID, "編輯台手動發布：今日頭條"))


async def posted(tg: FakeTelegram, post: Post | None = None, **overrides: Any) -> Published:
    """Send ``post`` through a channel built with ``overrides``; what an edit then acts on."""
    post = post or make_post()
    async with TelegramChannel.from_config(config(tg.url, **overrides)) as channel:
        return published(await channel.send(post), post)


# ------------------------------------------------------------------------------------ capability


def test_telegram_defaults_are_edit_and_delete() -> None:
    """Telegram edits in place and deletes by default, and says it can reply."""
    assert TelegramChannel.can_edit and TelegramChannel.can_reply and TelegramChannel.can_delete
    assert TelegramChannel.default_corrections is Correction.EDIT
    assert TelegramChannel.default_takedowns is Takedown.DELETE


# ----------------------------------------------------------------------------------------- edit


async def test_edit_changes_the_text_in_place_keeping_button_and_preview(
    tg: FakeTelegram,
) -> None:
    """editMessageText rewrites the same message; button and link preview stay as sent."""
    overrides = {"button": {"label": "看完整報導 👉"}, "link_preview": "large"}
    async with TelegramChannel.from_config(config(tg.url, **overrides)) as channel:
        first = make_post()
        original = published(await channel.send(first), first)
        receipt = await channel.edit(original, corrected())
    [message] = tg.messages
    [edit] = tg.edits
    assert tg.edits_of("@newsvision", message.message_id) == [edit]
    now = tg.current(CHANNEL_ID, message.message_id)
    assert now is not None and now.plain == f"{CORRECTED_TITLE}\n閱讀全文"
    assert (edit.method, edit.message_id, edit.text) == (
        "editMessageText",
        message.message_id,
        corrected().text,
    )
    assert now.reply_markup == message.reply_markup and now.reply_markup is not None
    assert now.link_preview_options == message.link_preview_options
    assert receipt.remote_id == original.remote_id and receipt.url == original.url
    assert receipt.url == f"https://t.me/newsvision/{message.message_id}"
    assert message.plain.startswith("高雄港與格丁尼亞港")  # the send record keeps what was sent


async def test_edit_with_the_same_text_is_refused_as_not_modified(tg: FakeTelegram) -> None:
    """An edit that changes nothing is Telegram's 'message is not modified', not a success."""
    original = await posted(tg)
    async with TelegramChannel.from_config(config(tg.url)) as channel:
        with pytest.raises(PermanentError) as caught:
            await channel.edit(original, make_post())
    assert not isinstance(caught.value, PostGone) and caught.value.duplicate
    assert caught.value.reason.startswith("not modified")
    assert "Bad Request: message is not modified: specified new message content" in (
        caught.value.reason
    )
    assert tg.edits == []


async def test_edit_of_an_unknown_message_is_post_gone(tg: FakeTelegram) -> None:
    """'message to edit not found' becomes PostGone with Telegram's words."""
    async with TelegramChannel.from_config(config(tg.url)) as channel:
        with pytest.raises(PostGone) as caught:
            await channel.edit(gone(), corrected())
    assert "message to edit not found" in caught.value.reason


async def test_a_deleted_message_cannot_be_edited(tg: FakeTelegram) -> None:
    """After deleteMessage the message is gone for editMessageText too."""
    original = await posted(tg)
    async with TelegramChannel.from_config(config(tg.url)) as channel:
        await channel.delete(original)
        with pytest.raises(PostGone):
            await channel.edit(original, corrected())
    assert tg.edits == [] and len(tg.deletions) == 1


async def test_photo_post_is_corrected_with_edit_message_caption(tg: FakeTelegram) -> None:
    """A post sent as a photo has its caption edited, never its (absent) text."""
    original = await posted(tg, make_post(image=IMAGE), photo=True)
    async with TelegramChannel.from_config(config(tg.url, photo=True)) as channel:
        receipt = await channel.edit(original, corrected(image=IMAGE))
    [edit] = tg.edits
    assert edit.method == "editMessageCaption"
    now = tg.current(CHANNEL_ID, edit.message_id)
    assert now is not None and now.caption == corrected().text and now.photo == IMAGE
    assert [a.method for a in tg.attempts if a.method.startswith("edit")] == ["editMessageCaption"]
    assert receipt.notes == ()


async def test_photo_refused_at_send_is_edited_as_text(tg: FakeTelegram) -> None:
    """A photo post that went out as text: 'no caption in the message' → editMessageText."""
    tg.fail_next(1, Fault.photo_refused())
    original = await posted(tg, make_post(image=IMAGE), photo=True)
    async with TelegramChannel.from_config(config(tg.url, photo=True)) as channel:
        receipt = await channel.edit(original, corrected(image=IMAGE))
    edits = [(a.method, a.status) for a in tg.attempts if a.method.startswith("edit")]
    assert edits == [("editMessageCaption", 400), ("editMessageText", 200)]
    [edit] = tg.edits
    assert edit.method == "editMessageText"
    assert any("text" in note for note in receipt.notes)


async def test_edit_over_the_caption_limit_is_refused(tg: FakeTelegram) -> None:
    """A caption edit is held to 1024 characters, as a photo send is."""
    original = await posted(tg, make_post(image=IMAGE), photo=True)
    long = make_post("颱風快訊🌀" * 210, image=IMAGE)  # 1260 characters
    async with TelegramChannel.from_config(config(tg.url, photo=True)) as channel:
        with pytest.raises(PermanentError, match="message caption is too long"):
            await channel.edit(original, long)
    assert tg.edits == []


async def test_edit_over_the_message_limit_is_refused(tg: FakeTelegram) -> None:
    """A text edit is held to 4096 characters, as a send is."""
    original = await posted(tg)
    long = make_post("立法院三讀通過《氣候變遷因應法》修正案。" * 220)  # 4620 characters
    async with TelegramChannel.from_config(config(tg.url)) as channel:
        with pytest.raises(PermanentError, match="message is too long"):
            await channel.edit(original, long)
    assert tg.edits == []


async def test_a_message_the_bot_did_not_send_cannot_be_edited(tg: FakeTelegram) -> None:
    """'message can't be edited' (an admin's own post) is a refusal that names the message."""
    target = foreign(tg)
    async with TelegramChannel.from_config(config(tg.url)) as channel:
        with pytest.raises(PermanentError) as caught:
            await channel.edit(target, corrected())
    assert not isinstance(caught.value, PostGone)
    assert f"message {target.remote_id}" in caught.value.reason
    assert "message can't be edited" in caught.value.reason


@pytest.mark.parametrize("action", ["edit", "reply", "delete"])
async def test_flood_control_is_transient_with_retry_after(tg: FakeTelegram, action: str) -> None:
    """429 on an edit, a reply or a delete waits Telegram's retry_after; nothing changes."""
    original = await posted(tg)
    tg.fail_next(1, Fault.retry_after(17))
    async with TelegramChannel.from_config(config(tg.url)) as channel:
        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "edit": lambda: channel.edit(original, corrected()),
            "reply": lambda: channel.reply(original, make_post(escape(CORRECTION_NOTICE))),
            "delete": lambda: channel.delete(original),
        }
        with pytest.raises(TransientError) as caught:
            await calls[action]()
    assert caught.value.retry_after == 17
    assert not caught.value.maybe_sent
    assert tg.edits == [] and tg.deletions == [] and tg.replies == []
    assert tg.current(CHANNEL_ID, int(original.remote_id)) is not None


async def test_edit_answered_too_late_may_have_been_applied(tg: FakeTelegram) -> None:
    """A timed-out edit is transient and maybe applied: the fake applied it after all, and
    the retry is 'not modified' with ``duplicate``, the proof that it had."""
    original = await posted(tg)
    tg.fail_next(1, Fault.slow(2.5))
    async with TelegramChannel.from_config(config(tg.url, timeout="1s")) as channel:
        with pytest.raises(TransientError) as caught:
            await channel.edit(original, corrected())
    assert caught.value.maybe_sent
    for _ in range(50):
        if tg.edits:
            break
        await asyncio.sleep(0.1)
    assert len(tg.edits) == 1
    async with TelegramChannel.from_config(config(tg.url)) as channel:
        with pytest.raises(PermanentError) as retried:
            await channel.edit(original, corrected())
    assert retried.value.duplicate and len(tg.edits) == 1


# ---------------------------------------------------------------------------------------- reply


async def test_reply_is_a_new_message_linked_to_the_original(tg: FakeTelegram) -> None:
    """reply_parameters.message_id links the correction notice to the post it corrects."""
    original = await posted(tg)
    notice = make_post(f'{escape(CORRECTION_NOTICE)}\n<a href="{escape(LINK)}">閱讀全文</a>')
    async with TelegramChannel.from_config(config(tg.url)) as channel:
        receipt = await channel.reply(original, notice)
    [reply] = tg.replies
    assert reply.reply_to_message_id == int(original.remote_id)
    assert reply.plain == f"{CORRECTION_NOTICE}\n閱讀全文"
    assert receipt.remote_id == str(reply.message_id) != original.remote_id
    assert receipt.url == f"https://t.me/newsvision/{reply.message_id}"
    assert len(tg.messages) == 2 and tg.edits == []


async def test_reply_to_a_deleted_message_is_post_gone(tg: FakeTelegram) -> None:
    """'message to be replied not found' is PostGone, and nothing is posted."""
    original = await posted(tg)
    async with TelegramChannel.from_config(config(tg.url)) as channel:
        await channel.delete(original)
        with pytest.raises(PostGone, match="message to be replied not found"):
            await channel.reply(original, make_post(escape(CORRECTION_NOTICE)))
    assert tg.replies == [] and len(tg.messages) == 1


# --------------------------------------------------------------------------------------- delete


async def test_delete_takes_the_message_down(tg: FakeTelegram) -> None:
    """deleteMessage removes it: the fake records the delete and shows nothing any more."""
    original = await posted(tg)
    async with TelegramChannel.from_config(config(tg.url)) as channel:
        await channel.delete(original)
    [deletion] = tg.deletions
    assert (deletion.chat_id, deletion.message_id) == (CHANNEL_ID, int(original.remote_id))
    assert tg.current(CHANNEL_ID, int(original.remote_id)) is None


async def test_deleting_twice_is_post_gone(tg: FakeTelegram) -> None:
    """The second delete meets 'message to delete not found': PostGone, the goal reached."""
    original = await posted(tg)
    async with TelegramChannel.from_config(config(tg.url)) as channel:
        await channel.delete(original)
        with pytest.raises(PostGone, match="message to delete not found"):
            await channel.delete(original)
    assert len(tg.deletions) == 1


async def test_a_post_older_than_48_hours_stays_up_and_says_why(tg: FakeTelegram) -> None:
    """After 48 hours Telegram refuses; the reason says the post is older than it allows."""
    original = await posted(tg)
    tg.age(hours=49)
    old = Published(
        original.channel,
        original.remote_id,
        original.url,
        original.sent_at - timedelta(hours=49),
        original.text,
    )
    async with TelegramChannel.from_config(config(tg.url)) as channel:
        with pytest.raises(PermanentError) as caught:
            await channel.delete(old)
    reason = caught.value.reason
    assert not isinstance(caught.value, PostGone)
    assert reason.startswith("too old to delete") and "48 hours" in reason
    assert "stays up" in reason and "message can't be deleted" in reason
    assert tg.deletions == [] and tg.current(CHANNEL_ID, int(old.remote_id)) is not None


async def test_a_message_aged_under_48_hours_can_still_be_deleted(tg: FakeTelegram) -> None:
    """The fake's limit is 48 hours, not less: a 47-hour-old message is deleted."""
    original = await posted(tg)
    tg.age(hours=47, chat="@newsvision", message_id=int(original.remote_id))
    async with TelegramChannel.from_config(config(tg.url)) as channel:
        await channel.delete(original)
    assert len(tg.deletions) == 1


async def test_a_recent_message_the_bot_may_not_delete_is_not_called_too_old(
    tg: FakeTelegram,
) -> None:
    """'message can't be deleted' on a fresh message is about rights, not age."""
    async with TelegramChannel.from_config(config(tg.url)) as channel:
        with pytest.raises(PermanentError) as caught:
            await channel.delete(foreign(tg))
    assert "too old" not in caught.value.reason
    assert "may not delete" in caught.value.reason


async def test_photo_post_corrected_without_its_image_edits_the_caption(tg: FakeTelegram) -> None:
    """The article lost its image: 'no text in the message to edit' → editMessageCaption."""
    original = await posted(tg, make_post(image=IMAGE), photo=True)
    async with TelegramChannel.from_config(config(tg.url, photo=True)) as channel:
        await channel.edit(original, corrected(image=None))
    edits = [(a.method, a.status) for a in tg.attempts if a.method.startswith("edit")]
    assert edits == [("editMessageText", 400), ("editMessageCaption", 200)]
    [attempt] = [a for a in tg.attempts if a.method == "editMessageText"]
    assert attempt.description == "Bad Request: there is no text in the message to edit"
    now = tg.current(CHANNEL_ID, int(original.remote_id))
    assert now is not None and now.caption == corrected().text


async def test_an_edit_in_a_chat_the_bot_was_kicked_from_is_refused(tg: FakeTelegram) -> None:
    """403 from Telegram on an edit is a permanent refusal, not PostGone."""
    original = await posted(tg)
    tg.kick(CHANNEL_ID)
    async with TelegramChannel.from_config(config(tg.url)) as channel:
        with pytest.raises(PermanentError, match="bot was kicked") as caught:
            await channel.edit(original, corrected())
    assert not isinstance(caught.value, PostGone)


# ------------------------------------------------------------------------- the fake on the wire


async def test_the_fake_takes_the_older_reply_to_message_id_too(tg: FakeTelegram) -> None:
    """reply_to_message_id (before Bot API 7.0) links a reply as reply_parameters does, and
    allow_sending_without_reply sends one whose target is gone."""
    original = await posted(tg)
    url = f"{tg.url}/bot{TOKEN}/sendMessage"
    async with httpx.AsyncClient() as client:
        linked = await client.post(
            url,
            json={
                "chat_id": CHANNEL_ID,
                "text": "補充說明",
                "reply_to_message_id": original.remote_id,
            },
        )
        missing = await client.post(
            url, json={"chat_id": CHANNEL_ID, "text": "補充說明二", "reply_to_message_id": 999}
        )
        anyway = await client.post(
            url,
            json={
                "chat_id": CHANNEL_ID,
                "text": "補充說明三",
                "reply_parameters": {"message_id": 999, "allow_sending_without_reply": True},
            },
        )
    assert linked.json()["result"]["reply_to_message"]["message_id"] == int(original.remote_id)
    assert missing.status_code == 400
    assert missing.json()["description"] == "Bad Request: message to be replied not found"
    assert anyway.status_code == 200 and "reply_to_message" not in anyway.json()["result"]
    assert [m.reply_to_message_id for m in tg.replies] == [int(original.remote_id)]
