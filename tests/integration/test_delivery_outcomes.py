"""Every platform fault, end to end below the command line: the pipeline delivers through the real
python-telegram-bot and tweepy clients to the local fakes on 127.0.0.1, and a real SQLite ledger
records the outcome. Each test shows the delivery state and reason a fault leaves behind, and
that the other channel carries on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import shutil
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.channels.base import Channel
from bot.channels.telegram import TOKEN_REFUSED, TelegramChannel
from bot.channels.x import XChannel
from bot.compose.length import LengthRule
from bot.compose.render import Renderer
from bot.config import Config, TelegramChannelConfig, XChannelConfig, load_config
from bot.errors import PermanentError
from bot.ledger import Delivery, Ledger
from bot.model import Article, DeliveryState
from bot.pipeline import PassReport, Pipeline
from bot.testing.memory import MemorySource
from bot.testing.telegram_server import FakeTelegram, Fault
from bot.testing.x_server import DUPLICATE, NO_WRITE_PERMISSION, FakeX, XFault
from tests.integration.pipelines import started_pipeline

REPO = Path(__file__).resolve().parents[2]
TOKEN = "424242:TEST-delivery-token-not-real"
CHAT_ID = -1001234567890
KEYS: dict[str, Any] = {
    "consumer_key": "ck-newsvision-delivery",
    "consumer_secret": "cs-delivery-secret-0b1e",
    "access_token": "1490278571950612480-delivery",
    "access_token_secret": "ats-delivery-secret-77f2",
}
# The platforms' default pace (20/min on Telegram, 100/15 min on X) spaces posts seconds apart;
# these tests are about outcomes, not pacing, so the channels may post at once.
FAST = "100/s"
BYLINE = "新聞視界時報\\s*記者\\s*\\S+\\s*整理報導"
PUBLISHED = datetime(2025, 9, 16, 10, 0, tzinfo=UTC)
SENTENCE = "高雄與格丁尼亞簽署經濟合作備忘錄，雙方將在智慧城市與新創領域深化交流。"
MARKUP_TITLE = '高雄 & 格丁尼亞 <合作> "新創"'
LEAD = (
    "<p>新聞視界時報 記者 王秉程 整理報導</p>"
    "<p>高雄與波蘭姊妹市格丁尼亞的交流再度邁向新里程！由高雄市副市長羅達生率領市府團隊，"
    "於波蘭時間9月14日與格丁尼亞市政府正式簽署經濟合作備忘錄。🎉</p>"
)


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may resolve, let alone reach, any host but 127.0.0.1."""
    real = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in ("127.0.0.1", "localhost", "::1", b"127.0.0.1"):
            raise OSError(f"test tried to reach {host!r}: only 127.0.0.1 is allowed")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token=TOKEN, chats={"@newsvision": CHAT_ID}) as server:
        yield server


@pytest.fixture
async def fx() -> AsyncIterator[FakeX]:
    async with FakeX(**KEYS) as server:
        yield server


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    """The shipped templates plus two an editor could get wrong."""
    folder = tmp_path / "templates"
    shutil.copytree(REPO / "templates", folder)
    # Marks feed text safe: a `<` in a title then reaches Telegram as markup.
    (folder / "unsafe.html.j2").write_text(
        '<b>{{ article.title | safe }}</b>\n\n<a href="{{ link }}">閱讀全文</a>\n',
        encoding="utf-8",
    )
    # The whole summary, which the fitter cannot shorten (only the excerpt and the title).
    (folder / "full.html.j2").write_text(
        '<b>{{ article.title }}</b>\n{{ article.summary }}\n<a href="{{ link }}">閱讀全文</a>\n',
        encoding="utf-8",
    )
    (folder / "full.txt.j2").write_text(
        "{{ article.title }} {{ article.summary }} {{ link }}\n", encoding="utf-8"
    )
    return folder


def article(n: int, *, title: str | None = None, summary_html: str = LEAD) -> Article:
    url = f"https://news.example.tw/article/{20000 + n}?lang=zh-TW&ref=rss"
    return Article(
        key=f"newsvision-{20000 + n}",
        url=url,
        title=title or f"高雄與格丁尼亞再升級！簽署經濟合作備忘錄（{n}）",
        summary_html=summary_html,
        published=PUBLISHED + timedelta(minutes=n),
        author="王秉程",
        categories=("城市外交", "投資理財"),
    )


