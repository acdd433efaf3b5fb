"""TelegramChannel through the real python-telegram-bot client against FakeTelegram on 127.0.0.1."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from markupsafe import escape

from bot.channels.telegram import TOKEN_REFUSED, TelegramChannel
from bot.compose.length import TELEGRAM_CAPTION, TELEGRAM_MESSAGE
from bot.config import TelegramChannelConfig
from bot.errors import PermanentError, TransientError
from bot.model import Post
from bot.testing.telegram_server import FakeTelegram, Fault

TOKEN = "123456:TEST-token-not-real"
WRONG_TOKEN = "654321:TEST-wrong-token-not-real"
CHANNEL_ID = -1001234567890
LINK = "https://news.example.tw/articles/2024/0315-kaohsiung-gdynia"
IMAGE = "https://news.example.tw/images/2024/0315-gdynia.jpg"
TITLE = '高雄港與格丁尼亞港 <雙港論壇> & "姊妹港" 正式締結'
EXCERPT = (
    "新聞視界時報 記者 王秉程 整理報導。"
    "高雄港務分公司表示，雙方將於下月交流，「智慧港口」為合作重點。🚢"
)


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may resolve, let alone reach, api.telegram.org or any host but 127.0.0.1."""
    real = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in ("127.0.0.1", "localhost", "::1", b"127.0.0.1"):
            raise OSError(f"test tried to reach {host!r}: only 127.0.0.1 is allowed")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token=TOKEN, chats={"@newsvision": CHANNEL_ID}) as server:
        yield server


def config(api_url: str, **overrides: Any) -> TelegramChannelConfig:
    raw: dict[str, Any] = {
        "kind": "telegram",
        "name": "telegram",
        "template": "telegram.html.j2",
        "token": TOKEN,
        "chat": "@newsvision",
        "api_url": api_url,
        "timeout": "2s",
    }
    raw.update(overrides)
    return TelegramChannelConfig.model_validate(raw)


def teaser(title: str = TITLE, excerpt: str = EXCERPT) -> str:
    """What telegram.html.j2 renders: autoescaped feed text inside Telegram's HTML."""
    return f'<b>{escape(title)}</b>\n{escape(excerpt)}\n<a href="{escape(LINK)}">閱讀全文</a>'


def make_post(text: str | None = None, image: str | None = None) -> Post:
    body = teaser() if text is None else text
    return Post(
        channel="telegram",
        text=body,
        length=len(body),
        limit=4096,
        link=LINK,
        image=image,
        article_key="kaohsiung-gdynia",
        source="newsvision",
    )


async def send(tg: FakeTelegram, post: Post | None = None, **overrides: Any) -> Any:
    async with TelegramChannel.from_config(config(tg.url, **overrides)) as channel:
        return await channel.send(post or make_post())


def chain_text(exc: BaseException) -> str:
    """Every message in an exception and the causes a traceback would print."""
    parts: list[str] = []
    current: BaseException | None = exc
    while current is not None:
        parts.append(f"{type(current).__name__}: {current}")
        current = current.__cause__ if current.__suppress_context__ else current.__context__
    return "\n".join(parts)


# ------------------------------------------------------------------------------------- success


async def test_chinese_teaser_arrives_as_readers_see_it(tg: FakeTelegram) -> None:
    """Feed text escaped once arrives as plain text: no markup, no double escaping."""
    await send(tg)
    [message] = tg.messages
    assert message.parse_mode == "HTML"
    assert message.text == teaser()
    assert message.plain == f"{TITLE}\n{EXCERPT}\n閱讀全文"
    assert "&amp;" not in message.plain
    assert "&lt;" not in message.plain
    assert [e.type for e in message.entities] == ["bold", "text_link"]


async def test_receipt_has_message_id_public_url_and_time(tg: FakeTelegram) -> None:
    """The receipt names the message, links t.me/<channel>/<id>, and carries Telegram's date."""
    before = datetime.now(UTC).replace(microsecond=0)
    receipt = await send(tg)
    assert receipt.remote_id == "1"
    assert receipt.url == "https://t.me/newsvision/1"
    assert receipt.accepted_at is not None
    assert before <= receipt.accepted_at <= datetime.now(UTC)
    assert receipt.notes == ()


