"""CMS webhooks through the real listener on 127.0.0.1: signatures, timestamps, replays, bodies,
enrichment, and, with a real pipeline and SQLite ledger, idempotency and push-to-post latency."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr

from bot.compose.length import TELEGRAM_MESSAGE, X_POST
from bot.compose.render import Renderer
from bot.config import HealthConfig, WebhookSourceConfig, load_config
from bot.ledger import Ledger
from bot.listener import Listener
from bot.metrics import Metrics
from bot.model import Article, Post, Receipt
from bot.pipeline import Pipeline
from bot.sources.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookReceiver,
    sign,
    signed_headers,
)
from bot.testing.memory import MemoryChannel

REPO = Path(__file__).resolve().parents[2]
SECRET = "cms-webhook-secret-0123456789abcdef"
NOW = datetime(2025, 9, 16, 10, 0, tzinfo=UTC)
TAIPEI = timezone(timedelta(hours=8))

ARTICLE = {
    "id": "20051",
    "url": "https://news.example.tw/article/20051?utm_source=cms",
    "title": "高雄與格丁尼亞再升級！簽署經濟合作備忘錄",
    "summary": (
        "<p>新聞視界時報 記者 王秉程 整理報導</p>"
        "<p>高雄與波蘭姊妹市格丁尼亞的交流再度邁向新里程！</p>"
    ),
    "published": "2025-09-16T17:30:00+08:00",
    "categories": ["地方", "國際交流"],
    "image": "https://news.example.tw/images/20051.jpg",
}


def body_of(document: object) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


def config(**overrides: object) -> WebhookSourceConfig:
    return WebhookSourceConfig.model_validate(
        {"kind": "webhook", "name": "cms", "secret": SECRET, **overrides}
    )


class Recorder:
    """The accept callable: records what it is given, returns the first key."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[Article]]] = []

    async def __call__(self, name: str, articles: Sequence[Article]) -> str:
        self.calls.append((name, list(articles)))
        return articles[0].key


class Push:
    """A listener with one webhook source, and a client that signs (or not) what it sends."""

    def __init__(self, listener: Listener, http: aiohttp.ClientSession) -> None:
        self.listener = listener
        self.http = http

    async def send(
        self,
        body: bytes,
        *,
        timestamp: int | None = None,
        secret: str = SECRET,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, object]]:
        stamp = int(NOW.timestamp()) if timestamp is None else timestamp
        sent = signed_headers(secret, body, timestamp=stamp) if headers is None else headers
        async with self.http.post(
            self.listener.url + "/hooks/cms", data=body, headers=sent
        ) as response:
            return response.status, await response.json()


async def start(
    receiver: WebhookReceiver, metrics: Metrics | None = None
) -> tuple[Listener, Metrics]:
    used = metrics or Metrics()
    listener = Listener(
        HealthConfig.model_construct(listen="127.0.0.1:0"),
        health=_healthy,
        metrics=used,
        receivers={receiver.name: receiver},
    )
    await listener.start()
    return listener, used


async def _healthy() -> tuple[bool, str]:
    return True, "ok"


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def push(recorder: Recorder) -> AsyncIterator[Push]:
    receiver = WebhookReceiver(config(), recorder, clock=lambda: NOW)
    listener, _ = await start(receiver)
    async with aiohttp.ClientSession() as http:
        yield Push(listener, http)
    await listener.stop()


# ---------------------------------------------------------------------------------- authentic


async def test_signed_push_is_202_with_the_key_and_the_article(
    push: Push, recorder: Recorder
) -> None:
    """A correctly signed push answers 202 {"key"} and hands accept the article as sent."""
    status, answer = await push.send(body_of(ARTICLE))
    assert (status, answer) == (202, {"key": "20051"})
    [(name, [article])] = recorder.calls
    assert name == "cms"
    assert article.key == "20051"
    assert article.url == "https://news.example.tw/article/20051"  # canonical: no utm_*
    assert article.title == "高雄與格丁尼亞再升級！簽署經濟合作備忘錄"
    assert article.categories == ("地方", "國際交流")
    assert article.published == datetime(2025, 9, 16, 9, 30, tzinfo=UTC)
    assert article.image == "https://news.example.tw/images/20051.jpg"
    assert "格丁尼亞" in article.summary_html


