"""The config contract: what editors write, and the one clear message for each mistake."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from bot.config import load_config, parse_duration
from bot.errors import ConfigError

GOOD = """\
timezone: Asia/Taipei
database: sqlite:///state/ledger.db
templates: tpl
sources:
  newsvision:
    kind: feed
    url: https://news.example.tw/rss.xml
    every: 2m
    backlog: 0
    max_age: 24h
    channels: [telegram]
channels:
  telegram:
    kind: telegram
    token: ${TG_TOKEN}
    chat: "@newsvision"
    template: telegram.html.j2
  x:
    kind: x
    consumer_key: ${XK}
    consumer_secret: ${XS}
    access_token: ${XT}
    access_token_secret: ${XTS}
    template: x.txt.j2
"""
ENV = {
    "TG_TOKEN": "tg-secret-value",
    "XK": "k-secret",
    "XS": "s-secret",
    "XT": "t-secret",
    "XTS": "ts-secret",
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "newsbot.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def error_for(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), environ=ENV if environ is None else environ)
    return caught.value


def test_good_config_is_validated_into_immutable_objects(tmp_path: Path) -> None:
    """A correct config loads, with durations, routes and secrets from the environment."""
    config = load_config(write(tmp_path, GOOD), environ=ENV)
    source = config.sources["newsvision"]
    assert source.every == timedelta(minutes=2)
    assert source.max_age == timedelta(hours=24)
    assert config.routes("newsvision") == ("telegram",)
    assert config.channels["telegram"].token.get_secret_value() == "tg-secret-value"  # type: ignore[union-attr]
    with pytest.raises(Exception, match="frozen"):
        source.every = timedelta(seconds=1)  # type: ignore[misc]


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    """Database and template paths are relative to the config file, not the working folder."""
    config = load_config(write(tmp_path, GOOD), environ=ENV)
    assert config.database == f"sqlite:///{(tmp_path / 'state' / 'ledger.db').resolve()}"
    assert config.templates == (tmp_path / "tpl").resolve()


def test_routes_default_to_every_channel(tmp_path: Path) -> None:
    """A source that names no channels posts to all of them."""
    config = load_config(
        write(tmp_path, GOOD.replace("    channels: [telegram]\n", "")), environ=ENV
    )
    assert config.routes("newsvision") == ("telegram", "x")


def test_secrets_are_listed_for_redaction_and_hidden_in_repr(tmp_path: Path) -> None:
    """Every secret value is known to the redactor and never shows in the config's repr."""
    config = load_config(write(tmp_path, GOOD), environ=ENV)
    assert set(config.secrets()) == set(ENV.values())
    assert "tg-secret-value" not in repr(config)


def test_missing_environment_variable_is_named(tmp_path: Path) -> None:
    """A ${NAME} with no such variable names the variable, the file, the line and the key."""
    error = error_for(tmp_path, GOOD, {k: v for k, v in ENV.items() if k != "TG_TOKEN"})
    assert "TG_TOKEN" in str(error)
    assert error.where == f"{tmp_path / 'newsbot.yaml'}:15"
    assert error.key == "channels.telegram.token"


def test_environment_default_is_used_when_unset(tmp_path: Path) -> None:
    """${NAME:-default} falls back to its default."""
    config = load_config(
        write(tmp_path, GOOD.replace('chat: "@newsvision"', "chat: ${CHAT:-@fallback}")),
        environ=ENV,
    )
    assert config.channels["telegram"].chat == "@fallback"  # type: ignore[union-attr]


def test_unknown_key_is_an_error_with_its_line(tmp_path: Path) -> None:
    """A misspelt key is refused, naming the key and its line."""
    error = error_for(tmp_path, GOOD.replace("    backlog: 0", "    backlgo: 0"))
    assert error.key == "sources.newsvision.backlgo"
    assert error.where and error.where.endswith(":9")
    assert "unknown key" in str(error)


def test_wrong_type_says_what_was_expected(tmp_path: Path) -> None:
    """A value of the wrong type names the key and shows what was given."""
    error = error_for(tmp_path, GOOD.replace("backlog: 0", "backlog: many"))
    assert error.key == "sources.newsvision.backlog"
    assert "integer" in str(error) and "'many'" in str(error)


def test_bad_duration_is_explained(tmp_path: Path) -> None:
    """A duration that is not like 30s/5m/2h/2d says which forms are accepted."""
    error = error_for(tmp_path, GOOD.replace("every: 2m", "every: soon"))
    assert error.key == "sources.newsvision.every"
    assert "30s, 5m, 2h or 2d" in str(error)


def test_unknown_kind_lists_the_known_ones(tmp_path: Path) -> None:
    """An unknown channel kind names the kinds newsbot has."""
    error = error_for(tmp_path, GOOD.replace("kind: x\n", "kind: myspace\n"))
    assert error.key == "channels.x"
    assert "unknown kind 'myspace'; expected one of 'telegram'" in str(error)


