"""WebSub against a FakeHub on 127.0.0.1: discovery, subscription and its verification, signed
content deliveries, forged ones ignored, renewal before the lease ends, unsubscription."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from bot.config import FeedSourceConfig, HealthConfig
from bot.errors import ConfigError, SourceError
from bot.listener import Listener
from bot.metrics import Metrics
from bot.model import Article
from bot.sources.websub import (
    RETRY_AFTER,
    Discovery,
    WebSubSubscriber,
    discover,
    parse_link_header,
)
from bot.testing.feed_server import atom, rss, sample_items
from bot.testing.websub_hub import FakeHub, with_hub_links

NOW = datetime(2025, 9, 16, 10, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[Article]]] = []

    async def __call__(self, name: str, articles: Sequence[Article]) -> str:
        self.calls.append((name, list(articles)))
        return articles[0].key

    @property
    def articles(self) -> list[Article]:
        return [a for _, batch in self.calls for a in batch]


async def _healthy() -> tuple[bool, str]:
    return True, "ok"


class World:
    """A FakeHub serving one topic, a listener, and a subscriber for source ``newsvision``."""

    def __init__(self, hub: FakeHub, listener: Listener, metrics: Metrics) -> None:
        self.hub = hub
        self.listener = listener
        self.metrics = metrics
        self.clock = Clock()
        self.accepted = Recorder()
        self.subscriber: WebSubSubscriber | None = None

    def subscribe_to(self, url: str, **kwargs: object) -> WebSubSubscriber:
        config = FeedSourceConfig.model_validate(
            {
                "kind": "feed",
                "name": "newsvision",
                "url": url,
                "websub": True,
                "timeout": "5s",
                "allow_private": ["127.0.0.1"],  # the fake site and hub listen there
            }
        )
        subscriber = WebSubSubscriber(
            config,
            self.accepted,
            public_url=self.listener.url,
            clock=self.clock,
            **kwargs,  # type: ignore[arg-type]
        )
        self.listener.register(subscriber)
        self.subscriber = subscriber
        return subscriber


@pytest.fixture
async def hub() -> AsyncIterator[FakeHub]:
    async with FakeHub() as running:
        yield running


@pytest.fixture
async def world(hub: FakeHub) -> AsyncIterator[World]:
    metrics = Metrics()
    listener = Listener(
        HealthConfig.model_construct(listen="127.0.0.1:0"), health=_healthy, metrics=metrics
    )
    async with listener:
        made = World(hub, listener, metrics)
        yield made
        if made.subscriber is not None:
            await made.subscriber.aclose()


def feed_with_hub(hub: FakeHub, path: str = "/rss.xml", *, in_header: bool = False) -> str:
    """Serve an RSS feed at ``path`` that announces ``hub`` (in the document or a header)."""
    document = rss(sample_items(3))
    if not in_header:
        topic_url = hub.url.removesuffix("/hub") + path
        document = with_hub_links(document, hub=hub.url, self_url=topic_url)
    return hub.serve_topic(path, document, link_header=in_header)


# ---------------------------------------------------------------------------------- discovery


def test_discovery_from_link_elements_in_rss_and_atom() -> None:
    """<atom:link rel="hub"> (RSS) and <link rel="hub"> (Atom) name the hub, rel="self" the
    topic."""
    rss_doc = with_hub_links(
        rss(sample_items(2)), hub="https://hub.example/", self_url="https://news.example.tw/rss"
    )
    found = discover(rss_doc.encode(), url="https://news.example.tw/feed?x=1")
    assert found == Discovery(hub="https://hub.example/", topic="https://news.example.tw/rss")

    atom_doc = atom(sample_items(2)).replace(
        "<title>", '<link rel="hub" href="/websub/hub"/><title>', 1
    )
    found = discover(atom_doc.encode(), url="https://news.example.tw/atom.xml")
    # Relative hub resolves against the feed; no rel="self": the topic is the feed's URL.
    assert found == Discovery(
        hub="https://news.example.tw/websub/hub", topic="https://news.example.tw/atom.xml"
    )


def test_discovery_ignores_links_inside_entries_and_feeds_without_a_hub() -> None:
    """Only the feed's own links count; a feed without a hub gives None."""
    document = rss(sample_items(2)).replace(
        "<item>", '<item><atom:link xmlns:atom="http://www.w3.org/2005/Atom" rel="hub" href="x"/>'
    )
    assert discover(document.encode(), url="https://news.example.tw/rss") is None