# Limits far above the platforms': what a length-counting bug looks like from outside. The
# post then goes out too long and the platform itself refuses it.
TOO_GENEROUS_TELEGRAM = LengthRule("telegram", 100_000)
TOO_GENEROUS_X = LengthRule("x", 100_000)


class MiscountingTelegram(TelegramChannel):
    def rule(self, *, has_image: bool) -> LengthRule:
        return TOO_GENEROUS_TELEGRAM


class MiscountingX(XChannel):
    def rule(self, *, has_image: bool) -> LengthRule:
        return TOO_GENEROUS_X


@dataclass
class World:
    """One pipeline wired to the real clients, the fakes and a real SQLite ledger."""

    config: Config
    ledger: Ledger
    source: MemorySource
    channels: dict[str, Channel]
    pipeline: Pipeline

    async def publish(self, *articles: Article) -> None:
        """The source shows these articles; one poll records them (backlog lets all through)."""
        self.source.articles = list(articles)
        report = await self.pipeline.poll("newsvision")
        assert report.ok and report.ingest is not None
        assert report.ingest.queued == len(articles) * len(self.channels)

    async def deliver(self) -> PassReport:
        return await self.pipeline.deliver_due()

    def rows(self, channel: str) -> list[Delivery]:
        """This channel's deliveries, oldest first."""
        return list(reversed(self.ledger.deliveries(channel=channel)))

    def only(self, channel: str) -> Delivery:
        (row,) = self.rows(channel)
        return row


@contextlib.asynccontextmanager
async def open_world(
    tmp_path: Path,
    tg: FakeTelegram,
    fx: FakeX,
    *,
    token: str = TOKEN,
    chat: str = "@newsvision",
    telegram_template: str = "telegram.html.j2",
    x_template: str = "x.txt.j2",
    x_keys: dict[str, str] | None = None,
    answer_within: str = "2s",
    miscount: frozenset[str] = frozenset(),
    retry_backoff: str = "30s",
    resend_uncertain: bool = False,
) -> AsyncIterator[World]:
    raw = {
        "timezone": "Asia/Taipei",
        "database": "sqlite:///ledger.db",
        "templates": "templates",
        "sources": {
            "newsvision": {
                "kind": "feed",
                "url": "https://news.example.tw/rss.xml",
                "backlog": 10,
                "max_age": "off",
                "strip": [BYLINE],
            }
        },
        "channels": {
            "telegram": {
                "kind": "telegram",
                "token": token,
                "chat": chat,
                "template": telegram_template,
                "api_url": tg.url,
                "timeout": answer_within,
                "rate": FAST,
                "retry_backoff": retry_backoff,
                "resend_uncertain": resend_uncertain,
            },
            "x": {
                "kind": "x",
                **(x_keys or KEYS),
                "template": x_template,
                "api_url": fx.url,
                "timeout": answer_within,
                "rate": FAST,
                "retry_backoff": retry_backoff,
            },
        },
    }
    path = tmp_path / "newsbot.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    config = load_config(path, environ={})
    telegram_cls = MiscountingTelegram if "telegram" in miscount else TelegramChannel
    x_cls = MiscountingX if "x" in miscount else XChannel
    telegram_config, x_config = config.channels["telegram"], config.channels["x"]
    assert isinstance(telegram_config, TelegramChannelConfig)
    assert isinstance(x_config, XChannelConfig)
    channels: dict[str, Channel] = {
        "telegram": telegram_cls.from_config(telegram_config),
        "x": x_cls.from_config(x_config),
    }
    ledger = Ledger.open(config.database)
    try:
        async with started_pipeline(config, ledger, channels) as (source, pipeline):
            yield World(config, ledger, source, channels, pipeline)
    finally:
        ledger.close()


def sends(tg: FakeTelegram) -> list[Any]:
    return [a for a in tg.attempts if a.method == "sendMessage"]


def assert_sent(row: Delivery) -> None:
    assert row.state is DeliveryState.SENT, row.reason
    assert row.remote_id and row.text