async def test_message_ids_increase_per_chat(tg: FakeTelegram) -> None:
    """Each accepted post gets the next id in its chat, and the receipt follows it."""
    async with TelegramChannel.from_config(config(tg.url)) as channel:
        first = await channel.send(make_post())
        second = await channel.send(make_post())
    assert (first.remote_id, second.remote_id) == ("1", "2")
    assert second.url == "https://t.me/newsvision/2"


async def test_private_channel_by_numeric_id_gets_a_t_me_c_link() -> None:
    """A private channel configured by id links as t.me/c/<id without -100>/<message id>."""
    async with FakeTelegram(token=TOKEN, chats=["-1009876543210"]) as tg:
        receipt = await send(tg, chat="-1009876543210")
    assert receipt.url == "https://t.me/c/9876543210/1"


async def test_button_is_one_url_button_with_the_configured_label(tg: FakeTelegram) -> None:
    """With a button configured the post carries one inline URL button to the article."""
    await send(tg, button={"label": "看完整報導 👉"})
    assert tg.messages[0].reply_markup == {
        "inline_keyboard": [[{"text": "看完整報導 👉", "url": LINK}]]
    }


async def test_no_button_unless_configured(tg: FakeTelegram) -> None:
    """Without a button in the config the post has no keyboard."""
    await send(tg)
    assert tg.messages[0].reply_markup is None


@pytest.mark.parametrize(("silent", "expected"), [(True, True), (False, False)])
async def test_silent_sets_disable_notification(
    tg: FakeTelegram, silent: bool, expected: bool
) -> None:
    """``silent: true`` posts without a notification sound; the default notifies."""
    await send(tg, silent=silent)
    assert tg.messages[0].disable_notification is expected


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("off", {"is_disabled": True}),
        ("on", {"url": LINK}),
        ("above", {"url": LINK, "show_above_text": True}),
        ("large", {"url": LINK, "prefer_large_media": True}),
        ("large_above", {"url": LINK, "prefer_large_media": True, "show_above_text": True}),
    ],
)
async def test_link_preview_options_follow_the_config(
    tg: FakeTelegram, mode: str, expected: dict[str, Any]
) -> None:
    """Each ``link_preview`` setting becomes the matching LinkPreviewOptions for the article."""
    await send(tg, link_preview=mode)
    assert tg.messages[0].link_preview_options == expected


# --------------------------------------------------------------------------------------- photo


def test_rule_is_caption_limit_only_for_photo_posts_with_an_image() -> None:
    """A photo post is measured against 1024, everything else against 4096."""
    with_photo = TelegramChannel.from_config(config("http://127.0.0.1:9", photo=True))
    without = TelegramChannel.from_config(config("http://127.0.0.1:9"))
    assert with_photo.rule(has_image=True) == TELEGRAM_CAPTION
    assert with_photo.rule(has_image=False) == TELEGRAM_MESSAGE
    assert without.rule(has_image=True) == TELEGRAM_MESSAGE


async def test_photo_post_sends_the_image_url_with_the_caption(tg: FakeTelegram) -> None:
    """With ``photo: true`` and an image, the post is a sendPhoto with the text as caption."""
    receipt = await send(tg, make_post(image=IMAGE), photo=True, button={})
    [message] = tg.messages
    assert message.method == "sendPhoto"
    assert message.photo == IMAGE
    assert message.caption == teaser()
    assert message.plain.startswith(TITLE)
    assert message.reply_markup is not None
    assert receipt.url == "https://t.me/newsvision/1"


async def test_photo_post_without_image_is_a_text_message(tg: FakeTelegram) -> None:
    """A photo channel still posts an article that has no image, as text."""
    await send(tg, make_post(), photo=True)
    assert tg.messages[0].method == "sendMessage"


async def test_images_are_ignored_unless_photo_is_configured(tg: FakeTelegram) -> None:
    """Without ``photo: true`` an article image does not turn the post into a photo."""
    await send(tg, make_post(image=IMAGE))
    assert tg.messages[0].method == "sendMessage"


