"""The fetch policy's rules: which addresses are private, what allow_private accepts, which
links may be posted. No network."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from bot.config import load_config
from bot.errors import ConfigError
from bot.links import canonical_url
from bot.model import Article
from bot.sources.policy import FetchPolicy, address_kind, allow_entry, link_refusal, screen


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "shared (carrier-grade NAT)"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("192.0.2.10", "private"),  # TEST-NET-1: documentation, never on the internet
        ("::ffff:127.0.0.1", "loopback (inside an IPv6 address)"),
        ("::ffff:169.254.169.254", "link-local (inside an IPv6 address)"),
        ("2002:7f00:1::", "loopback (inside an IPv6 address)"),  # 6to4 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", "link-local (inside an IPv6 address)"),  # NAT64 of metadata
        ("8.8.8.8", None),
        ("203.69.1.1", None),
        ("2001:4860:4860::8888", None),
        ("::ffff:8.8.8.8", None),
    ],
)
def test_address_kinds(address: str, kind: str | None) -> None:
    """Every non-public address is named for what it is; public ones are None."""
    assert address_kind(ipaddress.ip_address(address)) == kind


def test_allow_private_is_least_privilege() -> None:
    """An allowlist opens exactly its entries: a network, an address, a host name."""
    policy = FetchPolicy.allowing(["cms.intranet", "10.1.2.0/24", "127.0.0.1"])
    assert policy.address_refusal(ipaddress.ip_address("10.1.2.200")) is None
    assert policy.address_refusal(ipaddress.ip_address("127.0.0.1")) is None
    assert policy.address_refusal(ipaddress.ip_address("10.1.3.1")) is not None
    assert policy.address_refusal(ipaddress.ip_address("127.0.0.2")) is not None
    assert policy.address_refusal(ipaddress.ip_address("169.254.169.254")) is not None
    assert policy.address_refusal(ipaddress.ip_address("10.9.9.9"), "CMS.intranet.") is None
    assert policy.address_refusal(ipaddress.ip_address("10.9.9.9"), "www.cms.intranet") is not None


@pytest.mark.parametrize(
    ("entry", "normal"),
    [
        ("CMS.Intranet", "cms.intranet"),
        ("10.1.2.0/24", "10.1.2.0/24"),
        ("127.0.0.1", "127.0.0.1"),
        ("fd00:1::/64", "fd00:1::/64"),
        ("新聞.台灣", "xn--efvv70d.xn--kpry57d"),
    ],
)
def test_allow_entries_are_normalised(entry: str, normal: str) -> None:
    """Host names lower-cased (IDNA), addresses and networks in their standard form."""
    assert allow_entry(entry) == normal


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("10.1.2.5/24", "not a network"),
        ("0.0.0.0/0", "every address"),
        ("::/0", "every address"),
        ("*.intranet", "no wildcards"),
        ("http://cms.intranet/", "is a URL"),
        ("cms.intranet:8080", "ports"),
        ("127.1", "four numbers"),
        ("2130706433", "four numbers"),
        ("", "empty"),
    ],
)
def test_bad_allow_entries_are_refused(entry: str, says: str) -> None:
    """A wrong entry is refused with what was expected, never silently widened."""
    with pytest.raises(ValueError, match=says):
        allow_entry(entry)


def test_bad_allow_private_is_a_config_error_with_file_line_and_key(tmp_path: Path) -> None:
    """A bad allow_private entry is one message naming file, line and key; a boolean
    (that would open everything) is no allowlist at all."""
    path = tmp_path / "newsbot.yaml"
    path.write_text(
        "sources:\n"
        "  cms:\n"
        "    kind: feed\n"
        "    url: http://cms.intranet/rss\n"
        "    allow_private:\n"
        "      - cms.intranet\n"
        "      - 10.1.2.0/33\n"
        "channels:\n"
        "  console: {kind: console, template: x.txt.j2}\n",
        "utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    message = str(caught.value)
    assert f"{path}:7" in message
    assert "sources.cms.allow_private" in message and "10.1.2.0/33" in message
    path.write_text(path.read_text("utf-8").replace("      - 10.1.2.0/33\n", ""), "utf-8")
    config = load_config(path, environ={})
    assert config.sources["cms"].allow_private == ("cms.intranet",)
    path.write_text(
        path.read_text("utf-8")
        .replace("      - cms.intranet\n", "")
        .replace("allow_private:\n", "allow_private: true\n"),
        "utf-8",
    )
    with pytest.raises(ConfigError, match="allow_private"):
        load_config(path, environ={})


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("file:///etc/passwd", "file: URL"),
        ("javascript:alert(1)", "javascript: URL"),
        ("ftp://news.example.tw/a", "ftp: URL"),
        ("http://admin:hunter2@news.example.tw/a", "user name or password"),
        ("https://token@news.example.tw/a", "user name or password"),
        ("http://127.0.0.2/secret", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[::ffff:10.0.0.1]/", "private"),
        ("http://2130706433/secret", "127.0.0.1 is a loopback"),
        ("http://0x7f.1:8080/", "127.0.0.1 is a loopback"),
        ("http://0251.0376.0251.0376/", "169.254.169.254 is a link-local"),
        ("http://localhost:8080/", "this machine"),
        ("http://admin.localhost/", "this machine"),
        ("http:///nohost", "no host"),
    ],
)
def test_links_that_may_not_be_posted(url: str, says: str) -> None:
    """Not http(s), with credentials, or to an address the source may not fetch: refused."""
    refusal = link_refusal(url)
    assert refusal is not None and says in refusal
    assert "hunter2" not in refusal


def test_links_that_may_be_posted() -> None:
    """Public links pass; a private address passes only when the source allows it."""
    assert link_refusal("https://news.example.tw/article/20051") is None
    assert link_refusal("http://203.69.1.1/a") is None
    allowed = FetchPolicy.allowing(["10.1.2.0/24", "localhost"])
    assert link_refusal("http://10.1.2.3/a", allowed) is None
    assert link_refusal("http://localhost/a", allowed) is None
    assert link_refusal("http://10.1.3.3/a", allowed) is not None


def test_screen_drops_refused_articles_and_refused_images() -> None:
    """An article with a bad link is dropped with its reason; one with a bad image keeps its
    place without the image."""
    articles = [
        Article(key="1", url="http://127.0.0.2/secret", title="內部"),
        Article(key="2", url="https://news.example.tw/a/2", title="好", image="file:///x.png"),
        Article(key="3", url="https://news.example.tw/a/3", title="好", image="https://i.tw/3.jpg"),
    ]
    kept, warnings = screen(articles, FetchPolicy())
    assert [(a.key, a.image) for a in kept] == [("2", None), ("3", "https://i.tw/3.jpg")]
    assert len(warnings) == 2
    assert "not posted" in warnings[0] and "posted without it" in warnings[1]


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("https://news.example.tw/a/1?session=abc&id=3", "https://news.example.tw/a/1?id=3"),
        ("https://news.example.tw/a/1?PHPSESSID=f00&p=2", "https://news.example.tw/a/1?p=2"),
        ("https://news.example.tw/a/1;jsessionid=0A1B?x=1", "https://news.example.tw/a/1?x=1"),
        ("https://news.example.tw/a?ASPSESSIONIDQATRBDSA=K", "https://news.example.tw/a"),
        ("https://news.example.tw/a?sessionid=1&sid=7", "https://news.example.tw/a?sid=7"),
    ],
)
def test_session_ids_leave_the_canonical_link(raw: str, canonical: str) -> None:
    """Session ids, new on every visit, never make a link look new; a story's ``sid`` stays."""
    assert canonical_url(raw) == canonical