async def test_without_id_the_key_is_the_canonical_url(push: Push, recorder: Recorder) -> None:
    """No id: the article's key is its canonical URL (tracking parameters removed)."""
    document = {k: v for k, v in ARTICLE.items() if k != "id"}
    status, answer = await push.send(body_of(document))
    assert status == 202
    assert answer == {"key": "https://news.example.tw/article/20051"}


async def test_naive_published_time_is_taken_as_utc(push: Push, recorder: Recorder) -> None:
    """A published time without an offset is read as UTC (documented)."""
    status, _ = await push.send(body_of({**ARTICLE, "published": "2025-09-16T09:30:00"}))
    assert status == 202
    assert recorder.calls[0][1][0].published == datetime(2025, 9, 16, 9, 30, tzinfo=UTC)


async def test_naive_time_uses_the_zone_the_receiver_was_given(recorder: Recorder) -> None:
    """Given timezone=Asia/Taipei, a naive published time is read in it."""
    receiver = WebhookReceiver(config(), recorder, clock=lambda: NOW, timezone=TAIPEI)
    listener, _ = await start(receiver)
    try:
        async with aiohttp.ClientSession() as http:
            status, _ = await Push(listener, http).send(
                body_of({**ARTICLE, "published": "2025-09-16T17:30:00"})
            )
    finally:
        await listener.stop()
    assert status == 202
    assert recorder.calls[0][1][0].published == datetime(2025, 9, 16, 9, 30, tzinfo=UTC)


async def test_several_signatures_are_accepted_while_rotating(
    push: Push, recorder: Recorder
) -> None:
    """A sender may send an old-secret and a new-secret signature, comma-separated."""
    body = body_of(ARTICLE)
    stamp = int(NOW.timestamp())
    headers = {
        TIMESTAMP_HEADER: str(stamp),
        SIGNATURE_HEADER: f"{sign('the-new-secret', stamp, body)}, {sign(SECRET, stamp, body)}",
    }
    status, _ = await push.send(body, headers=headers)
    assert status == 202


# ------------------------------------------------------------------------------ not authentic


async def test_wrong_signature_is_401_and_records_nothing(push: Push, recorder: Recorder) -> None:
    """Signed with another secret: 401, and accept is never called."""
    status, answer = await push.send(body_of(ARTICLE), secret="not-the-secret")
    assert status == 401
    assert "signature does not match" in str(answer["error"])
    assert recorder.calls == []


async def test_missing_signature_is_401(push: Push, recorder: Recorder) -> None:
    """No signature header (or no timestamp header): 401, nothing recorded."""
    stamp = str(int(NOW.timestamp()))
    status, _ = await push.send(body_of(ARTICLE), headers={TIMESTAMP_HEADER: stamp})
    assert status == 401
    status, _ = await push.send(body_of(ARTICLE), headers={SIGNATURE_HEADER: "sha256=00"})
    assert status == 401
    assert recorder.calls == []


async def test_body_changed_after_signing_is_401(push: Push, recorder: Recorder) -> None:
    """The signature covers the raw body: one changed byte makes it fail."""
    body = body_of(ARTICLE)
    headers = signed_headers(SECRET, body, timestamp=int(NOW.timestamp()))
    status, _ = await push.send(body.replace(b"20051", b"20052"), headers=headers)
    assert status == 401
    assert recorder.calls == []


