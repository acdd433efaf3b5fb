"""Threads and Facebook Pages, end to end below the command line: the pipeline delivers through
the real channels (aiohttp) to the local Graph fakes on 127.0.0.1, a real SQLite ledger records
each outcome, and the fakes' own records say what was published."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from bot.channels.base import Channel
from bot.channels.facebook import FacebookChannel
from bot.channels.threads import NOTE_PREFIX, ThreadsChannel
from bot.config import FacebookChannelConfig, ThreadsChannelConfig, load_config
from bot.ledger import Delivery, Ledger, LedgerInFlight
from bot.model import Article, DeliveryState
from bot.pipeline import PassReport, Pipeline
from bot.testing.facebook_server import FakeFacebook
from bot.testing.graph_server import GraphFault
from bot.testing.memory import MemorySource
from bot.testing.threads_server import FakeThreads, threads_count
from tests.integration.pipelines import started_pipeline

REPO = Path(__file__).resolve().parents[2]
THREADS_TOKEN = "THAAtest-threads-token-9f8e7d6c"
PAGE_TOKEN = "EAAGtest-page-token-1a2b3c4d"
PAGE_ID = "104000000000077"
PUBLISHED = datetime(2025, 9, 16, 10, 0, tzinfo=UTC)
LEAD = (
    "<p>新聞視界時報 記者 王秉程 整理報導</p>"
    "<p>高雄與波蘭姊妹市格丁尼亞的交流再度邁向新里程！由高雄市副市長羅達生率領市府團隊，"
    "於波蘭時間9月14日與格丁尼亞市政府正式簽署經濟合作備忘錄。🎉</p>"
)
LONG = "<p>" + "港口合作🚢擴大到綠能、智慧港埠與人才交流，預計投資新臺幣3.5億元。👍" * 40 + "</p>"


pytestmark = pytest.mark.usefixtures("loopback_only")


@pytest.fixture
async def th() -> AsyncIterator[FakeThreads]:
    async with FakeThreads(token=THREADS_TOKEN, image_processing=0.3) as server:
        yield server


@pytest.fixture
async def fb() -> AsyncIterator[FakeFacebook]:
    async with FakeFacebook(token=PAGE_TOKEN, page_id=PAGE_ID) as server:
        yield server


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    folder = tmp_path / "templates"
    shutil.copytree(REPO / "templates", folder)
    return folder


def article(n: int, *, summary_html: str = LEAD, image: str | None = None) -> Article:
    return Article(
        key=f"newsvision-{30000 + n}",
        url=f"https://news.example.tw/article/{30000 + n}?lang=zh-TW",
        title=f"高雄與格丁尼亞再升級！簽署經濟合作備忘錄（{n}）",
        summary_html=summary_html,
        published=PUBLISHED + timedelta(minutes=n),
        author="王秉程",
        categories=("城市外交", "投資理財"),
        image=image,
    )


@dataclass
class World:
    ledger: Ledger
    source: MemorySource
    channels: dict[str, Channel]
    pipeline: Pipeline

    async def publish(self, *articles: Article) -> None:
        self.source.articles = list(articles)
        report = await self.pipeline.poll("newsvision")
        assert report.ok and report.ingest is not None

    async def deliver(self) -> PassReport:
        return await self.pipeline.deliver_due()

    def rows(self, channel: str) -> list[Delivery]:
        return list(reversed(self.ledger.deliveries(channel=channel)))

    def only(self, channel: str) -> Delivery:
        (row,) = self.rows(channel)
        return row

    def due_now(self, channel: str) -> None:
        """Skip the backoff: what a later pass after the retry delay would see."""
        row = self.only(channel)
        self.ledger.retry(states=["uncertain", "failed"], now=datetime.now(UTC), ids=[row.id])
        if row.state is DeliveryState.QUEUED:
            with self.ledger.engine.begin() as conn:
                conn.exec_driver_sql(
                    "UPDATE deliveries SET due_at = ? WHERE id = ?",
                    (datetime.now(UTC) - timedelta(seconds=1), row.id),
                )


@contextlib.asynccontextmanager
async def open_world(
    tmp_path: Path,
    th: FakeThreads,
    fb: FakeFacebook,
    *,
    threads: dict[str, Any] | None = None,
    facebook: dict[str, Any] | None = None,
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
                "excerpt_length": 4000,
            }
        },
        "channels": {
            "threads": {
                "kind": "threads",
                "access_token": THREADS_TOKEN,
                "template": "threads.txt.j2",
                "api_url": th.url,
                "timeout": "2s",
                "rate": "off",
                "retry_backoff": "0s",
                "container_wait": "100ms",
                **(threads or {}),
            },
            "facebook": {
                "kind": "facebook",
                "page_id": PAGE_ID,
                "access_token": PAGE_TOKEN,
                "template": "facebook.txt.j2",
                "api_url": fb.url,
                "timeout": "2s",
                "rate": "off",
                "retry_backoff": "0s",
                **(facebook or {}),
            },
        },
    }
    path = tmp_path / "newsbot.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    config = load_config(path, environ={})
    ledger = Ledger.open(config.database)
    threads_config = config.channels["threads"]
    facebook_config = config.channels["facebook"]
    assert isinstance(threads_config, ThreadsChannelConfig)
    assert isinstance(facebook_config, FacebookChannelConfig)
    channels: dict[str, Channel] = {
        "threads": ThreadsChannel(threads_config, LedgerInFlight(ledger)),
        "facebook": FacebookChannel(facebook_config),
    }
    try:
        async with started_pipeline(config, ledger, channels) as (source, pipeline):
            yield World(ledger, source, channels, pipeline)
    finally:
        ledger.close()


def assert_no_secret(row: Delivery) -> None:
    for secret in (THREADS_TOKEN, PAGE_TOKEN):
        assert secret not in (row.reason or "") and secret not in (row.remote_id or "")


# ------------------------------------------------------------------------------ the happy path


async def test_both_networks_publish_with_links_intact(
    tmp_path: Path, th: FakeThreads, fb: FakeFacebook, templates: Path
) -> None:
    """Threads: a container, then its publish, the link in the text and as the link card, the
    permalink as receipt; Facebook: /feed with message and link, the post URL as receipt."""
    async with open_world(tmp_path, th, fb) as world:
        await world.publish(article(1), article(2))
        report = await world.deliver()

        assert (report.sent, report.failed) == (4, 0)
        assert [p.link_attachment for p in th.posts] == [
            "https://news.example.tw/article/30001?lang=zh-TW",
            "https://news.example.tw/article/30002?lang=zh-TW",
        ]
        for post in th.posts:
            assert post.link_attachment and post.link_attachment in post.text
            assert post.length <= 500
        first = world.rows("threads")[0]
        assert first.state is DeliveryState.SENT
        assert first.remote_id == th.posts[0].id
        assert first.remote_url == th.posts[0].permalink
        assert len(th.containers) == 2 and th.published_containers() == list(th.containers)
        assert [p.link for p in fb.posts] == [p.link_attachment for p in th.posts]
        assert all(p.link and p.link in p.message for p in fb.posts)
        row = world.rows("facebook")[1]
        assert row.remote_id == fb.posts[1].id
        assert row.remote_url == f"https://www.facebook.com/{fb.posts[1].id}"
        assert fb.posts[0].message.startswith("【高雄與格丁尼亞再升級")


async def test_threads_long_emoji_post_fits_as_threads_counts(
    tmp_path: Path, th: FakeThreads, fb: FakeFacebook, templates: Path
) -> None:
    """A long excerpt full of emoji is cut to 500 as the fake counts (emoji = UTF-8 bytes),
    which is fewer code points than 500; Facebook takes it whole."""
    async with open_world(tmp_path, th, fb) as world:
        await world.publish(article(1, summary_html=LONG))
        await world.deliver()

        (post,) = th.posts
        assert 450 < threads_count(post.text) <= 500
        assert len(post.text) < threads_count(post.text), "the emoji weigh more than one"
        assert world.only("threads").state is DeliveryState.SENT
        assert len(fb.posts[0].message) > 1000


async def test_threads_image_container_is_awaited_then_published(
    tmp_path: Path, th: FakeThreads, fb: FakeFacebook, templates: Path
) -> None:
    """media: true: an IMAGE container, published once Threads has processed it."""
    async with open_world(tmp_path, th, fb, threads={"media": True}) as world:
        await world.publish(article(1, image="https://news.example.tw/img/port.jpg"))
        await world.deliver()

        (post,) = th.posts
        assert (
            post.media_type == "IMAGE" and post.image_url == "https://news.example.tw/img/port.jpg"
        )
        assert post.link_attachment is None and "https://news.example.tw/article/30001" in post.text
        assert world.only("threads").state is DeliveryState.SENT


async def test_facebook_photo_post_and_fallback_to_a_link_post(
    tmp_path: Path, th: FakeThreads, fb: FakeFacebook, templates: Path
) -> None:
    """photo: true posts /photos with the text as caption; a photo Facebook cannot fetch
    becomes a link post instead (code 324), not a failure."""
    async with open_world(tmp_path, th, fb, facebook={"photo": True}) as world:
        await world.publish(
            article(1, image=fb.image_url), article(2, image=fb.url + "/missing.png")
        )
        await world.deliver()

        photo, link = fb.posts
        assert photo.photo_url == fb.image_url and photo.link is None
        assert "https://news.example.tw/article/30001" in photo.message
        assert (
            link.photo_url is None
            and link.link == "https://news.example.tw/article/30002?lang=zh-TW"
        )
        assert [r.state for r in world.rows("facebook")] == [DeliveryState.SENT] * 2
        assert [a.code for a in fb.attempts_to("/photos")] == [None, 324]


# --------------------------------------------------------------------------- errors → ledger


async def test_expired_tokens_fail_naming_the_setting_without_the_token(
    tmp_path: Path, th: FakeThreads, fb: FakeFacebook, templates: Path
) -> None:
    """Code 190: failed, the reason names access_token and never contains it."""
    th.expire_token()
    fb.expire_token()
    async with open_world(tmp_path, th, fb) as world:
        await world.publish(article(1))
        await world.deliver()

        for name in ("threads", "facebook"):
            row = world.only(name)
            assert row.state is DeliveryState.FAILED
            assert "code 190, subcode 463" in (row.reason or "")
            assert "access_token" in (row.reason or "")
            assert_no_secret(row)
        assert th.posts == [] and fb.posts == []


async def test_permission_errors_fail(
    tmp_path: Path, th: FakeThreads, fb: FakeFacebook, templates: Path
) -> None:
    """Code 10 (Threads) and 200 (a Page token without pages_manage_posts): failed."""
    th.fail_next(1, GraphFault.permission(10), path="/threads")
    fb.revoke_permission()
    async with open_world(tmp_path, th, fb) as world:
        await world.publish(article(1))
        await world.deliver()

        threads, facebook = world.only("threads"), world.only("facebook")
        assert threads.state is DeliveryState.FAILED and "(code 10)" in (threads.reason or "")
        assert facebook.state is DeliveryState.FAILED and "(code 200)" in (facebook.reason or "")
        assert "pages_manage_posts" in (facebook.reason or "")


@pytest.mark.parametrize("code", [4, 17, 32, 613])
async def test_facebook_throttling_waits_as_the_usage_header_says(
    tmp_path: Path, th: FakeThreads, fb: FakeFacebook, templates: Path, code: int
) -> None:
    """Codes 4/17/32/613: queued again, due after estimated_time_to_regain_access (here 5
    minutes) from X-Business-Use-Case-Usage, never before."""
    fb.fail_next(1, GraphFault.rate_limited(code, regain_minutes=5), path="/feed")
    async with open_world(tmp_path, th, fb) as world:
        await world.publish(article(1))
        before = datetime.now(UTC)
        await world.deliver()

        row = world.only("facebook")
        assert row.state is DeliveryState.QUEUED
        assert f"(code {code})" in (row.reason or "") and "throttling" in (row.reason or "")
        assert before + timedelta(minutes=5) <= row.due_at <= before + timedelta(minutes=6)
        assert world.only("threads").state is DeliveryState.SENT


async def test_threads_throttling_without_usage_header_waits_an_hour(
    tmp_path: Path, th: FakeThreads, fb: FakeFacebook, templates: Path
) -> None:
    """A throttled Threads publish (code 4) with no Business Use Case header: due an hour on."""
    th.fail_next(1, GraphFault.rate_limited(4), path="/threads_publish")
    async with open_world(tmp_path, th, fb) as world:
        await world.publish(article(1))
        before = datetime.now(UTC)
        await world.deliver()

        row = world.only("threads")
        assert row.state is DeliveryState.QUEUED and "(code 4)" in (row.reason or "")
        assert row.due_at >= before + timedelta(minutes=59)
        assert th.posts == []


async def test_server_errors_are_retried_and_then_sent(
    tmp_path: Path, th: FakeThreads, fb: FakeFacebook, templates: Path
) -> None:
    """HTTP 500 (code 1) and 503 (code 2): queued with the reason, sent on the next pass."""
    th.fail_next(1, GraphFault.server_error(500), path="/threads")
    fb.fail_next(1, GraphFault.server_error(503), path="/feed")
    async with open_world(tmp_path, th, fb) as world:
        await world.publish(article(1))
        await world.deliver()

        assert "passing failure (HTTP 500)" in (world.only("threads").reason or "")
        assert "passing failure (HTTP 503)" in (world.only("facebook").reason or "")
        assert {world.only(n).state for n in ("threads", "facebook")} == {DeliveryState.QUEUED}
        world.due_now("threads")
        world.due_now("facebook")
        await world.deliver()
        assert world.only("threads").state is DeliveryState.SENT
        assert world.only("facebook").state is DeliveryState.SENT
        assert len(th.posts) == 1 and len(fb.posts) == 1


async def test_invalid_request_fails_with_graphs_words(
    tmp_path: Path, th: FakeThreads, fb: FakeFacebook, templates: Path
) -> None:
    """Code 100 on the container: failed, with Threads' message."""
    th.fail_next(1, GraphFault.invalid("(#100) Param text is invalid"), path="/threads")
    async with open_world(tmp_path, th, fb) as world:
        await world.publish(article(1))
        await world.deliver()

        row = world.only("threads")
        assert row.state is DeliveryState.FAILED
        assert "Param text is invalid" in (row.reason or "")


