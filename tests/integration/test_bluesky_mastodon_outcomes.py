"""Bluesky and Mastodon faults, end to end below the command line: the pipeline delivers through
the real atproto and Mastodon.py clients to the local fakes on 127.0.0.1, and a real SQLite
ledger records the outcome. Each test shows the delivery state and reason a fault leaves."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.channels.base import Channel
from bot.channels.bluesky import BlueskyChannel
from bot.channels.mastodon import MastodonChannel
from bot.compose.length import LengthRule
from bot.config import BlueskyChannelConfig, MastodonChannelConfig, load_config
from bot.errors import PermanentError
from bot.ledger import Ledger
from bot.model import DeliveryState
from bot.testing import LOCAL_FAKES, bluesky_server
from bot.testing.bluesky_server import FakeBluesky
from bot.testing.faults import Fault
from bot.testing.mastodon_server import FakeMastodon, countable_length
from bot.testing.x_server import tiny_png
from tests.integration.pipelines import started_pipeline
from tests.integration.test_delivery_outcomes import (
    BYLINE,
    REPO,
    World,
    article,
    assert_failed,
    assert_requeued,
    assert_sent,
    loopback_only,
)

__all__ = ["loopback_only"]  # the fixture, imported so that it applies here too

PASSWORD = "TEST-bsky-app-password"
TOKEN = "TEST-mastodon-token"
CREATE = "com.atproto.repo.createRecord"
STATUSES = "/api/v1/statuses"


@pytest.fixture
async def bsky() -> AsyncIterator[FakeBluesky]:
    async with FakeBluesky(app_password=PASSWORD) as server:
        yield server


@pytest.fixture
async def masto() -> AsyncIterator[FakeMastodon]:
    async with FakeMastodon(access_token=TOKEN) as server:
        yield server


class Miscounting(BlueskyChannel):
    def rule(self, *, has_image: bool) -> LengthRule:
        return LengthRule("bluesky", 100_000)


class MiscountingMastodon(MastodonChannel):
    def rule(self, *, has_image: bool) -> LengthRule:
        return LengthRule("mastodon", 100_000)


@contextlib.asynccontextmanager
async def open_world(
    tmp_path: Path,
    bsky: FakeBluesky,
    masto: FakeMastodon,
    *,
    password: str = PASSWORD,
    token: str = TOKEN,
    answer_within: str = "2s",
    retry_backoff: str = "30s",
    full: bool = False,
    miscount: bool = False,
) -> AsyncIterator[World]:
    folder = tmp_path / "templates"
    if not folder.exists():
        shutil.copytree(REPO / "templates", folder)
        (folder / "full.txt.j2").write_text(
            "{{ article.title }} {{ article.summary }} {{ article.summary }} {{ link }}\n",
            encoding="utf-8",
        )
    common: dict[str, Any] = {
        "timeout": answer_within,
        "rate": "100/s",
        "burst": 10,
        "retry_backoff": retry_backoff,
    }
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
            "bluesky": {
                "kind": "bluesky",
                "handle": bsky.handle,
                "app_password": password,
                "pds_url": bsky.url,
                "template": "full.txt.j2" if full else "bluesky.txt.j2",
                **common,
            },
            "mastodon": {
                "kind": "mastodon",
                "instance_url": masto.url,
                "access_token": token,
                "template": "full.txt.j2" if full else "mastodon.txt.j2",
                "media": True,
                **common,
            },
        },
    }
    path = tmp_path / "newsbot.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    config = load_config(path, environ={})
    b_config, m_config = config.channels["bluesky"], config.channels["mastodon"]
    assert isinstance(b_config, BlueskyChannelConfig)
    assert isinstance(m_config, MastodonChannelConfig)
    channels: dict[str, Channel] = {
        "bluesky": (Miscounting if miscount else BlueskyChannel).from_config(
            b_config, image_policy=LOCAL_FAKES
        ),
        "mastodon": (MiscountingMastodon if miscount else MastodonChannel).from_config(
            m_config, image_policy=LOCAL_FAKES
        ),
    }
    ledger = Ledger.open(config.database)
    try:
        async with started_pipeline(config, ledger, channels) as (source, pipeline):
            yield World(config, ledger, source, channels, pipeline)
    finally:
        ledger.close()


# ------------------------------------------------------------------------------ the happy path


async def test_both_post_with_facets_card_and_media(
    tmp_path: Path, bsky: FakeBluesky, masto: FakeMastodon
) -> None:
    """One article: a Bluesky post whose link facet (CJK before it) covers the shown link and
    points at the whole URL, a card with an uploaded thumbnail; a Mastodon status with its image;
    receipts with remote id and URL."""
    image = bsky.serve_image("photo.png", tiny_png())
    async with open_world(tmp_path, bsky, masto) as world:
        await world.publish(dataclasses.replace(article(1), image=image))
        report = await world.deliver()

        assert (report.sent, report.failed) == (2, 0)
        (post,) = bsky.posts
        url = article(1).url
        facets = post.facet_texts()
        assert ("link", "news.example.tw/article/2000...", url) in facets
        assert [(k, c) for k, c, _ in facets if k == "tag"] == [
            ("tag", "#城市外交"),
            ("tag", "#投資理財"),
        ]
        facet = next(f for f in post.record["facets"] if "uri" in f["features"][0])
        code_points = post.text.index("news.example.tw")
        assert facet["index"]["byteStart"] == len(post.text[:code_points].encode()) != code_points
        card = post.record["embed"]["external"]
        assert card["uri"] == url and card["thumb"]["ref"]["$link"] in bsky.blobs
        row = world.only("bluesky")
        assert_sent(row)
        assert row.remote_id == post.uri
        assert (
            row.remote_url
            == f"https://bsky.app/profile/{bsky.handle}/post/{post.uri.rsplit('/', 1)[1]}"
        )
        (status,) = masto.statuses
        assert url in status.text and len(status.media_ids) == 1
        assert masto.media[status.media_ids[0]][2] == article(1).title
        assert world.only("mastodon").remote_url == f"{masto.url}/@newsvision/{status.id}"


async def test_bluesky_session_is_reused_and_refreshed(
    tmp_path: Path, bsky: FakeBluesky, masto: FakeMastodon
) -> None:
    """Three posts, one login; a token the PDS calls expired is refreshed (no new login); once
    even the refresh token is revoked, one new login."""
    async with open_world(tmp_path, bsky, masto) as world:
        await world.publish(article(1), article(2), article(3))
        await world.deliver()
        assert (bsky.logins, bsky.refreshes, len(bsky.posts)) == (1, 0, 3)

        bsky.expire_sessions()
        await world.publish(article(4))
        await world.deliver()
        assert (bsky.logins, bsky.refreshes, len(bsky.posts)) == (1, 1, 4)

        bsky.revoke_sessions()
        await world.publish(article(5))
        await world.deliver()
        assert (bsky.logins, len(bsky.posts)) == (2, 5)
        assert all(row.state is DeliveryState.SENT for row in world.rows("bluesky"))


# --------------------------------------------------------------------------------- Bluesky


async def test_bluesky_rate_limit_requeues_until_ratelimit_reset(
    tmp_path: Path, bsky: FakeBluesky, masto: FakeMastodon
) -> None:
    """429 with ratelimit-reset: queued, due no earlier than the reset; Mastodon still sent."""
    bsky.fail_next(1, Fault.rate_limited(reset_in=120), method=CREATE)
    async with open_world(tmp_path, bsky, masto) as world:
        await world.publish(article(1))
        before = datetime.now(UTC)
        await world.deliver()

        row = world.only("bluesky")
        assert_requeued(row, after=before, reason_starts="Bluesky (createRecord")
        assert "rate limit reached (429 RateLimitExceeded)" in (row.reason or "")
        reset = math.floor(bsky.calls(CREATE)[0].at + 120)
        assert row.due_at.timestamp() >= reset - 1
        assert bsky.posts == []
        assert_sent(world.only("mastodon"))


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_bluesky_server_error_is_requeued(
    tmp_path: Path, bsky: FakeBluesky, masto: FakeMastodon, status: int
) -> None:
    """A 5xx from the PDS: queued again with backoff, the reason naming the status."""
    bsky.fail_next(1, Fault.server_error(status), method=CREATE)
    async with open_world(tmp_path, bsky, masto) as world:
        await world.publish(article(1))
        before = datetime.now(UTC)
        await world.deliver()

        row = world.only("bluesky")
        assert_requeued(row, after=before, reason_starts="Bluesky (createRecord")
        assert f"server error ({status})" in (row.reason or "") or str(status) in (row.reason or "")
        assert bsky.posts == []


async def test_bluesky_dropped_connection_is_uncertain_not_resent(
    tmp_path: Path, bsky: FakeBluesky, masto: FakeMastodon
) -> None:
    """The PDS closes the connection after the post left: uncertain (Bluesky keeps no
    idempotency key), never resent on its own."""
    bsky.fail_next(1, Fault.drop(), method=CREATE)
    async with open_world(tmp_path, bsky, masto, retry_backoff="0s") as world:
        await world.publish(article(1))
        await world.deliver()
        await world.deliver()

        row = world.only("bluesky")
        assert row.state is DeliveryState.UNCERTAIN
        assert "may have reached the platform" in (row.reason or "")
        assert len(bsky.calls(CREATE)) == 1


async def test_bluesky_timeout_is_uncertain(
    tmp_path: Path, bsky: FakeBluesky, masto: FakeMastodon
) -> None:
    """No answer within the timeout: uncertain, with the reason saying it may be posted."""
    bsky.fail_next(1, Fault.slow(1.5), method=CREATE)
    async with open_world(tmp_path, bsky, masto, answer_within="300ms") as world:
        await world.publish(article(1))
        await world.deliver()

        row = world.only("bluesky")
        assert row.state is DeliveryState.UNCERTAIN
        assert "ReadTimeout" in (row.reason or "")


async def test_bluesky_too_long_is_refused_by_the_pds(
    tmp_path: Path, bsky: FakeBluesky, masto: FakeMastodon
) -> None:
    """A miscounted post over 300 graphemes reaches the PDS and is failed with its words."""
    async with open_world(tmp_path, bsky, masto, full=True, miscount=True) as world:
        await world.publish(
            article(1, summary_html="<p>" + "高雄與格丁尼亞簽署備忘錄。" * 40 + "</p>")
        )
        await world.deliver()

        assert_failed(world.only("bluesky"), "Bluesky (createRecord")
        assert "must not be longer than 300 graphemes" in (world.only("bluesky").reason or "")
        assert bsky.posts == []


async def test_bluesky_wrong_app_password_stops_the_channel_at_start(
    tmp_path: Path, bsky: FakeBluesky, masto: FakeMastodon
) -> None:
    """A wrong app password: start fails with a reason naming the channel, never the secret."""
    with pytest.raises(PermanentError) as caught:
        async with open_world(tmp_path, bsky, masto, password="TEST-wrong-pass"):
            pass
    assert "Bluesky refused the login" in caught.value.reason
    assert "app_password of channel 'bluesky'" in caught.value.reason
    assert "TEST-wrong-pass" not in caught.value.reason


# --------------------------------------------------------------------------------- Mastodon


async def test_mastodon_timeout_then_resend_posts_once(
    tmp_path: Path, bsky: FakeBluesky, masto: FakeMastodon
) -> None:
    """An attempt whose answer never came is resent (not uncertain): the same Idempotency-Key
    makes the instance return the status it already made, so the article appears once."""
    masto.fail_next(1, Fault.slow(1.5), path=STATUSES)
    async with open_world(
        tmp_path, bsky, masto, answer_within="500ms", retry_backoff="0s"
    ) as world:
        await world.publish(article(1))
        await world.deliver()
        await asyncio.sleep(1.5)
        await world.deliver()

        row = world.only("mastodon")
        assert_sent(row)
        assert row.attempts == 2
        (status,) = masto.statuses
        assert row.remote_id == status.id
        keys = [a.idempotency_key for a in masto.calls(STATUSES)]
        assert len(keys) == 2 and keys[0] == keys[1] is not None


async def test_mastodon_dropped_connection_is_requeued_and_posted_once(
    tmp_path: Path, bsky: FakeBluesky, masto: FakeMastodon
) -> None:
    """A dropped connection: queued again, the resend posts the article once."""
    masto.fail_next(1, Fault.drop(), path=STATUSES)
    async with open_world(tmp_path, bsky, masto, retry_backoff="0s") as world:
        await world.publish(article(1))
        await world.deliver()
        await world.deliver()

        row = world.only("mastodon")
        assert_sent(row)
        assert row.attempts == 2
        assert [a.status for a in masto.calls(STATUSES)] == [None, 200]
        assert len(masto.statuses) == 1


async def test_mastodon_rate_limit_requeues_until_the_reset(
    tmp_path: Path, bsky: FakeBluesky, masto: FakeMastodon
) -> None:
    """429 with X-RateLimit-Reset: queued until the reset."""
    masto.fail_next(1, Fault.rate_limited(reset_in=120), path=STATUSES)
    async with open_world(tmp_path, bsky, masto) as world:
        await world.publish(article(1))
        before = datetime.now(UTC)
        await world.deliver()

        row = world.only("mastodon")
        assert_requeued(row, after=before, reason_starts=f"Mastodon at {masto.url}: rate limit")
        assert row.due_at.timestamp() >= math.floor(before.timestamp() + 120) - 2
        assert masto.statuses == []


async def test_mastodon_server_error_is_requeued(
    tmp_path: Path, bsky: FakeBluesky, masto: FakeMastodon
) -> None:
    """A 503: queued again, the reason naming the status."""
    masto.fail_next(1, Fault.server_error(503), path=STATUSES)
    async with open_world(tmp_path, bsky, masto) as world:
        await world.publish(article(1))
        before = datetime.now(UTC)
        await world.deliver()

        assert_requeued(
            world.only("mastodon"),
            after=before,
            reason_starts=f"Mastodon at {masto.url} had a server error (503)",
        )


async def test_mastodon_revoked_token_fails(
    tmp_path: Path, bsky: FakeBluesky, masto: FakeMastodon
) -> None:
    """A token the instance no longer accepts: failed, naming the setting, never the token."""
    async with open_world(tmp_path, bsky, masto) as world:
        masto.access_token = "rotated"
        await world.publish(article(1))
        await world.deliver()

        row = world.only("mastodon")
        assert_failed(row, f"Mastodon at {masto.url} refused the access token (401")
        assert TOKEN not in (row.reason or "")


async def test_mastodon_too_long_is_refused_by_the_instance(
    tmp_path: Path, bsky: FakeBluesky, masto: FakeMastodon
) -> None:
    """A miscounted status over the instance's limit: 422 with Mastodon's words, failed."""
    async with open_world(tmp_path, bsky, masto, full=True, miscount=True) as world:
        await world.publish(
            article(1, summary_html="<p>" + "高雄與格丁尼亞簽署備忘錄。" * 40 + "</p>")
        )
        await world.deliver()

        row = world.only("mastodon")
        assert_failed(row, f"Mastodon at {masto.url} refused the request (422)")
        assert "character limit of 500 exceeded" in (row.reason or "")


async def test_mastodon_limit_is_the_instances_own(tmp_path: Path, bsky: FakeBluesky) -> None:
    """An instance with 120 characters and 30 per URL: the post is fitted to that, as the
    instance counts it."""
    async with (
        FakeMastodon(access_token=TOKEN, max_characters=120, url_weight=30) as small,
        open_world(tmp_path, bsky, small) as world,
    ):
        assert world.channels["mastodon"].rule(has_image=False) == LengthRule(
            "mastodon", 120, url_weight=30
        )
        await world.publish(article(1))
        await world.deliver()

        assert_sent(world.only("mastodon"))
        (status,) = small.statuses
        assert 100 < countable_length(status.text, 30) <= 120
        assert article(1).url in status.text


async def test_bluesky_failure_before_the_post_is_requeued_not_uncertain(
    tmp_path: Path, bsky: FakeBluesky, masto: FakeMastodon
) -> None:
    """A dropped connection while resolving a mention (before anything is posted): queued
    again, not uncertain; the retry posts it with the mention's facet."""
    bsky.handles["cna.com.tw"] = "did:plc:cna"
    bsky.fail_next(1, Fault.drop(), method="com.atproto.identity.resolveHandle")
    async with open_world(tmp_path, bsky, masto, retry_backoff="0s") as world:
        await world.publish(dataclasses.replace(article(1), title="中央社 @cna.com.tw 報導"))
        await world.deliver()
        await world.deliver()

        row = world.only("bluesky")
        assert_sent(row)
        assert row.attempts == 2
        (post,) = bsky.posts
        assert ("mention", "@cna.com.tw", "did:plc:cna") in post.facet_texts()


async def test_bluesky_spent_write_points_wait_for_the_reset_without_a_request(
    tmp_path: Path, bsky: FakeBluesky, masto: FakeMastodon, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the PDS's ratelimit-remaining says a post no longer fits, the next one waits for
    ratelimit-reset without spending a request on a certain 429."""
    monkeypatch.setattr(bluesky_server, "POINTS_PER_HOUR", 6)
    async with open_world(tmp_path, bsky, masto) as world:
        await world.publish(article(1), article(2), article(3))
        before = datetime.now(UTC)
        await world.deliver()

        rows = world.rows("bluesky")
        assert [r.state for r in rows].count(DeliveryState.SENT) == 2
        (waiting,) = [r for r in rows if r.state is not DeliveryState.SENT]
        assert_requeued(waiting, after=before, reason_starts="Bluesky (")
        assert "0 write points left" in (waiting.reason or "")
        assert waiting.due_at.timestamp() >= bsky.posts[0].received_at + 3600 - 2
        assert len(bsky.calls(CREATE)) == 2