async def test_stale_timestamp_is_401(push: Push, recorder: Recorder) -> None:
    """Correctly signed but older than the tolerance (5 min): 401, nothing recorded."""
    status, answer = await push.send(body_of(ARTICLE), timestamp=int(NOW.timestamp()) - 301)
    assert status == 401
    assert "away from our clock" in str(answer["error"])
    status, _ = await push.send(body_of(ARTICLE), timestamp=int(NOW.timestamp()) + 301)
    assert status == 401
    assert recorder.calls == []


async def test_timestamp_inside_the_tolerance_is_accepted(push: Push) -> None:
    """A sender's clock four minutes off is still within the tolerance."""
    status, _ = await push.send(body_of(ARTICLE), timestamp=int(NOW.timestamp()) - 240)
    assert status == 202


async def test_exact_replay_is_401(push: Push, recorder: Recorder) -> None:
    """The same signed request sent again within the window is refused; accept ran once."""
    body = body_of(ARTICLE)
    headers = signed_headers(SECRET, body, timestamp=int(NOW.timestamp()))
    first, _ = await push.send(body, headers=headers)
    second, answer = await push.send(body, headers=headers)
    assert (first, second) == (202, 401)
    assert "replay" in str(answer["error"])
    assert len(recorder.calls) == 1


async def test_replay_window_is_forgotten_after_the_tolerance(recorder: Recorder) -> None:
    """Signatures are remembered only while their timestamp could still be accepted."""
    clock = [NOW]
    receiver = WebhookReceiver(config(), recorder, clock=lambda: clock[0])
    listener, _ = await start(receiver)
    try:
        async with aiohttp.ClientSession() as http:
            client = Push(listener, http)
            await client.send(body_of(ARTICLE))
            assert len(receiver._seen) == 1
            clock[0] = NOW + timedelta(minutes=6)
            status, _ = await client.send(body_of(ARTICLE), timestamp=int(clock[0].timestamp()))
    finally:
        await listener.stop()
    assert status == 202
    assert len(receiver._seen) == 1  # the old one was pruned


# ---------------------------------------------------------------------------------- bad bodies


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"url": "https://news.example.tw/a", "title": ', "not valid JSON"),
        (b'["https://news.example.tw/a"]', "must be a JSON object"),
        (body_of({"title": "沒有網址"}), "url is required"),
        (body_of({"url": "/article/1", "title": "相對網址"}), "absolute http(s) URL"),
        (body_of({**ARTICLE, "published": "9/16/2025"}), "published must be ISO 8601"),
        (body_of({**ARTICLE, "categories": "地方"}), "categories must be a list"),
        (body_of({**ARTICLE, "title": 42}), "title must be a string"),
        (b"\xff\xfe not utf-8", "UTF-8"),
    ],
    ids=["malformed", "array", "no-url", "relative-url", "date", "categories", "title", "bytes"],
)
async def test_malformed_body_is_400_with_the_reason(
    push: Push, recorder: Recorder, body: bytes, message: str
) -> None:
    """A correctly signed body that is not a valid push: 400 {"error": reason}, nothing recorded."""
    status, answer = await push.send(body)
    assert status == 400
    assert message in str(answer["error"])
    assert recorder.calls == []


async def test_title_missing_without_enrichment_is_400(push: Push, recorder: Recorder) -> None:
    """Only a url, and no way to fetch the page: 400 saying a title is required."""
    status, answer = await push.send(body_of({"url": "https://news.example.tw/article/1"}))
    assert status == 400
    assert answer["error"] == "title is required unless the page can be fetched"
    assert recorder.calls == []


# ---------------------------------------------------------------------------------- enrichment