async def test_facebook_lost_answer_is_uncertain(
    tmp_path: Path, th: FakeThreads, fb: FakeFacebook, templates: Path
) -> None:
    """The request reached Facebook, which posted it, but no answer came in time: uncertain
    (Facebook has no idempotency key), not resent; exactly one post on the Page."""
    fb.fail_next(1, GraphFault.slow(1.0), path="/feed")
    async with open_world(tmp_path, th, fb, facebook={"timeout": "300ms"}) as world:
        await world.publish(article(1))
        await world.deliver()
        await asyncio.sleep(1.0)
        await world.deliver()

        row = world.only("facebook")
        assert row.state is DeliveryState.UNCERTAIN
        assert "may have been carried out" in (row.reason or "")
        assert len(fb.posts) == 1


async def test_facebook_resend_refused_as_duplicate_confirms_the_earlier_post(
    tmp_path: Path, th: FakeThreads, fb: FakeFacebook, templates: Path
) -> None:
    """With resend_uncertain, a lost answer is resent; Facebook refuses the same message again
    (code 506) and the delivery is recorded sent, the Page keeping one post."""
    fb.fail_next(1, GraphFault.slow(1.0), path="/feed")
    settings = {"timeout": "300ms", "resend_uncertain": True}
    async with open_world(tmp_path, th, fb, facebook=settings) as world:
        await world.publish(article(1))
        await world.deliver()
        await asyncio.sleep(1.0)
        world.due_now("facebook")
        await world.deliver()

        assert world.only("facebook").state is DeliveryState.SENT
        assert len(fb.posts) == 1
        assert [a.code for a in fb.attempts_to("/feed")][-1] == 506


