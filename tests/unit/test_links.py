"""Article links: canonical on the way in (one article, one URL), tracking on the way out."""

from __future__ import annotations

import pytest

from bot.compose.length import x_weighted_length
from bot.links import canonical_url, with_tracking


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("https://News.Example.tw:443/a?id=3&utm_source=rss#top", "https://news.example.tw/a?id=3"),
        ("/article/12345?fbclid=x", "https://news.example.tw/article/12345"),
        ("https://news.example.tw", "https://news.example.tw/"),
        ("https://news.example.tw/a b", "https://news.example.tw/a%20b"),
        ("https://news.example.tw/%E6%96%B0", "https://news.example.tw/%E6%96%B0"),
        ("https://新聞.tw/a", "https://xn--efvv70d.tw/a"),
    ],
)
def test_canonical_url(raw: str, canonical: str) -> None:
    """Absolute, lower-case host, no default port, fragment or tracking; encoded once only."""
    assert canonical_url(raw, "https://news.example.tw/rss.xml") == canonical


def test_chinese_path_is_encoded_so_x_weighs_the_link_as_23() -> None:
    """A link with Chinese in its path weighs 23 on X once encoded (40 as written)."""
    raw = "https://news.example.tw/新聞/高雄格丁尼亞"
    assert x_weighted_length(raw) > 23
    assert x_weighted_length(canonical_url(raw)) == 23


def test_kept_parameters_stay_as_the_site_wrote_them() -> None:
    """Parameters that are not tracking keep their order and spelling."""
    assert canonical_url("https://n.tw/a?b=2&a=1&utm_medium=x") == "https://n.tw/a?b=2&a=1"


def test_tracking_is_added_and_replaces_its_own_name() -> None:
    """A channel's tracking parameters are appended, replacing any of the same name."""
    link = with_tracking("https://n.tw/a?id=3&utm_source=rss", {"utm_source": "telegram"})
    assert link == "https://n.tw/a?id=3&utm_source=telegram"
    assert with_tracking("https://n.tw/a", {}) == "https://n.tw/a"