async def test_only_url_is_enriched_from_the_page(recorder: Recorder) -> None:
    """Only a url: the enrich callable fills in the article; the key stays the push's."""
    seen: list[Article] = []

    async def enrich(article: Article) -> Article:
        seen.append(article)
        return dataclasses.replace(
            article,
            key="whatever-the-page-says",
            title="高雄迎來第43座姊妹市！",
            summary_html="<p>高雄市再拓國際版圖！</p>",
            categories=("城市外交",),
        )

    receiver = WebhookReceiver(config(), recorder, clock=lambda: NOW, enrich=enrich)
    listener, _ = await start(receiver)
    try:
        async with aiohttp.ClientSession() as http:
            status, answer = await Push(listener, http).send(
                body_of({"url": "https://news.example.tw/article/20049"})
            )
    finally:
        await listener.stop()
    assert status == 202
    assert answer == {"key": "https://news.example.tw/article/20049"}
    assert seen[0].url == "https://news.example.tw/article/20049" and seen[0].title == ""
    assert seen[0].published is None  # left for the page to say
    article = recorder.calls[0][1][0]
    assert article.title == "高雄迎來第43座姊妹市！"
    assert article.published == NOW  # the page did not say either: the time of the push
    assert article.key == "https://news.example.tw/article/20049"
    assert article.categories == ("城市外交",)


async def test_a_push_with_a_title_is_not_enriched(recorder: Recorder) -> None:
    """With a title, the push is recorded as sent, without fetching the page (fast path)."""
    calls: list[Article] = []

    async def enrich(article: Article) -> Article:
        calls.append(article)
        return article

    receiver = WebhookReceiver(config(), recorder, clock=lambda: NOW, enrich=enrich)
    listener, _ = await start(receiver)
    try:
        async with aiohttp.ClientSession() as http:
            status, _ = await Push(listener, http).send(body_of(ARTICLE))
    finally:
        await listener.stop()
    assert status == 202
    assert calls == []


async def test_page_that_cannot_be_fetched_is_502_and_may_be_retried(recorder: Recorder) -> None:
    """Enrichment failing is 502; the same signed request may then be sent again."""
    attempts: list[int] = []

    async def enrich(article: Article) -> Article:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("HTTP 503 from https://news.example.tw/article/1")
        return dataclasses.replace(article, title="第二次就成功")

    receiver = WebhookReceiver(config(), recorder, clock=lambda: NOW, enrich=enrich)
    listener, _ = await start(receiver)
    body = body_of({"url": "https://news.example.tw/article/1"})
    headers = signed_headers(SECRET, body, timestamp=int(NOW.timestamp()))
    try:
        async with aiohttp.ClientSession() as http:
            client = Push(listener, http)
            first, answer = await client.send(body, headers=headers)
            second, _ = await client.send(body, headers=headers)
    finally:
        await listener.stop()
    assert first == 502
    assert "could not be fetched" in str(answer["error"])
    assert second == 202
    assert recorder.calls[0][1][0].title == "第二次就成功"


async def test_page_without_a_title_is_400(recorder: Recorder) -> None:
    """Enrichment that finds no title either: 400, nothing recorded."""

    async def enrich(article: Article) -> Article:
        return article

    receiver = WebhookReceiver(config(), recorder, clock=lambda: NOW, enrich=enrich)
    listener, _ = await start(receiver)
    try:
        async with aiohttp.ClientSession() as http:
            status, answer = await Push(listener, http).send(
                body_of({"url": "https://news.example.tw/article/1"})
            )
    finally:
        await listener.stop()
    assert status == 400
    assert "gave no title" in str(answer["error"])
    assert recorder.calls == []


# ------------------------------------------------------------------------- secrets and metrics


async def test_secret_and_signatures_never_reach_the_log(
    push: Push, caplog: pytest.LogCaptureFixture
) -> None:
    """Neither the secret nor any signature appears in a log line, accepted or refused."""
    caplog.set_level(logging.DEBUG)
    body = body_of(ARTICLE)
    headers = signed_headers(SECRET, body, timestamp=int(NOW.timestamp()))
    await push.send(body, headers=headers)
    await push.send(body, headers=headers)  # replay
    await push.send(body, secret="wrong-secret-xyz")
    text = caplog.text
    assert SECRET not in text
    assert headers[SIGNATURE_HEADER].removeprefix("sha256=") not in text
    assert "refused" in text  # the refusals are logged, just without secrets