async def test_facebook_graph_version_is_the_configured_one(
    tmp_path: Path, th: FakeThreads, fb: FakeFacebook, templates: Path
) -> None:
    """graph_version: v19.0 puts /v19.0/ in every call."""
    async with open_world(tmp_path, th, fb, facebook={"graph_version": "v19.0"}) as world:
        await world.publish(article(1))
        await world.deliver()

        assert fb.attempts and all(a.path.startswith("/v19.0/") for a in fb.attempts)
        assert world.only("facebook").state is DeliveryState.SENT


# ---------------------------------------------------------------- Threads: never twice, quota


async def test_threads_dropped_publish_is_retried_with_the_same_container(
    tmp_path: Path, th: FakeThreads, fb: FakeFacebook, templates: Path
) -> None:
    """The publish call's connection drops: the container id stays on the delivery, which is
    retried (resend is safe); the retry finds the container FINISHED and publishes it, so one
    container and one post."""
    th.fail_next(1, GraphFault.drop(), path="/threads_publish")
    async with open_world(tmp_path, th, fb) as world:
        await world.publish(article(1))
        await world.deliver()

        row = world.only("threads")
        assert row.state is DeliveryState.QUEUED, row.reason
        (container,) = th.containers
        assert row.remote_id == NOTE_PREFIX + container
        world.due_now("threads")
        await world.deliver()

        assert world.only("threads").state is DeliveryState.SENT
        assert th.published_containers() == [container] and len(th.containers) == 1