def test_discovery_link_header_wins_over_the_document() -> None:
    """Link headers are read first, as the spec says; the document fills in what they lack."""
    document = with_hub_links(rss(sample_items(1)), hub="https://doc-hub.example/")
    found = discover(
        document.encode(),
        url="https://news.example.tw/rss",
        link_headers=['<https://header-hub.example/>; rel="hub"'],
    )
    assert found == Discovery(
        hub="https://header-hub.example/", topic="https://news.example.tw/rss"
    )


def test_discovery_from_a_json_feed() -> None:
    """A JSON Feed names its hub in "hubs" (type WebSub) and its topic in "feed_url"."""
    document = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "新聞視界時報",
        "feed_url": "https://news.example.tw/feed.json",
        "hubs": [{"type": "rssCloud", "url": "x"}, {"type": "WebSub", "url": "https://hub.tw/"}],
        "items": [],
    }
    found = discover(json.dumps(document).encode(), url="https://news.example.tw/f")
    assert found == Discovery(hub="https://hub.tw/", topic="https://news.example.tw/feed.json")


def test_link_header_parsing() -> None:
    """Several links in one header, quoted and unquoted rel, several rel values."""
    parsed = parse_link_header(
        ['<https://hub.example/>; rel="hub", <https://t.example/rss>;rel=self', "<x>; rel='a'"]
    )
    assert parsed[0] == ("https://hub.example/", frozenset({"hub"}))
    assert parsed[1] == ("https://t.example/rss", frozenset({"self"}))


async def test_live_discovery_from_the_document(world: World) -> None:
    """The subscriber fetches the feed and finds the hub in <atom:link rel="hub">."""
    url = feed_with_hub(world.hub)
    found = await world.subscribe_to(url).discover()
    assert found == Discovery(hub=world.hub.url, topic=url)


async def test_live_discovery_from_the_link_header(world: World) -> None:
    """The subscriber finds the hub and the topic in the feed response's Link headers."""
    url = feed_with_hub(world.hub, "/plain.xml", in_header=True)
    found = await world.subscribe_to(url).discover()
    assert found == Discovery(hub=world.hub.url, topic=url)


async def test_feed_without_a_hub_fails_and_is_retried_later(world: World) -> None:
    """No hub: subscribe() raises SourceError, and renew_due waits RETRY_AFTER before again."""
    url = world.hub.serve_topic("/nohub.xml", rss(sample_items(1)))
    subscriber = world.subscribe_to(url)
    with pytest.raises(SourceError, match="names no WebSub hub"):
        await subscriber.subscribe()
    assert subscriber.subscription is not None
    assert subscriber.subscription.state == "failed"
    assert not subscriber.renew_due(NOW + timedelta(minutes=1))
    assert subscriber.renew_due(NOW + RETRY_AFTER)


def test_websub_needs_a_public_url() -> None:
    """Without public_url a hub could never call us back: a config error naming the source."""
    config = FeedSourceConfig.model_validate(
        {"kind": "feed", "name": "newsvision", "url": "https://news.example.tw/rss", "websub": True}
    )
    with pytest.raises(ConfigError, match="public_url"):
        WebSubSubscriber(config, Recorder(), public_url=None)


# --------------------------------------------------------------------- subscription, verification


async def test_subscribe_is_verified_by_the_hub(world: World) -> None:
    """subscribe() asks the hub; the hub's challenge is echoed; both sides see it active."""
    url = feed_with_hub(world.hub)
    subscriber = world.subscribe_to(url)
    assert subscriber.renew_due(NOW)  # never subscribed
    pending = await subscriber.subscribe()
    assert pending.callback == world.listener.url + "/websub/newsvision"
    assert await subscriber.wait_active(5)
    [held] = await world.hub.wait_for_subscriber(url)
    assert held.callback == subscriber.callback
    assert held.secret and len(held.secret) >= 32
    assert world.hub.verifications[-1].confirmed
    request = world.hub.requests[-1]
    assert request["hub.mode"] == "subscribe" and request["hub.topic"] == url
    assert request["hub.lease_seconds"] == str(10 * 86400)
    active = subscriber.subscription
    assert active is not None and active.state == "active"
    assert active.lease == timedelta(days=10)
    assert not subscriber.renew_due(NOW + timedelta(days=8))
    assert active.secret not in repr(active)  # so it never reaches a log line