async def test_pushes_are_counted_accepted_and_rejected(recorder: Recorder) -> None:
    """newsbot_push_requests_total counts an accepted push and a refused one."""
    receiver = WebhookReceiver(config(), recorder, clock=lambda: NOW)
    listener, metrics = await start(receiver)
    try:
        async with aiohttp.ClientSession() as http:
            client = Push(listener, http)
            await client.send(body_of(ARTICLE))
            await client.send(body_of(ARTICLE), secret="nope")
    finally:
        await listener.stop()
    for result in ("accepted", "rejected"):
        count = metrics.registry.get_sample_value(
            "newsbot_push_requests_total", {"source": "cms", "result": result}
        )
        assert count == 1


# ------------------------------------------------------- a real pipeline: idempotency, latency

PIPELINE_CONFIG = """\
timezone: Asia/Taipei
database: sqlite:///ledger.db
health:
  listen: 127.0.0.1:0
templates: {templates}
sources:
  cms:
    kind: webhook
    secret: ${{CMS_SECRET}}
channels:
  telegram:
    kind: console
    template: telegram.html.j2
  x:
    kind: console
    template: x.txt.j2
"""


class TimedChannel(MemoryChannel):
    """A MemoryChannel that notes when each post arrived."""

    def __init__(self, name: str, *args: object, **kwargs: object) -> None:
        super().__init__(name, *args, **kwargs)  # type: ignore[arg-type]
        self.arrived: list[float] = []
        self.got = asyncio.Event()

    async def send(self, post: Post) -> Receipt:
        receipt = await super().send(post)
        self.arrived.append(time.perf_counter())
        self.got.set()
        return receipt


async def test_same_article_twice_is_one_delivery_per_channel_and_fast(tmp_path: Path) -> None:
    """Through a real pipeline and SQLite ledger: pushed twice (re-signed), one post per
    channel; the first post reaches the channel well under a second after the POST."""
    path = tmp_path / "newsbot.yaml"
    path.write_text(PIPELINE_CONFIG.format(templates=REPO / "templates"), encoding="utf-8")
    settings = load_config(path, environ={"CMS_SECRET": SECRET})
    ledger = Ledger.open(settings.database)
    telegram = TimedChannel("telegram", TELEGRAM_MESSAGE)
    x = TimedChannel("x", X_POST)
    pipeline = Pipeline(
        settings,
        ledger,
        {},
        {"telegram": telegram, "x": x},
        Renderer(settings.templates, settings.tz),
        holder="test:1",
    )
    wake = asyncio.Event()

    async def deliver_when_woken() -> None:
        while True:
            await wake.wait()
            wake.clear()
            await pipeline.deliver_due()

    async def accept(name: str, articles: Sequence[Article]) -> str:
        # What the daemon does: record at once, then wake delivery.
        await pipeline.accept(name, articles)
        wake.set()
        return articles[0].key

    source = settings.sources["cms"]
    assert isinstance(source, WebhookSourceConfig)
    delivering = asyncio.create_task(deliver_when_woken())
    receiver = WebhookReceiver(source, accept)
    listener, _ = await start(receiver)
    document = {**ARTICLE, "published": datetime.now(UTC).isoformat(timespec="seconds")}
    try:
        async with aiohttp.ClientSession() as http:
            client = Push(listener, http)
            body = body_of(document)
            stamp = int(time.time())
            posted = time.perf_counter()
            status, _ = await client.send(
                body, headers=signed_headers(SECRET, body, timestamp=stamp)
            )
            assert status == 202
            await asyncio.wait_for(asyncio.gather(telegram.got.wait(), x.got.wait()), 5)
            latency = max(telegram.arrived[0], x.arrived[0]) - posted
            # The CMS sends it again (a retry, a re-save): signed anew, same article.
            status, answer = await client.send(
                body, headers=signed_headers(SECRET, body, timestamp=stamp - 1)
            )
            assert (status, answer) == (202, {"key": "20051"})
            await asyncio.sleep(0.05)
            await pipeline.deliver_due()
    finally:
        await listener.stop()
        delivering.cancel()
        await asyncio.gather(delivering, return_exceptions=True)
        ledger.close()
    print(f"\nwebhook POST → post received by both channels: {latency * 1000:.1f} ms")
    assert len(telegram.posts) == 1 and len(x.posts) == 1
    assert "高雄與格丁尼亞再升級" in telegram.posts[0].text
    assert latency < 1.0