async def test_threads_lost_answer_after_publishing_is_not_published_again(
    tmp_path: Path, th: FakeThreads, fb: FakeFacebook, templates: Path
) -> None:
    """Threads published but its answer came too late: the retry sees the container PUBLISHED
    and records the delivery sent without a second publish, under the post's own media id
    (found among the profile's threads by its text), which an edit, reply or delete needs."""
    th.fail_next(1, GraphFault.slow(1.0), path="/threads_publish")
    async with open_world(tmp_path, th, fb, threads={"timeout": "300ms"}) as world:
        await world.publish(article(1))
        await world.deliver()
        await asyncio.sleep(1.0)
        assert len(th.posts) == 1
        world.due_now("threads")
        await world.deliver()

        row = world.only("threads")
        assert row.state is DeliveryState.SENT
        assert len(th.posts) == 1 and len(th.attempts_to("/threads_publish")) == 1
        assert (row.remote_id, row.remote_url) == (th.posts[0].id, th.posts[0].permalink)


async def test_threads_crash_between_container_and_publish_then_retry_uncertain(
    tmp_path: Path, th: FakeThreads, fb: FakeFacebook, templates: Path
) -> None:
    """A process dies after noting the container and before publishing: its delivery becomes
    uncertain; `retry --uncertain` publishes that very container once. Had a process died after
    the publish but before recording it sent, the next retry publishes nothing."""
    async with open_world(tmp_path, th, fb) as world:
        await world.publish(article(1))
        channel = world.channels["threads"]
        assert isinstance(channel, ThreadsChannel)
        real_publish = channel._publish

        async def die(container: str, notes: list[str], **_: Any) -> Any:
            raise SystemExit("killed")

        channel._publish = die  # type: ignore[method-assign]
        (claimed,) = world.ledger.claim_due(
            datetime.now(UTC), holder="dead:1", limit=1, channels=["threads"]
        )
        post = world.pipeline.compose(
            article=claimed.article,
            excerpt=claimed.excerpt,
            source=claimed.source,
            channel="threads",
        )
        with pytest.raises(SystemExit):
            await channel.send(post)
        channel._publish = real_publish  # type: ignore[method-assign]
        world.ledger.mark_uncertain(
            claimed.id, reason="its holder died", now=datetime.now(UTC), holder="dead:1"
        )
        assert th.posts == [] and len(th.containers) == 1

        (container,) = th.containers
        for _ in range(2):
            world.ledger.retry(states=["uncertain"], now=datetime.now(UTC))
            await world.pipeline.deliver_due()
            assert world.only("threads").state is DeliveryState.SENT
            # As a death after the publish, before `sent` was recorded, would leave it.
            with world.ledger.engine.begin() as conn:
                conn.exec_driver_sql(
                    "UPDATE deliveries SET state='uncertain', remote_id=? WHERE channel='threads'",
                    (NOTE_PREFIX + container,),
                )

        assert len(th.posts) == 1 and th.published_containers() == list(th.containers)


