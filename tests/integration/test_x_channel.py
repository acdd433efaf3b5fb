"""XChannel through the real tweepy client against FakeX on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import tweepy

from bot.channels.x import PUBLIC_BASE, RedirectAdapter, XChannel
from bot.compose.length import X_POST
from bot.config import XChannelConfig
from bot.errors import PermanentError, TransientError
from bot.model import Post
from bot.testing import LOCAL_FAKES
from bot.testing.x_server import FakeX, XFault, XPost, weighted_length

KEYS: dict[str, Any] = {
    "consumer_key": "ck-newsvision-4f1c",
    "consumer_secret": "cs-topsecret-9a7e3b",
    "access_token": "1490278571950612480-at7d",
    "access_token_secret": "ats-topsecret-52c0d",
}
SECRETS = (KEYS["consumer_secret"], KEYS["access_token_secret"])
LINK = "https://news.example.tw/articles/2024/0315-kaohsiung-gdynia"
TEASER = f"高雄港與波蘭格丁尼亞港締結姊妹港，「雙港論壇」下月登場。🚢 {LINK}"


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may resolve, let alone reach, api.twitter.com or any host but 127.0.0.1."""
    real = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in ("127.0.0.1", "localhost", "::1", b"127.0.0.1"):
            raise OSError(f"test tried to reach {host!r}: only 127.0.0.1 is allowed")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)


@pytest.fixture
def fake() -> Iterator[FakeX]:
    with FakeX(**KEYS) as server:
        yield server


def x_config(fake: FakeX, **overrides: Any) -> XChannelConfig:
    raw: dict[str, Any] = {
        "kind": "x",
        "name": "x",
        "template": "x.txt.j2",
        **KEYS,
        "api_url": fake.url,
        "timeout": "3s",
    }
    raw.update(overrides)
    return XChannelConfig.model_validate(raw)


def make_post(text: str = TEASER, image: str | None = None) -> Post:
    return Post(
        channel="x",
        text=text,
        length=weighted_length(text),
        limit=280,
        link=LINK,
        image=image,
        article_key="kaohsiung-gdynia",
        source="newsvision",
    )


def assert_no_secret(message: str) -> None:
    for secret in SECRETS:
        assert secret not in message


# ---------------------------------------------------------------------------------- accepted


async def test_chinese_post_is_accepted_with_receipt_url(fake: FakeX) -> None:
    """A Traditional Chinese teaser reaches X verbatim and the receipt links to the post."""
    channel = XChannel.from_config(x_config(fake))

    receipt = await channel.send(make_post())

    assert [p.text for p in fake.posts] == [TEASER]
    assert receipt.remote_id == fake.posts[0].id
    assert receipt.url == f"https://x.com/i/web/status/{fake.posts[0].id}"
    assert receipt.accepted_at is not None
    assert receipt.notes == ()


async def test_exactly_280_weighted_is_accepted(fake: FakeX) -> None:
    """140 CJK characters weigh exactly 280 and are accepted: the limit is inclusive."""
    text = ("新聞視界時報記者王秉程整理報導。" * 9)[:139] + "。"
    assert weighted_length(text) == 280

    await XChannel.from_config(x_config(fake)).send(make_post(text))

    assert fake.posts[0].weighted_length == 280


async def test_verify_returns_username_with_fake_in_same_loop() -> None:
    """`check --online` learns the account's username from GET /2/users/me."""
    async with FakeX(**KEYS, username="newsvision_tw") as fake:
        channel = XChannel.from_config(x_config(fake))
        assert await channel.verify() == "newsvision_tw"
        await channel.close()


def test_rule_is_x_post(fake: FakeX) -> None:
    """X posts are measured by X's 280-weight rule, with or without an image."""
    channel = XChannel.from_config(x_config(fake))
    assert channel.rule(has_image=False) == X_POST
    assert channel.rule(has_image=True) == X_POST


# ------------------------------------------------------------------------------ OAuth 1.0a