async def test_refused_photo_falls_back_to_text_with_a_note(tg: FakeTelegram) -> None:
    """When Telegram cannot use the photo, the same text is sent as a message and noted."""
    tg.fail_next(1, Fault.photo_refused())
    receipt = await send(tg, make_post(image=IMAGE), photo=True, link_preview="large")
    [message] = tg.messages
    assert message.method == "sendMessage"
    assert message.text == teaser()
    assert message.link_preview_options == {"url": LINK, "prefer_large_media": True}
    assert receipt.notes == ("photo refused: wrong type of the web page content, sent as text",)
    assert [a.status for a in tg.attempts if a.method != "getMe"] == [400, 200]


async def test_caption_parse_error_is_not_mistaken_for_a_photo_problem(tg: FakeTelegram) -> None:
    """A caption Telegram cannot parse fails the post instead of falling back to text."""
    with pytest.raises(PermanentError, match="can't parse entities"):
        await send(tg, make_post("<p>段落</p>", image=IMAGE), photo=True)
    assert tg.messages == []


# -------------------------------------------------------------------------------- transient errors


async def test_flood_control_is_transient_with_retry_after(tg: FakeTelegram) -> None:
    """429 becomes TransientError carrying Telegram's retry_after in seconds."""
    tg.fail_next(1, Fault.retry_after(7))
    with pytest.raises(TransientError) as caught:
        await send(tg)
    assert caught.value.retry_after == 7
    assert tg.messages == []


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_transient(tg: FakeTelegram, status: int) -> None:
    """A 5xx answer means try again later, not never."""
    tg.fail_next(1, Fault.server_error(status))
    with pytest.raises(TransientError):
        await send(tg)


async def test_dropped_connection_is_transient(tg: FakeTelegram) -> None:
    """A connection closed without an answer is a TransientError, not a crash."""
    tg.fail_next(1, Fault.drop())
    with pytest.raises(TransientError):
        await send(tg)
    assert tg.attempts[-1].fault == "drop"


async def test_slow_answer_times_out_as_transient(tg: FakeTelegram) -> None:
    """An answer slower than the configured timeout is a TransientError, within that timeout
    (0.5 s; the answer would come after 3 s: the bound leaves a loaded machine 2 s)."""
    tg.fail_next(1, Fault.slow(3.0))
    started = time.monotonic()
    with pytest.raises(TransientError, match="in time"):
        await send(tg, timeout="0.5s")
    assert time.monotonic() - started < 2.5


async def test_a_fault_is_consumed_and_the_next_send_succeeds(tg: FakeTelegram) -> None:
    """Scripted faults are used once, in order; the send after them is accepted."""
    tg.fail_next(1, Fault.server_error(502))
    tg.fail_next(1, Fault.retry_after(3))
    async with TelegramChannel.from_config(config(tg.url)) as channel:
        with pytest.raises(TransientError):
            await channel.send(make_post())
        with pytest.raises(TransientError):
            await channel.send(make_post())
        receipt = await channel.send(make_post())
    assert receipt.remote_id == "1"
    sends = [a for a in tg.attempts if a.method == "sendMessage"]
    assert [a.status for a in sends] == [502, 429, 200]
    assert sends[0].at <= sends[1].at <= sends[2].at


