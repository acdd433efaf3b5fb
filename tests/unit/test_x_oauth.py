"""FakeX's OAuth 1.0a check: oauthlib-signed requests (as tweepy signs) against verify_oauth1."""

from __future__ import annotations

import time
from urllib.parse import parse_qsl, urlsplit

from oauthlib.oauth1 import Client  # type: ignore[import-untyped]

from bot.testing.x_server import Credentials, NonceBook, verify_oauth1

CREDENTIALS = Credentials("ck-newsvision", "cs-secret-新聞", "at-1490278571", "ats-secret-視界")
TWEETS = "https://api.twitter.com/2/tweets"


def sign(
    url: str,
    method: str = "POST",
    *,
    body: str | None = None,
    consumer_secret: str = CREDENTIALS.consumer_secret,
    timestamp: str | None = None,
    nonce: str | None = None,
) -> tuple[str, str, str]:
    """The signed URL, its Authorization header and the body, as oauthlib produces them."""
    client = Client(
        CREDENTIALS.consumer_key,
        client_secret=consumer_secret,
        resource_owner_key=CREDENTIALS.access_token,
        resource_owner_secret=CREDENTIALS.access_token_secret,
        timestamp=timestamp,
        nonce=nonce,
    )
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
    signed_url, signed_headers, signed_body = client.sign(url, method, body, headers)
    return str(signed_url), str(signed_headers["Authorization"]), str(signed_body or "")


def check(
    signed: tuple[str, str, str],
    *,
    url: str | None = None,
    method: str = "POST",
    query: str | None = None,
    form: str | None = None,
    nonces: NonceBook | None = None,
) -> str | None:
    signed_url, authorization, body = signed
    parts = urlsplit(signed_url)
    return verify_oauth1(
        method=method,
        url=url or f"{parts.scheme}://{parts.netloc}{parts.path}",
        authorization=authorization,
        query=parts.query if query is None else query,
        form=parse_qsl(body if form is None else form),
        credentials=CREDENTIALS,
        nonces=nonces or NonceBook(),
        now=time.time(),
    )


def test_genuine_signature_is_accepted() -> None:
    """A request signed with the right four keys for the URL it names passes."""
    assert check(sign(TWEETS)) is None


def test_wrong_consumer_secret_is_refused() -> None:
    """A signature made with another consumer secret does not match."""
    assert check(sign(TWEETS, consumer_secret="cs-guess")) == "signature does not match"


def test_signature_for_another_url_is_refused() -> None:
    """A signature covers the URL: one made for the local address fails for the public one."""
    signed = sign("http://127.0.0.1:8080/2/tweets")
    assert check(signed, url=TWEETS) == "signature does not match"


def test_query_is_covered() -> None:
    """Changing a query parameter after signing breaks the signature."""
    signed = sign("https://api.twitter.com/2/users/me?user.fields=created_at", "GET")
    assert check(signed, method="GET") is None
    assert check(signed, method="GET", query="user.fields=description") is not None


def test_form_body_is_covered() -> None:
    """A form-encoded body is part of the signature; tampering with it is refused."""
    signed = sign(TWEETS, body="status=%E9%AB%98%E9%9B%84")
    assert check(signed) is None
    assert check(signed, form="status=tampered") == "signature does not match"


def test_replayed_nonce_is_refused() -> None:
    """The same signed request cannot be used twice."""
    nonces = NonceBook()
    signed = sign(TWEETS)
    assert check(signed, nonces=nonces) is None
    assert check(signed, nonces=nonces) == "nonce already used"


def test_stale_timestamp_is_refused() -> None:
    """A request signed an hour ago is refused even though its signature is right."""
    signed = sign(TWEETS, timestamp=str(int(time.time()) - 3600), nonce="n0nce")
    assert check(signed) == "timestamp missing or out of the allowed window"


def test_missing_header_is_refused() -> None:
    """No Authorization header at all is refused."""
    result = verify_oauth1(
        method="POST",
        url=TWEETS,
        authorization=None,
        query="",
        form=[],
        credentials=CREDENTIALS,
        nonces=NonceBook(),
        now=time.time(),
    )
    assert result == "no OAuth Authorization header"