async def test_wrong_consumer_secret_is_permanent_without_secrets(fake: FakeX) -> None:
    """Bad credentials are a permanent 401 naming the settings to check, never their values."""
    config = x_config(fake, consumer_secret="cs-wrong-secret-0000")
    channel = XChannel.from_config(config)

    with pytest.raises(PermanentError) as caught:
        await channel.send(make_post())

    message = str(caught.value)
    assert "401" in message
    assert "X_CONSUMER_SECRET" in message
    assert_no_secret(message)
    assert "cs-wrong-secret-0000" not in message
    assert fake.posts == []
    assert fake.attempts[-1].reason == "signature does not match"


def _signed_post(url: str, text: str) -> requests.Response:
    auth = tweepy.OAuth1UserHandler(
        KEYS["consumer_key"],
        KEYS["consumer_secret"],
        KEYS["access_token"],
        KEYS["access_token_secret"],
    ).apply_auth()
    return requests.post(url, json={"text": text}, auth=auth, timeout=3)


def test_signature_for_the_local_url_is_refused(fake: FakeX) -> None:
    """The fake checks the signature against https://api.twitter.com, not the URL it serves."""
    response = _signed_post(fake.url + "/2/tweets", "本地網址簽章，應被拒絕。")

    assert response.status_code == 401
    assert response.json() == {
        "title": "Unauthorized",
        "detail": "Unauthorized",
        "type": "about:blank",
        "status": 401,
    }
    assert fake.posts == []


def test_same_request_passes_when_fake_expects_its_own_url(fake: FakeX) -> None:
    """Control for the test above: the identical signing is genuine for the URL it covers."""
    fake.signed_base = None

    response = _signed_post(fake.url + "/2/tweets", "本地網址簽章，這次應被接受。")

    assert response.status_code == 201
    assert fake.posts[0].text == "本地網址簽章，這次應被接受。"


def test_redirect_keeps_query_covered_by_signature(fake: FakeX) -> None:
    """Redirected requests keep their query string, and the signature over it still verifies."""
    channel = XChannel.from_config(x_config(fake))

    response = channel.client.get_me(user_fields=["created_at", "description"])

    assert response.data.username == fake.user["username"]
    assert fake.attempts[-1].status == 200


def test_default_api_url_is_not_redirected() -> None:
    """With X's own api_url nothing is rewritten, but the configured timeout still applies."""
    raw = {"kind": "x", "name": "x", "template": "x.txt.j2", **KEYS, "timeout": "7s"}
    channel = XChannel.from_config(XChannelConfig.model_validate(raw))

    adapter = channel.client.session.get_adapter(PUBLIC_BASE + "/2/tweets")

    assert isinstance(adapter, RedirectAdapter)
    assert adapter.target is None
    assert adapter.timeout == 7.0


# ---------------------------------------------------------------------------------- refused


async def test_duplicate_is_permanent_and_says_duplicate(fake: FakeX) -> None:
    """X's 403 for a repeated text becomes a permanent error that says 'duplicate content'."""
    channel = XChannel.from_config(x_config(fake))
    await channel.send(make_post())

    with pytest.raises(PermanentError, match="duplicate content"):
        await channel.send(make_post())

    assert len(fake.posts) == 1
    assert fake.attempts[-1].status == 403


async def test_over_280_weighted_is_permanent(fake: FakeX) -> None:
    """141 CJK characters weigh 282: X's 400 'too long' is permanent and quotes X's reason."""
    text = "高" * 140 + "。"
    assert weighted_length(text) == 282

    with pytest.raises(PermanentError, match="too long"):
        await XChannel.from_config(x_config(fake)).send(make_post(text))

    assert fake.posts == []
    assert fake.attempts[-1].status == 400


async def test_rate_limit_is_transient_with_retry_after_from_reset(fake: FakeX) -> None:
    """A 429 is transient and not retried before X's x-rate-limit-reset."""
    fake.fail_next(1, XFault.rate_limited(reset_in=120))
    before = time.time()

    with pytest.raises(TransientError) as caught:
        await XChannel.from_config(x_config(fake)).send(make_post())

    assert caught.value.retry_after is not None
    expected = int(before + 120) - before
    # The upper bound is the promise; the lower one only allows for a slow, loaded machine.
    assert expected - 10 <= caught.value.retry_after <= expected + 0.5
    assert fake.posts == []


