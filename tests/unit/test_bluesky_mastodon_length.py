"""Bluesky's and Mastodon's counts, the Bluesky facets' UTF-8 byte ranges, and their configs."""

from __future__ import annotations

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bot.compose import richtext
from bot.compose.length import (
    BLUESKY_POST,
    LengthRule,
    bluesky_length,
    mastodon_length,
    prefix_weights,
)
from bot.config import BlueskyChannelConfig, MastodonChannelConfig
from bot.testing.bluesky_server import short_form
from bot.testing.mastodon_server import countable_length

LINK = "https://news.example.tw/article/20001?lang=zh-TW&ref=rss"


def test_link_facet_counts_bytes_not_code_points() -> None:
    """Before the link stand CJK characters (3 bytes each): the facet's byteStart is the UTF-8
    offset, and the bytes it covers are the shown link."""
    shown = richtext.display(f"高雄與格丁尼亞 {LINK}")
    (span,) = shown.links()
    assert shown.text == "高雄與格丁尼亞 news.example.tw/article/2000..."
    assert span.start == 8 and span.byte_start == 7 * 3 + 1
    data = shown.text.encode("utf-8")
    assert data[span.byte_start : span.byte_end].decode() == "news.example.tw/article/2000..."
    assert span.value == LINK


def test_tags_and_mentions_get_facets_after_a_space_only() -> None:
    """`#城市外交` after a space is a tag (trailing punctuation off), `a#b` is not; `@handle`
    is a mention candidate; digits alone are no tag."""
    shown = richtext.display("新聞 #城市外交。 a#b #2025 @cna.com.tw 見")
    found = [(s.kind, s.value) for s in shown.spans]
    assert found == [("tag", "城市外交"), ("mention", "cna.com.tw")]
    data = shown.text.encode()
    assert [data[s.byte_start : s.byte_end].decode() for s in shown.spans] == [
        "#城市外交",
        "@cna.com.tw",
    ]


def test_short_link_matches_the_servers_own_rule() -> None:
    """The channel's short form is the one the fake (and the Bluesky app) accepts."""
    for url in (LINK, "https://a.tw/", "https://a.tw/short", "https://a.tw/x?q=1#frag-12345"):
        assert richtext.short_url(url) == short_form(url)


def test_bluesky_counts_graphemes_of_the_shown_text() -> None:
    """A family emoji is one grapheme; the link counts as its short form."""
    assert bluesky_length("高雄與 👨‍👩‍👧") == 5
    assert bluesky_length(f"高雄 {LINK}") == 3 + len("news.example.tw/article/2000...")


def test_bluesky_bytes_limit_binds_for_heavy_graphemes() -> None:
    """250 family emoji are 250 graphemes but 4,500 bytes: over the 3,000-byte limit."""
    text = "👨‍👩‍👧" * 250
    assert len(regex.findall(r"\X", text)) == 250
    assert bluesky_length(text) > BLUESKY_POST.limit


def test_mastodon_counts_each_url_as_23_and_remote_mentions_locally() -> None:
    """A URL of any length weighs 23 (or the instance's figure); `@a@b.tw` counts as `@a`."""
    assert mastodon_length(f"高雄 {LINK}") == 3 + 23
    assert mastodon_length(f"高雄 {LINK}", url_weight=30) == 3 + 30
    assert mastodon_length("@cna@mastodon.example.tw 好") == len("@cna 好")
    assert LengthRule("mastodon", 500, url_weight=30).measure(LINK) == 30


TEXT = st.lists(
    st.sampled_from([*"高雄與格丁尼亞，。 #@\n", "👨‍👩‍👧", "🇹🇼", "e\u0301", "a"]), max_size=80
).map("".join)


@settings(max_examples=200, deadline=None)
@given(before=TEXT, after=TEXT)
def test_counts_agree_with_the_fakes(before: str, after: str) -> None:
    """Mastodon's count equals the fake's own; every Bluesky facet's bytes read as its text."""
    text = f"{before} {LINK} {after}"
    assert mastodon_length(text) == countable_length(text, 23)
    shown = richtext.display(text)
    data = shown.text.encode("utf-8")
    for span in shown.spans:
        assert data[span.byte_start : span.byte_end].decode() == shown.text[span.start : span.end]


@settings(max_examples=100, deadline=None)
@given(text=TEXT)
def test_prefix_weights_never_undercount(text: str) -> None:
    """The fitter's cumulative weights are never below the real count of the whole text."""
    assert prefix_weights(text, "bluesky")[-1] >= bluesky_length(text)
    assert prefix_weights(text, "mastodon")[-1] >= mastodon_length(text)


@pytest.mark.parametrize(
    ("model", "fields"),
    [
        (BlueskyChannelConfig, {"kind": "bluesky", "handle": "a.bsky.social", "app_password": " "}),
        (
            MastodonChannelConfig,
            {"kind": "mastodon", "instance_url": "https://m.tw", "access_token": ""},
        ),
    ],
)
def test_empty_secret_is_refused(model: type, fields: dict[str, str]) -> None:
    """An empty app password or access token (an unset variable) is a config error."""
    with pytest.raises(ValidationError, match="is empty"):
        model(template="t.j2", **fields)
