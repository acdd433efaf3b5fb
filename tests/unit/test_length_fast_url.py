"""The fast path for simple links in bot.compose.length gives twitter-text's own answer."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twitter_text import extract_urls_with_indices, parse_tweet

from bot.compose.length import _chunk_urls, _simple_url, x_weighted_length

HOSTS = st.sampled_from(
    [
        "news.example.tw",
        "www.gov.tw",
        "example.com",
        "t.co",
        "a.b",
        "foo.invalidtld",
        "xn--wgv71a119e.jp",
        "-bad.example.com",
        "sub.domain.co.uk",
        "1.2.3.4",
    ]
)
URL_CHARS = st.text(st.sampled_from("aZ09/_.~%=+,;:!*$&|-?#@()'[]é"), max_size=24)


def library(chunk: str) -> tuple[tuple[int, int], ...]:
    found: dict[int, int] = {}
    for entity in extract_urls_with_indices(chunk):
        found[entity["indices"][0]] = len(entity["url"])
    return tuple(found.items())


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(["http://", "https://"]), HOSTS, URL_CHARS)
def test_simple_links_are_read_as_the_library_reads_them(scheme: str, host: str, rest: str) -> None:
    chunk = scheme + host + rest
    _chunk_urls.cache_clear()
    assert _chunk_urls(chunk) == library(chunk)
    if _simple_url(chunk):
        assert library(chunk) == ((0, len(chunk)),)


def test_a_typical_link_takes_the_fast_path() -> None:
    link = "https://news.example.tw/article/20050?utm_source=x&utm_medium=social"
    assert _simple_url(link)
    text = f"【高雄迎來第43座姊妹市】高雄與波蘭格丁尼亞締盟。 {link}"
    assert x_weighted_length(text) == parse_tweet(text).weightedLength


def test_links_the_fast_path_must_leave_to_the_library() -> None:
    for chunk in (
        "https://t.co/abc/def",  # cut after the slug
        "https://news.example.tw/a.",  # a trailing dot is not part of the URL
        "https://news.example.tw/新聞/1",  # CJK ends the URL
        "https://news.example.tw:8080/a",  # a port
        "https://foo.invalidtld/a",  # not a top-level domain
    ):
        assert not _simple_url(chunk)
        assert _chunk_urls(chunk) == library(chunk)