async def test_unreachable_api_at_start_is_transient() -> None:
    """Nothing listening at api_url when starting is a TransientError (try again later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    channel = TelegramChannel.from_config(config(f"http://127.0.0.1:{port}"))
    try:
        with pytest.raises(TransientError):
            await channel.start()
    finally:
        await channel.close()


# ------------------------------------------------------------------------------------- migration


async def test_migration_is_followed_once_and_logged(
    tg: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    """A migrated chat is resent to its new id, later posts go there, and a WARNING says so."""
    new_id = -1009876543210
    tg.fail_next(1, Fault.migrate(new_id))
    caplog.set_level(logging.WARNING, logger="bot.channels.telegram")
    async with TelegramChannel.from_config(config(tg.url)) as channel:
        first = await channel.send(make_post())
        second = await channel.send(make_post())
        assert channel.chat == new_id
    assert [m.chat_id for m in tg.messages] == [new_id, new_id]
    assert (first.remote_id, second.remote_id) == ("1", "2")
    sends = [a for a in tg.attempts if a.method == "sendMessage"]
    assert [a.status for a in sends] == [400, 200, 200]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert str(new_id) in warnings[0].getMessage()
    assert "Update `chat`" in warnings[0].getMessage()


async def test_a_second_migration_in_a_row_is_permanent(tg: FakeTelegram) -> None:
    """The migration is followed once only: moving again right away fails the post."""
    tg.fail_next(1, Fault.migrate(-1009876543210))
    tg.fail_next(1, Fault.migrate(-1005555555555))
    with pytest.raises(PermanentError, match="migrated again"):
        await send(tg)
    assert tg.messages == []


# -------------------------------------------------------------------------------- permanent errors


async def test_kicked_bot_is_permanent_with_telegrams_reason(tg: FakeTelegram) -> None:
    """A bot removed from the channel fails with Telegram's 403 description."""
    tg.kick("@newsvision")
    with pytest.raises(PermanentError) as caught:
        await send(tg)
    assert "Forbidden: bot was kicked from the channel chat" in caught.value.reason


async def test_unknown_chat_is_permanent(tg: FakeTelegram) -> None:
    """A chat Telegram does not know fails with "chat not found"."""
    with pytest.raises(PermanentError, match="Bad Request: chat not found"):
        await send(tg, chat="@nosuchchannel")


async def test_markup_telegram_cannot_parse_is_permanent(tg: FakeTelegram) -> None:
    """HTML Telegram refuses fails with its exact parse error, byte offset included."""
    with pytest.raises(PermanentError) as caught:
        await send(tg, make_post("新聞視界時報<br>王秉程"))
    assert caught.value.reason.endswith(
        'Bad Request: can\'t parse entities: Unsupported start tag "br" at byte offset 18'
    )


async def test_text_over_4096_after_parsing_is_permanent(tg: FakeTelegram) -> None:
    """More than 4096 code points of visible text is refused as "message is too long"."""
    with pytest.raises(PermanentError, match="message is too long"):
        await send(tg, make_post("港" * 4097))


async def test_4096_visible_characters_with_markup_are_accepted(tg: FakeTelegram) -> None:
    """Tags do not count: 4096 visible characters wrapped in <b> fit."""
    await send(tg, make_post("<b>" + "港" * 4096 + "</b>"))
    assert len(tg.messages[0].plain) == 4096


async def test_caption_over_1024_is_permanent(tg: FakeTelegram) -> None:
    """A photo caption over 1024 code points is refused as "message caption is too long"."""
    with pytest.raises(PermanentError, match="message caption is too long"):
        await send(tg, make_post("港" * 1025, image=IMAGE), photo=True)


async def test_bad_token_at_start_is_permanent_and_never_shows_the_token() -> None:
    """A refused token stops the channel at start, and no message in the chain quotes it."""
    async with FakeTelegram(token=WRONG_TOKEN) as tg:
        channel = TelegramChannel.from_config(config(tg.url))
        try:
            with pytest.raises(PermanentError) as caught:
                await channel.start()
        finally:
            await channel.close()
    assert str(caught.value) == TOKEN_REFUSED
    assert TOKEN not in chain_text(caught.value)
    assert tg.attempts[0].method == "getMe"
    assert tg.attempts[0].status == 401


async def test_verify_returns_the_bot_username(tg: FakeTelegram) -> None:
    """``check --online`` gets the bot's username from getMe."""
    async with TelegramChannel.from_config(config(tg.url)) as channel:
        assert await channel.verify() == "newsvision_test_bot"


async def test_verify_with_a_bad_token_is_permanent_without_the_token() -> None:
    """verify() reports a refused token as PermanentError that does not contain it."""
    async with FakeTelegram(token=WRONG_TOKEN) as tg:
        channel = TelegramChannel.from_config(config(tg.url))
        try:
            with pytest.raises(PermanentError) as caught:
                await channel.verify()
        finally:
            await channel.close()
    assert TOKEN not in chain_text(caught.value)


# ------------------------------------------------------------------------------- the fake itself