def assert_requeued(row: Delivery, *, after: datetime, reason_starts: str) -> None:
    assert row.state is DeliveryState.QUEUED
    assert row.attempts == 1
    assert (row.reason or "").startswith(reason_starts), row.reason
    assert row.due_at > after, "a transient failure must be requeued for later, not due now"
    assert row.remote_id is None and row.sent_at is None


def assert_failed(row: Delivery, reason_starts: str) -> None:
    assert row.state is DeliveryState.FAILED
    assert (row.reason or "").startswith(reason_starts), row.reason
    assert row.remote_id is None and row.sent_at is None
    assert row.text, "a failed delivery keeps the text it tried to send"


# ------------------------------------------------------------------------------ the happy path


async def test_both_channels_receive_markup_title_as_text(
    tmp_path: Path, tg: FakeTelegram, fx: FakeX, templates: Path
) -> None:
    """A title with < > & " reaches Telegram as text (escaped once) and X verbatim; both sent."""
    async with open_world(tmp_path, tg, fx) as world:
        await world.publish(article(1, title=MARKUP_TITLE))
        report = await world.deliver()

        assert (report.sent, report.failed, report.retrying) == (2, 0, 0)
        (message,) = tg.messages_in(CHAT_ID)
        assert message.plain.startswith(MARKUP_TITLE)
        assert "&amp;" not in message.plain and "&lt;" not in message.plain
        (post,) = fx.posts
        assert post.text.startswith(f"【{MARKUP_TITLE}】")
        assert world.only("telegram").text == message.text
        assert world.only("x").text == post.text
        assert_sent(world.only("telegram"))
        assert world.only("x").remote_url == f"https://x.com/i/web/status/{post.id}"


# ------------------------------------------------------------------------- Telegram: transient


async def test_telegram_flood_control_requeues_after_retry_after(
    tmp_path: Path, tg: FakeTelegram, fx: FakeX, templates: Path
) -> None:
    """429 retry_after: queued, due no earlier than retry_after, the channel paused; X sent."""
    tg.fail_next(1, Fault.retry_after(30))
    async with open_world(tmp_path, tg, fx) as world:
        await world.publish(article(1), article(2))
        before = datetime.now(UTC)
        report = await world.deliver()

        first, second = world.rows("telegram")
        assert_requeued(first, after=before, reason_starts="Telegram flood control")
        assert first.reason == "Telegram flood control: retry after 30 s"
        assert first.due_at >= before + timedelta(seconds=30)
        # The whole chat waits: the second post was not even tried.
        assert second.state is DeliveryState.QUEUED and second.remote_id is None
        assert len(sends(tg)) == 1 and tg.messages == []
        assert "telegram" in report.paused_channels
        await poll_until_sent(world, "x", deadline=time.monotonic() + 5)
        assert len(sends(tg)) == 1, "X going on must not wake the paused Telegram channel"
        # Another instance (fresh memory, same ledger) must honour the pause as well.
        other = Pipeline(
            world.config,
            world.ledger,
            {"newsvision": world.source},
            world.channels,
            Renderer(world.config.templates, world.config.tz),
            holder="test:2",
        )
        await other.deliver_due()
        assert len(sends(tg)) == 1, "a second instance sent into the flood-control pause"


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_telegram_server_error_is_requeued(
    tmp_path: Path, tg: FakeTelegram, fx: FakeX, templates: Path, status: int
) -> None:
    """A 5xx from the Bot API: queued again with backoff, reason naming Telegram's answer."""
    tg.fail_next(1, Fault.server_error(status))
    async with open_world(tmp_path, tg, fx) as world:
        await world.publish(article(1))
        before = datetime.now(UTC)
        await world.deliver()

        row = world.only("telegram")
        assert_requeued(row, after=before, reason_starts="Telegram: ")
        assert row.due_at >= before + timedelta(seconds=20)
        assert tg.messages == []
        assert_sent(world.only("x"))


def assert_uncertain(row: Delivery, reason_starts: str) -> None:
    assert row.state is DeliveryState.UNCERTAIN
    assert (row.reason or "").startswith(reason_starts), row.reason
    assert "newsbot retry --uncertain" in (row.reason or "")
    assert row.text, "an uncertain delivery keeps the text it sent"