async def test_hub_that_verifies_before_answering_works(world: World) -> None:
    """A hub verifying inside the subscribe request (then 204) finds the subscription pending."""
    async with FakeHub(verify="sync") as sync_hub:
        url = feed_with_hub(sync_hub)
        subscriber = world.subscribe_to(url)
        await subscriber.subscribe()
        assert subscriber.subscription is not None
        assert subscriber.subscription.state == "active"
        assert len(sync_hub.subscribers(url)) == 1


@pytest.mark.parametrize(
    "query",
    [
        {"hub.mode": "subscribe", "hub.topic": "https://elsewhere.example/rss"},
        {"hub.mode": "unsubscribe", "hub.topic": "TOPIC"},
        {"hub.mode": "subscribe"},
        {"hub.mode": "nonsense", "hub.topic": "TOPIC"},
    ],
    ids=["other-topic", "unsubscribe-not-asked", "no-topic", "unknown-mode"],
)
async def test_verification_we_did_not_ask_for_is_404(world: World, query: dict[str, str]) -> None:
    """A verification GET whose mode and topic match no subscription of ours: 404, no echo."""
    url = feed_with_hub(world.hub)
    subscriber = world.subscribe_to(url)
    await subscriber.subscribe()
    assert await subscriber.wait_active(5)
    params = {k: v.replace("TOPIC", url) for k, v in query.items()}
    params["hub.challenge"] = "please-echo-me"
    async with (
        aiohttp.ClientSession() as http,
        http.get(subscriber.callback, params=params) as response,
    ):
        assert response.status == 404
        assert "please-echo-me" not in await response.text()


async def test_verification_before_any_subscription_is_404(world: World) -> None:
    """A hub (or anyone) verifying a subscription we never asked for gets 404."""
    subscriber = world.subscribe_to(world.hub.serve_topic("/rss.xml", rss(sample_items(1))))
    params = {"hub.mode": "subscribe", "hub.topic": subscriber.config.url, "hub.challenge": "c"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(subscriber.callback, params=params) as response,
    ):
        assert response.status == 404


# ------------------------------------------------------------------------------------ content


async def test_signed_delivery_is_parsed_and_accepted(world: World) -> None:
    """A delivery signed with our secret is read with parse_feed and handed to accept."""
    url = feed_with_hub(world.hub)
    subscriber = world.subscribe_to(url)
    await subscriber.subscribe()
    await world.hub.wait_for_subscriber(url)
    items = sample_items(2, start_id=30000)
    statuses = await world.hub.publish(url, rss(items))
    assert statuses == [202]
    assert [name for name, _ in world.accepted.calls] == ["newsvision"]
    titles = [a.title for a in world.accepted.articles]
    assert titles == [items[0].title, items[1].title]
    assert world.accepted.articles[0].key == "newsvision-30002"
    assert world.accepted.articles[0].categories == tuple(items[0].categories)
    accepted = world.metrics.registry.get_sample_value(
        "newsbot_push_requests_total", {"source": "newsvision", "result": "accepted"}
    )
    assert accepted == 1


async def test_sha1_signatures_are_accepted(world: World) -> None:
    """Hubs that sign with sha1= (the older spec's only method) are verified too."""
    async with FakeHub(algorithm="sha1") as sha1_hub:
        url = feed_with_hub(sha1_hub)
        subscriber = world.subscribe_to(url)
        await subscriber.subscribe()
        await sha1_hub.wait_for_subscriber(url)
        assert await sha1_hub.publish(url, rss(sample_items(1))) == [202]
    assert len(world.accepted.articles) == 1


async def test_badly_signed_delivery_is_answered_2xx_and_records_nothing(world: World) -> None:
    """A wrong X-Hub-Signature is ignored as the spec says: 2xx, accept never called."""
    url = feed_with_hub(world.hub)
    subscriber = world.subscribe_to(url)
    await subscriber.subscribe()
    await world.hub.wait_for_subscriber(url)
    assert await world.hub.publish_badly(url, rss(sample_items(2))) == [202]
    assert world.accepted.calls == []
    rejected = world.metrics.registry.get_sample_value(
        "newsbot_push_requests_total", {"source": "newsvision", "result": "rejected"}
    )
    assert rejected == 1