async def test_fake_accepts_json_form_and_any_method_case(tg: FakeTelegram) -> None:
    """The fake reads JSON and form bodies and matches method names case-insensitively."""
    async with httpx.AsyncClient(base_url=f"{tg.url}/bot{TOKEN}") as client:
        by_json = await client.post(
            "/sendmessage",
            json={"chat_id": CHANNEL_ID, "text": "「快訊」高雄港", "parse_mode": "HTML"},
        )
        by_form = await client.post(
            "/SENDMESSAGE", data={"chat_id": "@NewsVision", "text": "格丁尼亞 🎉"}
        )
    assert by_json.json()["result"]["message_id"] == 1
    assert by_form.json()["result"]["text"] == "格丁尼亞 🎉"
    assert by_form.json()["result"]["chat"] == {
        "id": CHANNEL_ID,
        "title": "新聞視界 newsvision",
        "type": "channel",
        "username": "newsvision",
    }


async def test_fake_answers_wrong_token_unknown_method_and_empty_text(tg: FakeTelegram) -> None:
    """The fake's refusals use the Bot API's status codes and descriptions."""
    async with httpx.AsyncClient(base_url=tg.url) as client:
        wrong = await client.post(f"/bot{WRONG_TOKEN}/getMe")
        unknown = await client.post(f"/bot{TOKEN}/sendSticker")
        empty = await client.post(
            f"/bot{TOKEN}/sendMessage",
            data={"chat_id": "@newsvision", "text": " <b> </b> ", "parse_mode": "HTML"},
        )
    assert (wrong.status_code, wrong.json()["description"]) == (401, "Unauthorized")
    assert (unknown.status_code, unknown.json()["description"]) == (404, "Not Found")
    assert empty.json() == {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: message text is empty",
    }


def test_fake_serves_from_a_thread_for_blocking_callers() -> None:
    """``with FakeTelegram()`` answers while the caller blocks, as a subprocess test needs."""
    with FakeTelegram(token=TOKEN) as tg:
        answer = httpx.get(f"{tg.url}/bot{TOKEN}/getMe").json()
    assert answer["result"]["is_bot"] is True
    assert answer["result"]["id"] == 123456


def test_serve_command_prints_its_url_and_answers() -> None:
    """``python -m bot.testing telegram`` serves the given token and chat until stopped."""
    code = (
        "import sys; from bot.testing.telegram_server import serve; sys.exit(serve(sys.argv[1:]))"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code, "--token", TOKEN, "--chat", "@taipeinews=-1001111111111"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        url = line.split(" at ", 1)[1].split(" ", 1)[0]
        answer = httpx.post(
            f"{url}/bot{TOKEN}/sendMessage", data={"chat_id": "@taipeinews", "text": "臺北快訊"}
        ).json()
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert answer["result"]["chat"]["id"] == -1001111111111


# --------------------------------------------------------------------------------- forum topics


async def test_topic_posts_into_that_forum_topic_only() -> None:
    """topic: sends message_thread_id; the fake files the message under that topic, and the
    receipt links to the message inside the topic."""
    group = -1009876543210
    async with FakeTelegram(token=TOKEN, chats={"-1009876543210": group}) as tg:
        politics = tg.add_topic(group, "政治")
        sports = tg.add_topic(group, "體育")
        receipt = await send(tg, chat=str(group), topic=sports)

        (message,) = tg.messages_in(group)
        assert message.message_thread_id == sports != politics
        assert tg.messages_in_topic(group, politics) == []
        assert receipt.url == f"https://t.me/c/9876543210/{sports}/{message.message_id}"


async def test_unknown_topic_fails_with_telegrams_words(tg: FakeTelegram) -> None:
    """A topic the chat does not have (or a chat without topics): permanent, Telegram's words."""
    with pytest.raises(PermanentError, match="message thread not found"):
        await send(tg, topic=4242)
    assert tg.messages == []


async def test_no_topic_sends_no_thread_id(tg: FakeTelegram) -> None:
    """Without topic: the message goes to the chat itself, no message_thread_id at all."""
    await send(tg)
    (message,) = tg.messages
    assert message.message_thread_id is None