def test_route_to_missing_channel_names_it(tmp_path: Path) -> None:
    """A source routed to a channel that does not exist names the channel and the known ones."""
    error = error_for(tmp_path, GOOD.replace("channels: [telegram]", "channels: [telegarm]"))
    assert error.key == "sources.newsvision.channels"
    assert "telegarm" in str(error) and "telegram, x" in str(error)
    assert error.where and error.where.endswith(":11")


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    """Broken YAML is reported with its line, not a parser traceback."""
    error = error_for(tmp_path, GOOD.replace("    every: 2m", "    every: [2m"))
    assert "not valid YAML" in str(error)
    assert error.where and ":" in error.where


def test_duplicate_key_is_refused(tmp_path: Path) -> None:
    """A key written twice is an error rather than a silent override."""
    error = error_for(tmp_path, GOOD.replace("    every: 2m", "    every: 2m\n    every: 5m"))
    assert "twice" in str(error) and error.key == "sources.newsvision.every"


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    """A config path that does not exist is reported as such."""
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml", environ={})


def test_bad_strip_pattern_is_refused(tmp_path: Path) -> None:
    """A strip pattern that is not a regular expression is refused at load."""
    error = error_for(
        tmp_path, GOOD.replace("    backlog: 0", "    backlog: 0\n    strip: ['記者 (']")
    )
    assert "regular expression" in str(error)


def test_unknown_timezone_is_refused(tmp_path: Path) -> None:
    """A time zone that is not an IANA name is refused."""
    error = error_for(tmp_path, GOOD.replace("Asia/Taipei", "Asia/Taipai"))
    assert error.key == "timezone" and "IANA" in str(error)


def test_chat_must_be_a_username_or_id(tmp_path: Path) -> None:
    """A Telegram chat must be @name or a numeric id."""
    error = error_for(tmp_path, GOOD.replace('"@newsvision"', "newsvision"))
    assert error.key == "channels.telegram.chat"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("2h", 7200), ("2d", 172800), ("250ms", 0.25), (45, 45)],
)
def test_durations(text: str | int, seconds: float) -> None:
    """Durations are written with s, m, h, d or ms, or as seconds."""
    assert parse_duration(text).total_seconds() == seconds


def test_pushed_source_needs_the_listener(tmp_path: Path) -> None:
    """A webhook source without `health.listen` is refused: nothing would receive the pushes."""
    text = GOOD.replace(
        "channels:\n  telegram:",
        "  cms:\n    kind: webhook\n    secret: s3cret\nchannels:\n  telegram:",
    )
    error = error_for(tmp_path, text)
    assert error.key == "sources.cms.kind" and "health" in str(error)


def test_websub_needs_public_url(tmp_path: Path) -> None:
    """WebSub without `public_url` is refused, naming the setting."""
    text = "health:\n  listen: 127.0.0.1:0\n" + GOOD.replace(
        "    max_age: 24h\n", "    max_age: 24h\n    websub: true\n"
    )
    error = error_for(tmp_path, text)
    assert error.key == "sources.newsvision.websub" and "public_url" in str(error)


def test_error_never_repeats_a_value_from_the_environment(tmp_path: Path) -> None:
    """A secret put in the wrong key (here the token as the chat) is not echoed by the error."""
    error = error_for(tmp_path, GOOD.replace('chat: "@newsvision"', "chat: ${TG_TOKEN}"))
    assert error.key == "channels.telegram.chat"
    assert "tg-secret-value" not in str(error) and "[value from the environment]" in str(error)


def test_takedown_on_gone_is_only_where_pages_are_read_again() -> None:
    """takedown_on_gone (off by default) is refused where newsbot never reads an article's
    page: a feed or html source without enrich, and a webhook (whose CMS says delete itself);
    a sitemap takes it with or without enrich."""
    from bot.config import FeedSourceConfig, SitemapSourceConfig, WebhookSourceConfig

    assert not SitemapSourceConfig(kind="sitemap", url="https://a.tw/s.xml").takedown_on_gone
    assert SitemapSourceConfig(kind="sitemap", url="https://a.tw/s.xml", takedown_on_gone=True)
    assert FeedSourceConfig(kind="feed", url="https://a.tw/f", enrich=True, takedown_on_gone=True)
    with pytest.raises(ValueError, match="needs enrich: true"):
        FeedSourceConfig(kind="feed", url="https://a.tw/f", takedown_on_gone=True)
    with pytest.raises(ValueError, match="does not apply to a webhook"):
        WebhookSourceConfig(kind="webhook", secret="s" * 32, takedown_on_gone=True)