async def test_rate_limit_retry_after_is_at_least_one_second(fake: FakeX) -> None:
    """A reset already in the past still waits at least one second."""
    fake.fail_next(1, XFault.rate_limited(reset_in=-30))

    with pytest.raises(TransientError) as caught:
        await XChannel.from_config(x_config(fake)).send(make_post())

    assert caught.value.retry_after == 1.0


async def test_rate_limit_without_reset_header_waits_sixty_seconds(fake: FakeX) -> None:
    """A 429 without x-rate-limit-reset falls back to a 60 s wait."""
    response = requests.Response()
    response.status_code = 429
    response.reason = "Too Many Requests"
    response._content = b'{"title":"Too Many Requests","status":429}'
    channel = XChannel.from_config(x_config(fake))

    def refuse() -> None:
        raise tweepy.TooManyRequests(response)

    with pytest.raises(TransientError) as caught:
        channel._call(refuse)

    assert caught.value.retry_after == 60.0


async def test_server_error_is_transient(fake: FakeX) -> None:
    """A 503 from X is transient, and the next send goes through."""
    fake.fail_next(1, XFault.server_error(503))
    channel = XChannel.from_config(x_config(fake))

    with pytest.raises(TransientError, match="503"):
        await channel.send(make_post())
    await channel.send(make_post())

    assert len(fake.posts) == 1


async def test_dropped_connection_is_transient(fake: FakeX) -> None:
    """A connection closed without an answer is transient and names no secret."""
    fake.fail_next(1, XFault.drop())

    with pytest.raises(TransientError) as caught:
        await XChannel.from_config(x_config(fake)).send(make_post())

    assert_no_secret(str(caught.value))
    assert fake.attempts[-1].status is None


async def test_timeout_is_transient_and_says_post_may_exist(fake: FakeX) -> None:
    """An answer slower than the timeout is transient, not a hang, and warns it may be posted."""
    fake.fail_next(1, XFault.slow(1.5))
    channel = XChannel.from_config(x_config(fake, timeout="0.5s"))

    started = time.monotonic()
    with pytest.raises(TransientError, match="may have carried it out"):
        await channel.send(make_post())
    elapsed = time.monotonic() - started
    await asyncio.sleep(1.5)

    assert elapsed < 1.4
    assert [p.text for p in fake.posts] == [TEASER]