async def test_unsigned_delivery_records_nothing(world: World) -> None:
    """A POST without X-Hub-Signature (anyone who found the callback URL) records nothing."""
    url = feed_with_hub(world.hub)
    subscriber = world.subscribe_to(url)
    await subscriber.subscribe()
    await world.hub.wait_for_subscriber(url)
    async with (
        aiohttp.ClientSession() as http,
        http.post(subscriber.callback, data=rss(sample_items(1)).encode()) as response,
    ):
        assert 200 <= response.status < 300
    assert world.accepted.calls == []


async def test_signed_delivery_that_is_not_a_feed_is_400(world: World) -> None:
    """An authentic delivery that parse_feed cannot read is refused with the reason."""
    url = feed_with_hub(world.hub)
    subscriber = world.subscribe_to(url)
    await subscriber.subscribe()
    await world.hub.wait_for_subscriber(url)
    page = "<!DOCTYPE html><html><body>維護中</body></html>"
    assert await world.hub.publish(url, page, content_type="text/html") == [400]
    assert world.accepted.calls == []


# ------------------------------------------------------------------------------------ renewal


async def test_renewal_before_the_lease_ends(world: World) -> None:
    """renew_due turns true at 90 % of the lease; renew() re-subscribes with a fresh secret,
    and deliveries signed with it are accepted again after the hub's old lease ended."""
    url = feed_with_hub(world.hub)
    subscriber = world.subscribe_to(url, lease=timedelta(hours=1))
    await subscriber.subscribe()
    [first] = await world.hub.wait_for_subscriber(url)
    assert first.lease_seconds == 3600
    assert not subscriber.renew_due(NOW + timedelta(minutes=50))
    assert subscriber.renew_due(NOW + timedelta(minutes=54))

    assert world.hub.expire(url) == 1  # the hub's lease ended
    assert await world.hub.publish(url, rss(sample_items(1))) == []  # nobody to push to

    world.clock.now = NOW + timedelta(minutes=54)
    await subscriber.renew()
    [second] = await world.hub.wait_for_subscriber(url)
    assert second.secret != first.secret
    assert subscriber.subscription is not None
    assert subscriber.subscription.verified_at == world.clock.now
    assert not subscriber.renew_due(world.clock.now + timedelta(minutes=50))
    assert await world.hub.publish(url, rss(sample_items(1, start_id=40000))) == [202]
    assert [a.key for a in world.accepted.articles] == ["newsvision-40001"]


async def test_unverified_subscription_is_asked_for_again(world: World) -> None:
    """A subscription the hub never verified is due again after five minutes."""
    url = feed_with_hub(world.hub)
    subscriber = world.subscribe_to(url)
    world.listener.unregister("newsvision")  # the hub's verification finds nobody
    await subscriber.subscribe()
    assert not await subscriber.wait_active(0.3)
    assert subscriber.subscription is not None
    assert subscriber.subscription.state == "pending"
    assert not subscriber.renew_due(NOW + timedelta(minutes=4))
    assert subscriber.renew_due(NOW + timedelta(minutes=5))


async def test_unsubscribe_is_verified_and_ends_deliveries(world: World) -> None:
    """unsubscribe() asks the hub, which verifies and stops pushing."""
    url = feed_with_hub(world.hub)
    subscriber = world.subscribe_to(url)
    await subscriber.subscribe()
    await world.hub.wait_for_subscriber(url)
    await subscriber.unsubscribe()
    for _ in range(200):
        if not world.hub.subscribers(url):
            break
        await asyncio.sleep(0.01)
    assert world.hub.subscribers(url) == []
    assert subscriber.subscription is not None
    assert subscriber.subscription.state == "unsubscribed"
    assert not subscriber.renew_due(NOW + timedelta(days=30))  # stopped on purpose


async def test_hub_in_a_thread_of_its_own(world: World) -> None:
    """FakeHub also runs in a thread (``with``), as a daemon run in a subprocess needs."""
    with FakeHub() as threaded:
        url = feed_with_hub(threaded)
        subscriber = world.subscribe_to(url)
        await subscriber.subscribe()
        assert await subscriber.wait_active(5)
        await threaded.wait_for_subscriber(url)
        assert await threaded.publish(url, rss(sample_items(1))) == [202]
    assert len(world.accepted.articles) == 1