async def test_only_url_with_the_real_enricher_reads_the_page(recorder: Recorder) -> None:
    """With bot.sources.enrich.Enricher.fill, an only-url push gets the page's own title."""
    from bot.sources.enrich import Enricher
    from bot.sources.fetch import Fetcher
    from bot.testing import LOCAL_FAKES
    from bot.testing.feed_server import FeedServer

    page = (Path(__file__).parents[1] / "fixtures" / "pages" / "article.html").read_bytes()
    async with FeedServer() as site, Fetcher(timeout=5.0, policy=LOCAL_FAKES) as fetcher:
        url = site.publish("/article/20051", page, content_type="text/html; charset=utf-8")
        enricher = Enricher(fetcher, per_host_delay=0.0)
        receiver = WebhookReceiver(
            config(allow_private=["127.0.0.1"]), recorder, clock=lambda: NOW, enrich=enricher.fill
        )
        listener, _ = await start(receiver)
        try:
            async with aiohttp.ClientSession() as http:
                status, answer = await Push(listener, http).send(body_of({"url": url}))
        finally:
            await listener.stop()
    assert status == 202, answer
    article = recorder.calls[0][1][0]
    assert article.title.startswith("高雄 × 格丁尼亞再升級")
    assert article.key == url


async def test_a_pushed_title_is_plain_text(push: Push, recorder: Recorder) -> None:
    """A JSON title is text: a headline about the <script> tag arrives as written (entities
    decoded); rendering escapes it."""
    status, _ = await push.send(body_of({**ARTICLE, "title": "使用 <script> 標籤 &amp; 其他"}))
    assert status == 202
    [(_, [article])] = recorder.calls
    assert article.title == "使用 <script> 標籤 & 其他"


# ------------------------------------------------------------------------------ fetch policy


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.2:8080/secret",
        "http://169.254.169.254/latest/meta-data/",
        "http://admin:hunter2@news.example.tw/article/20051",
    ],
)
async def test_push_linking_where_the_source_may_not_go_is_refused(
    push: Push, recorder: Recorder, url: str
) -> None:
    """A signed push whose link is internal or carries a password is answered 400 with the
    reason (never repeating the password) and nothing is recorded or fetched."""
    status, answer = await push.send(body_of({**ARTICLE, "url": url}))
    assert status == 400
    assert "not posted" in answer["error"] and "hunter2" not in answer["error"]
    assert recorder.calls == []


async def test_a_receiver_with_an_empty_secret_accepts_nothing(recorder: Recorder) -> None:
    """Even built around an empty secret (config refuses one), a push signed with '' is 401."""
    settings = WebhookSourceConfig.model_construct(
        kind="webhook", name="cms", secret=SecretStr(""), tolerance=timedelta(minutes=5)
    )
    listener, _ = await start(WebhookReceiver(settings, recorder, clock=lambda: NOW))
    try:
        async with aiohttp.ClientSession() as http:
            status, answer = await Push(listener, http).send(body_of(ARTICLE), secret="")
    finally:
        await listener.stop()
    assert status == 401 and "no secret" in str(answer)
    assert recorder.calls == []