async def test_unreachable_api_is_transient(fake: FakeX) -> None:
    """Nothing listening at api_url is transient."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    config = x_config(fake, api_url=f"http://127.0.0.1:{closed_port}")

    with pytest.raises(TransientError, match="could not reach X"):
        await XChannel.from_config(config).send(make_post())


# ------------------------------------------------------------------------------------ media


async def test_media_upload_attaches_media_id(fake: FakeX) -> None:
    """With media on, the article image is downloaded, uploaded and attached to the post."""
    channel = XChannel.from_config(x_config(fake, media=True), image_policy=LOCAL_FAKES)

    receipt = await channel.send(make_post(image=fake.image_url))

    assert len(fake.media) == 1
    assert fake.media[0].media_type == "image/png"
    assert fake.posts[0].media_ids == (fake.media[0].id,)
    assert receipt.notes == ()


async def test_media_off_ignores_image(fake: FakeX) -> None:
    """With media off (the default) no image is uploaded even when the article has one."""
    await XChannel.from_config(x_config(fake)).send(make_post(image=fake.image_url))

    assert fake.media == []
    assert fake.posts[0].media_ids == ()


async def test_missing_image_posts_without_it_and_notes_why(fake: FakeX) -> None:
    """An image that cannot be downloaded does not stop the post; the receipt says why."""
    channel = XChannel.from_config(x_config(fake, media=True), image_policy=LOCAL_FAKES)

    receipt = await channel.send(make_post(image=fake.url + "/no-such-image.jpg"))

    assert fake.posts[0].media_ids == ()
    assert len(receipt.notes) == 1
    assert "without the image" in receipt.notes[0]
    assert "404" in receipt.notes[0]


async def test_upload_failure_posts_without_image_and_notes_why(fake: FakeX) -> None:
    """X refusing the upload (503) still posts the text, with a note naming the upload."""
    fake.fail_next(1, XFault.server_error(503), path="/2/media/upload")
    channel = XChannel.from_config(x_config(fake, media=True), image_policy=LOCAL_FAKES)

    receipt = await channel.send(make_post(image=fake.image_url))

    assert [p.text for p in fake.posts] == [TEASER]
    assert fake.posts[0].media_ids == ()
    assert "upload" in receipt.notes[0]
    assert "503" in receipt.notes[0]


async def test_image_on_an_internal_address_is_never_fetched(fake: FakeX) -> None:
    """An image URL whose host is internal (here 127.0.0.2; 127.0.0.1 is allowed for the fake)
    is refused before any request: the post goes out without it and the note says why."""
    from bot.testing.feed_server import FeedServer

    async with FeedServer(host="127.0.0.2") as internal:
        secret = internal.publish(
            "/secret.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64, content_type="image/png"
        )
        channel = XChannel.from_config(x_config(fake, media=True), image_policy=LOCAL_FAKES)
        receipt = await channel.send(make_post(image=secret))
        assert internal.requests == []
    assert fake.media == []
    assert fake.posts[0].media_ids == ()
    assert "without the image" in receipt.notes[0] and "loopback" in receipt.notes[0]


async def test_oversized_image_is_not_uploaded(fake: FakeX) -> None:
    """An image over 5 MB is never sent to X; the post goes out without it."""
    big = fake.serve_image("/huge.png", b"\x89PNG\r\n\x1a\n" + b"\0" * (5 * 1024 * 1024))
    channel = XChannel.from_config(x_config(fake, media=True), image_policy=LOCAL_FAKES)

    receipt = await channel.send(make_post(image=big))

    assert fake.attempts_to("/2/media/upload") == []
    assert fake.posts[0].media_ids == ()
    assert "larger than" in receipt.notes[0]


async def test_non_image_is_not_uploaded(fake: FakeX) -> None:
    """A URL that serves HTML instead of an image is not uploaded; the note says so."""
    page = fake.serve_image("/article.html", "<p>不是圖片</p>".encode(), "text/html")
    channel = XChannel.from_config(x_config(fake, media=True), image_policy=LOCAL_FAKES)

    receipt = await channel.send(make_post(image=page))

    assert fake.media == []
    assert "not a JPEG, PNG, GIF or WebP" in receipt.notes[0]


# ----------------------------------------------------------------------------- concurrency


async def test_send_does_not_block_the_event_loop(fake: FakeX) -> None:
    """While X is slow to answer, other tasks on the event loop keep running."""
    fake.fail_next(1, XFault.slow(0.6))
    channel = XChannel.from_config(x_config(fake))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        await channel.send(make_post())
    finally:
        task.cancel()

    assert ticks >= 20
    assert len(fake.posts) == 1


def _posted(fake: FakeX, count: int, *, ago: float, spread: float) -> None:
    """``count`` earlier posts, the oldest ``ago`` seconds back, evenly over ``spread``."""
    now = time.time()
    for i in range(count):
        at = now - ago + spread * i / max(count, 1)
        fake.posts.append(XPost(f"old-{i}", f"舊貼文 {i}", (), at, 10))


async def test_the_fake_holds_xs_two_windows(fake: FakeX) -> None:
    """200 in 15 minutes, then 300 in 3 hours: the 201st, or the 301st over three hours, is a
    429 whose reset is the binding window's; the channel makes it transient accordingly."""
    _posted(fake, 200, ago=600, spread=500)
    with pytest.raises(TransientError) as short:
        await XChannel.from_config(x_config(fake)).send(make_post())
    assert short.value.retry_after is not None and short.value.retry_after <= 300

    fake.posts.clear()
    _posted(fake, 300, ago=3 * 3600 - 600, spread=3 * 3600 - 1200)
    with pytest.raises(TransientError) as long:
        await XChannel.from_config(x_config(fake)).send(make_post())
    assert long.value.retry_after is not None and 500 <= long.value.retry_after <= 600

    fake.posts.clear()
    _posted(fake, 299, ago=3 * 3600 - 600, spread=3 * 3600 - 1200)
    receipt = await XChannel.from_config(x_config(fake)).send(make_post())
    assert receipt.remote_id == fake.posts[-1].id