async def test_threads_expired_container_is_replaced(
    tmp_path: Path, th: FakeThreads, fb: FakeFacebook, templates: Path
) -> None:
    """A container that expired before its retry: a new container, one post."""
    th.fail_next(1, GraphFault.drop(), path="/threads_publish")
    async with open_world(tmp_path, th, fb) as world:
        await world.publish(article(1))
        await world.deliver()
        (old,) = th.containers
        th.expire(old)
        world.due_now("threads")
        await world.deliver()

        assert world.only("threads").state is DeliveryState.SENT
        assert len(th.containers) == 2 and th.published_containers() != [old]
        assert len(th.posts) == 1


async def test_threads_quota_used_up_waits_without_making_a_container(
    tmp_path: Path, th: FakeThreads, fb: FakeFacebook, templates: Path
) -> None:
    """threads_publishing_limit says the quota is used (other apps count too): queued for
    later, no container made."""
    th.quota_total = 1
    async with open_world(tmp_path, th, fb) as world:
        await world.publish(article(1), article(2))
        before = datetime.now(UTC)
        await world.deliver()

        first, second = world.rows("threads")
        assert first.state is DeliveryState.SENT
        assert second.state is DeliveryState.QUEUED
        assert "publishing quota (1 of 1" in (second.reason or "")
        assert second.due_at >= before + timedelta(minutes=14)
        assert len(th.containers) == 1