async def test_telegram_dropped_connection_is_uncertain_not_resent(
    tmp_path: Path, tg: FakeTelegram, fx: FakeX, templates: Path
) -> None:
    """A connection closed after the request was sent: 'uncertain' for a person, never resent
    blindly (Telegram keeps no idempotency key)."""
    tg.fail_next(1, Fault.drop())
    async with open_world(tmp_path, tg, fx, retry_backoff="0s") as world:
        await world.publish(article(1))
        await world.deliver()
        await world.deliver()

        assert_uncertain(world.only("telegram"), reason_starts="Telegram")
        assert tg.messages == [] and len(sends(tg)) == 1
        assert_sent(world.only("x"))


async def test_telegram_timeout_is_uncertain_not_resent(
    tmp_path: Path, tg: FakeTelegram, fx: FakeX, templates: Path
) -> None:
    """No answer within the timeout although the fake did post it: 'uncertain', and no second
    copy reaches the channel."""
    tg.fail_next(1, Fault.slow(1.0))
    async with open_world(tmp_path, tg, fx, answer_within="300ms", retry_backoff="0s") as world:
        await world.publish(article(1))
        await world.deliver()
        await asyncio.sleep(1.0)
        await world.deliver()

        assert_uncertain(
            world.only("telegram"), reason_starts="Telegram did not answer send in time"
        )
        assert len(tg.messages) == 1  # the slow answer did post it: exactly once
        assert_sent(world.only("x"))


async def test_telegram_resend_uncertain_requeues_instead(
    tmp_path: Path, tg: FakeTelegram, fx: FakeX, templates: Path
) -> None:
    """With resend_uncertain: true a dropped connection is retried like any transient error."""
    tg.fail_next(1, Fault.drop())
    async with open_world(tmp_path, tg, fx, resend_uncertain=True) as world:
        await world.publish(article(1))
        before = datetime.now(UTC)
        await world.deliver()

        assert_requeued(world.only("telegram"), after=before, reason_starts="Telegram")


# ------------------------------------------------------------------------- Telegram: permanent


async def test_telegram_chat_not_found_fails(
    tmp_path: Path, tg: FakeTelegram, fx: FakeX, templates: Path
) -> None:
    """A chat the bot does not know: failed with Telegram's own words; X still sent."""
    async with open_world(tmp_path, tg, fx, chat="@no_such_channel") as world:
        await world.publish(article(1))
        report = await world.deliver()

        assert_failed(world.only("telegram"), "Telegram: Bad Request: chat not found")
        assert report.failed == 1 and report.sent == 1
        assert_sent(world.only("x"))


async def test_telegram_bot_kicked_fails(
    tmp_path: Path, tg: FakeTelegram, fx: FakeX, templates: Path
) -> None:
    """A bot removed from the channel: 403, failed with Telegram's reason, never retried."""
    tg.kick("@newsvision")
    async with open_world(tmp_path, tg, fx) as world:
        await world.publish(article(1))
        await world.deliver()
        await world.deliver()

        assert_failed(
            world.only("telegram"), "Telegram: Forbidden: bot was kicked from the channel chat"
        )
        assert world.only("telegram").attempts == 1 and len(sends(tg)) == 1


async def test_telegram_cannot_parse_entities_fails(
    tmp_path: Path, tg: FakeTelegram, fx: FakeX, templates: Path
) -> None:
    """A template marking a title `safe` sends `<合作>` as a tag: failed, can't parse entities."""
    async with open_world(tmp_path, tg, fx, telegram_template="unsafe.html.j2") as world:
        await world.publish(article(1, title=MARKUP_TITLE))
        await world.deliver()

        row = world.only("telegram")
        assert_failed(row, "Telegram: Bad Request: can't parse entities")
        assert "合作" in (row.reason or ""), "the reason points at the offending tag"
        assert tg.messages == []
        assert_sent(world.only("x"))


async def test_telegram_message_too_long_fails(
    tmp_path: Path, tg: FakeTelegram, fx: FakeX, templates: Path
) -> None:
    """A post over 4096 that newsbot failed to catch: Telegram refuses it, failed with its words."""
    summary = "<p>" + SENTENCE * 130 + "</p>"
    async with open_world(
        tmp_path, tg, fx, telegram_template="full.html.j2", miscount=frozenset({"telegram"})
    ) as world:
        await world.publish(article(1, summary_html=summary))
        await world.deliver()

        assert_failed(world.only("telegram"), "Telegram: Bad Request: message is too long")
        assert len(world.only("telegram").text or "") > 4096
        assert tg.messages == []
        assert_sent(world.only("x"))


async def test_x_too_long_is_a_permanent_400(
    tmp_path: Path, tg: FakeTelegram, fx: FakeX, templates: Path
) -> None:
    """A post over 280 weighted that newsbot failed to catch: X's 400, failed with its words."""
    summary = "<p>" + SENTENCE * 5 + "</p>"
    async with open_world(
        tmp_path, tg, fx, x_template="full.txt.j2", miscount=frozenset({"x"})
    ) as world:
        await world.publish(article(1, summary_html=summary))
        await world.deliver()

        row = world.only("x")
        assert_failed(row, "X rejected the post (400 Bad Request)")
        assert "Your Tweet text is too long" in (row.reason or "")
        assert fx.posts == [] and fx.attempts_to("/2/tweets")[0].status == 400
        assert_sent(world.only("telegram"))


async def test_telegram_token_revoked_while_running_fails(
    tmp_path: Path, tg: FakeTelegram, fx: FakeX, templates: Path
) -> None:
    """A token revoked after start: 401 on send, failed naming TELEGRAM_BOT_TOKEN, not the token."""
    async with open_world(tmp_path, tg, fx) as world:
        await world.publish(article(1))
        tg.token = "424242:TEST-token-after-revocation"
        await world.deliver()

        row = world.only("telegram")
        assert_failed(row, TOKEN_REFUSED)
        assert TOKEN not in (row.reason or "")
        assert_sent(world.only("x"))


async def test_telegram_wrong_token_stops_the_channel_at_start(
    tmp_path: Path, tg: FakeTelegram, fx: FakeX, templates: Path
) -> None:
    """A token Telegram refuses fails getMe in start() with a reason naming no secret."""
    wrong = "424242:TEST-wrong-token-not-real"
    with pytest.raises(PermanentError) as caught:
        async with open_world(tmp_path, tg, fx, token=wrong):
            pass

    assert caught.value.reason == TOKEN_REFUSED
    assert wrong not in str(caught.value)
    assert [a.method for a in tg.attempts] == ["getMe"] and tg.attempts[0].status == 401


# ------------------------------------------------------------------------- Telegram: migration