async def test_threads_server_refuses_publishing_a_container_twice(th: FakeThreads) -> None:
    """The fake itself: a second publish of one container is refused, and the post is there
    once (the rule the channel's resume logic relies on)."""
    base = f"{th.url}/v1.0/me"
    async with aiohttp.ClientSession() as session:
        form = {"media_type": "TEXT", "text": "高雄港 🚢", "access_token": THREADS_TOKEN}
        async with session.post(f"{base}/threads", data=form) as response:
            container = (await response.json())["id"]
        answers = []
        for _ in range(2):
            publish = {"creation_id": container, "access_token": THREADS_TOKEN}
            async with session.post(f"{base}/threads_publish", data=publish) as response:
                answers.append((response.status, await response.json()))
    assert answers[0][0] == 200
    assert answers[1][0] == 400 and answers[1][1]["error"]["code"] == 100
    assert "fbtrace_id" in answers[1][1]["error"]
    assert len(th.posts) == 1


# -------------------------------------------------------------------- check --online, tokens


async def test_verify_reads_profile_quota_and_page_without_posting(
    tmp_path: Path, th: FakeThreads, fb: FakeFacebook, templates: Path
) -> None:
    """verify(): the Threads username and quota, the Page's name; nothing published."""
    async with open_world(tmp_path, th, fb) as world:
        threads, facebook = world.channels["threads"], world.channels["facebook"]
        assert isinstance(threads, ThreadsChannel) and isinstance(facebook, FacebookChannel)
        assert await threads.verify() == (
            f"@newsvision.tw (id {th.user_id}), 0 of 250 posts in the last 24 h"
        )
        assert await facebook.verify() == f"新聞視界 News Vision (page {PAGE_ID})"
    assert th.containers == {} and fb.posts == []


async def test_threads_token_refresh_returns_a_new_long_lived_token(
    tmp_path: Path, th: FakeThreads, fb: FakeFacebook, templates: Path
) -> None:
    """refresh_token(): GET /refresh_access_token with th_refresh_token; the new token and its
    lifetime come back."""
    async with open_world(tmp_path, th, fb) as world:
        channel = world.channels["threads"]
        assert isinstance(channel, ThreadsChannel)
        token, lifetime = await channel.refresh_token()
    assert token == th.token != THREADS_TOKEN
    assert lifetime == 5_184_000 and th.refreshed == [THREADS_TOKEN]