async def test_telegram_migration_is_followed_once_and_logged(
    tmp_path: Path,
    tg: FakeTelegram,
    fx: FakeX,
    templates: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """migrate_to_chat_id: sent to the new chat, a warning asks to update the config, later posts
    go straight to the new id."""
    new_id = -1009876543210
    tg.fail_next(1, Fault.migrate(new_id))
    caplog.set_level(logging.WARNING)
    async with open_world(tmp_path, tg, fx) as world:
        await world.publish(article(1), article(2))
        await poll_until_sent(world, "telegram", deadline=time.monotonic() + 10)

        first, second = world.rows("telegram")
        assert_sent(first)
        assert_sent(second)
        assert first.attempts == 1, "following a migration is part of the same attempt"
        assert len(tg.messages_in(new_id)) == 2
        assert [a.chat for a in sends(tg)] == ["@newsvision", str(new_id), str(new_id)]
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len([w for w in warnings if "upgraded to a supergroup" in w]) == 1
        assert any(
            f"Update `chat` for this channel in the config to {new_id}" in w for w in warnings
        )


async def test_telegram_second_migration_in_a_row_fails(
    tmp_path: Path, tg: FakeTelegram, fx: FakeX, templates: Path
) -> None:
    """A chat that moves again right after being followed is not chased: failed with reason."""
    tg.fail_next(1, Fault.migrate(-1009876543210))
    tg.fail_next(1, Fault.migrate(-1005555555555))
    async with open_world(tmp_path, tg, fx) as world:
        await world.publish(article(1))
        await world.deliver()

        assert_failed(world.only("telegram"), "Telegram reported the chat migrated again")
        assert len(sends(tg)) == 2 and tg.messages == []


# ------------------------------------------------------------------------------- X: transient


async def test_x_rate_limit_requeues_until_the_reset(
    tmp_path: Path, tg: FakeTelegram, fx: FakeX, templates: Path
) -> None:
    """429 with x-rate-limit-reset: queued, due no earlier than the reset; Telegram still sent."""
    fx.fail_next(1, XFault.rate_limited(reset_in=120))
    async with open_world(tmp_path, tg, fx) as world:
        await world.publish(article(1))
        before = datetime.now(UTC)
        await world.deliver()

        row = world.only("x")
        assert_requeued(row, after=before, reason_starts="X rate limit reached on x (429")
        reset = math.floor(fx.attempts[0].at + 120)
        assert row.due_at.timestamp() >= reset - 1
        assert fx.posts == []
        assert_sent(world.only("telegram"))


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_x_server_error_is_requeued(
    tmp_path: Path, tg: FakeTelegram, fx: FakeX, templates: Path, status: int
) -> None:
    """A 5xx from X: queued again with backoff, reason naming the status."""
    fx.fail_next(1, XFault.server_error(status))
    async with open_world(tmp_path, tg, fx) as world:
        await world.publish(article(1))
        before = datetime.now(UTC)
        await world.deliver()

        row = world.only("x")
        assert_requeued(row, after=before, reason_starts=f"X had a server error ({status})")
        assert row.due_at >= before + timedelta(seconds=20)
        assert fx.posts == []


async def test_x_dropped_connection_is_requeued(
    tmp_path: Path, tg: FakeTelegram, fx: FakeX, templates: Path
) -> None:
    """A connection X closes without an answer: queued again as 'could not reach X'."""
    fx.fail_next(1, XFault.drop())
    async with open_world(tmp_path, tg, fx) as world:
        await world.publish(article(1))
        before = datetime.now(UTC)
        await world.deliver()

        assert_requeued(world.only("x"), after=before, reason_starts="could not reach X")
        assert fx.posts == []


async def test_x_timeout_is_requeued(
    tmp_path: Path, tg: FakeTelegram, fx: FakeX, templates: Path
) -> None:
    """No answer from X within the timeout: queued again, the reason warning it may be posted."""
    fx.fail_next(1, XFault.slow(1.0))
    async with open_world(tmp_path, tg, fx, answer_within="300ms") as world:
        await world.publish(article(1))
        before = datetime.now(UTC)
        await world.deliver()

        row = world.only("x")
        assert_requeued(row, after=before, reason_starts=f"X at {fx.url} did not answer")
        assert "may have carried it out" in (row.reason or "")


async def test_x_timeout_then_duplicate_is_recorded_sent_once(
    tmp_path: Path, tg: FakeTelegram, fx: FakeX, templates: Path
) -> None:
    """A timed-out post that X did publish: the resend meets X's duplicate check and the
    delivery is recorded sent, with exactly one post on X."""
    fx.fail_next(1, XFault.slow(1.0))
    # The back-off keeps the first pass from resending at once: with none, a loaded machine
    # let that pass resend before the slow attempt landed, and the resend won the race.
    async with open_world(tmp_path, tg, fx, answer_within="300ms", retry_backoff="2s") as world:
        await world.publish(article(1))
        await world.deliver()
        assert world.only("x").attempts == 1
        # The resend must come after the slow attempt landed on X (however loaded the
        # machine), so that it meets the duplicate check rather than racing it.
        for _ in range(200):
            if fx.posts:
                break
            await asyncio.sleep(0.05)
        assert len(fx.posts) == 1, "the slow first attempt never reached X"
        for _ in range(200):
            await world.deliver()
            if world.only("x").attempts == 2:
                break
            await asyncio.sleep(0.05)

        row = world.only("x")
        assert row.state is DeliveryState.SENT and row.attempts == 2
        assert "posted by an earlier attempt" in (row.reason or "")
        assert len(fx.posts) == 1


# ------------------------------------------------------------------------------- X: permanent


async def test_x_bad_credentials_fail(
    tmp_path: Path, tg: FakeTelegram, fx: FakeX, templates: Path
) -> None:
    """Wrong X secrets: 401, failed naming the variables to check and none of the values."""
    wrong = {**KEYS, "consumer_secret": "cs-WRONG-secret-1234", "access_token_secret": "nope-ats"}
    async with open_world(tmp_path, tg, fx, x_keys=wrong) as world:
        await world.publish(article(1))
        await world.deliver()

        row = world.only("x")
        assert_failed(row, "X rejected the credentials (401 Unauthorized)")
        assert "X_CONSUMER_SECRET" in (row.reason or "")
        assert not any(value in (row.reason or "") for value in wrong.values())
        assert fx.attempts_to("/2/tweets")[0].status == 401
        assert_sent(world.only("telegram"))


async def test_x_duplicate_content_fails(
    tmp_path: Path, tg: FakeTelegram, fx: FakeX, templates: Path
) -> None:
    """A post X already has (the ledger was lost and rebuilt): 403 duplicate, failed, not resent."""
    first = tmp_path / "first"
    first.mkdir()
    shutil.copytree(tmp_path / "templates", first / "templates")
    async with open_world(first, tg, fx) as world:
        await world.publish(article(1))
        await world.deliver()
    assert len(fx.posts) == 1

    async with open_world(tmp_path, tg, fx) as world:
        await world.publish(article(1))
        await world.deliver()
        await world.deliver()

        row = world.only("x")
        assert_failed(row, "X refused the post as duplicate content")
        assert DUPLICATE in (row.reason or "")
        assert len(fx.posts) == 1 and row.attempts == 1


async def test_x_forbidden_fails(
    tmp_path: Path, tg: FakeTelegram, fx: FakeX, templates: Path
) -> None:
    """A 403 other than duplicate (an app without write permission): failed with X's words."""
    fx.fail_next(1, XFault.forbidden())
    async with open_world(tmp_path, tg, fx) as world:
        await world.publish(article(1))
        await world.deliver()

        row = world.only("x")
        assert_failed(row, "X refused the post (403 Forbidden)")
        assert NO_WRITE_PERMISSION in (row.reason or "")


# ----------------------------------------------------------------- retry_after is honoured


async def poll_until_sent(world: World, channel: str, *, deadline: float) -> None:
    """Run delivery passes back to back, as a busy daemon would, until everything is sent."""
    while time.monotonic() < deadline:
        await world.deliver()
        if all(row.state is DeliveryState.SENT for row in world.rows(channel)):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{channel} deliveries not sent in time: {world.rows(channel)}")


async def test_telegram_retry_after_is_never_answered_early(
    tmp_path: Path, tg: FakeTelegram, fx: FakeX, templates: Path
) -> None:
    """The fake's own clock: no sendMessage reaches it until retry_after after the 429."""
    retry_after = 1
    tg.fail_next(1, Fault.retry_after(retry_after))
    # Our own back-off at zero: only the platform's retry_after holds the retry back.
    async with open_world(tmp_path, tg, fx, retry_backoff="0s") as world:
        await world.publish(article(1), article(2))
        await poll_until_sent(world, "telegram", deadline=time.monotonic() + 10)

        attempts = sends(tg)
        assert [a.status for a in attempts] == [429, 200, 200]
        refused_at = attempts[0].at
        assert all(a.at >= refused_at + retry_after for a in attempts[1:]), [
            a.at - refused_at for a in attempts
        ]
        assert world.rows("telegram")[0].attempts == 2


async def test_x_rate_limit_reset_is_never_answered_early(
    tmp_path: Path, tg: FakeTelegram, fx: FakeX, templates: Path
) -> None:
    """The fake's own clock: no POST /2/tweets reaches it before the x-rate-limit-reset it sent."""
    fx.fail_next(1, XFault.rate_limited(reset_in=2))
    # Our own back-off at zero: only the reset X announced holds the retry back.
    async with open_world(tmp_path, tg, fx, retry_backoff="0s") as world:
        await world.publish(article(1))
        await poll_until_sent(world, "x", deadline=time.monotonic() + 10)

        attempts = fx.attempts_to("/2/tweets")
        assert [a.status for a in attempts] == [429, 201]
        # The header carried int(now + 2): the earliest moment X allows another post.
        reset = math.floor(attempts[0].at + 2)
        assert attempts[1].at >= reset, attempts[1].at - attempts[0].at
        assert len(fx.posts) == 1
