"""YAML config → validated, immutable objects.

The config file is read once, here. ``${NAME}`` (or ``${NAME:-default}``) in any string value is
replaced from the environment; relative paths resolve against the config file's folder. Every
mistake becomes one :class:`~bot.errors.ConfigError` naming the file, the line and the key, and
saying what was expected. Nothing else in newsbot reads the YAML or the environment.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from bot import USER_AGENT
from bot.errors import ConfigError
from bot.model import Post

DEFAULT_CONFIG = Path("config/newsbot.yaml")
CONFIG_ENV = "NEWSBOT_CONFIG"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def parse_duration(value: object) -> timedelta:
    """``30s``, ``5m``, ``2h``, ``2d``, ``250ms`` or a number of seconds → timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m, 2h or 2d")
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2) or "s"])
    raise ValueError(f"expected a duration such as 30s, 5m, 2h or 2d, got {value!r}")


def _optional_duration(value: object) -> timedelta | None:
    if value is None or value is False or (isinstance(value, str) and value.strip() == "off"):
        return None
    return parse_duration(value)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
OptionalDuration = Annotated[timedelta | None, BeforeValidator(_optional_duration)]

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*(?:\.\d+)?)\s*(ms|s|sec|m|min|h|hour|d|day)\s*$")
_RATE_UNITS = {"sec": "s", "min": "m", "hour": "h", "day": "d"}


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``count`` posts per ``period``, e.g. ``20/min`` or ``100/15m``."""

    count: int
    period: timedelta

    def __str__(self) -> str:
        return f"{self.count}/{self.period}"


RATE_OFF = Rate(0, timedelta(0))


def parse_rate(value: object) -> Rate | None:
    # ``off`` says "no cap at all", unlike leaving ``rate`` out, which means the platform's cap.
    if value is None:
        return None
    if value is False or value == "off":
        return RATE_OFF
    if isinstance(value, Rate):
        return value
    match = _RATE.match(str(value))
    if not match or int(match.group(1)) < 1:
        raise ValueError(f"expected a rate such as 20/min, 30/s or 100/15m, got {value!r}")
    unit = _RATE_UNITS.get(match.group(3), match.group(3))
    period = parse_duration(f"{match.group(2) or 1}{unit}")
    return Rate(int(match.group(1)), period)


_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily window, in the configured time zone, during which a channel posts nothing.
    ``start > end`` wraps midnight (``23:00-06:30``)."""

    start: time
    end: time

    def __contains__(self, moment: time) -> bool:
        if self.start <= self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end


def parse_quiet_hours(value: object) -> QuietHours | None:
    if value is None or value is False or value == "off":
        return None
    if isinstance(value, QuietHours):
        return value
    parts = str(value).replace("–", "-").split("-")
    if len(parts) == 2:
        start, end = (_CLOCK.match(p.strip()) for p in parts)
        if start and end:
            return QuietHours(
                time(int(start.group(1)), int(start.group(2))),
                time(int(end.group(1)), int(end.group(2))),
            )
    raise ValueError(f"expected a daily window such as 01:00-06:30, got {value!r}")


OptionalRate = Annotated[Rate | None, BeforeValidator(parse_rate)]
OptionalQuietHours = Annotated[QuietHours | None, BeforeValidator(parse_quiet_hours)]


class _Strict(BaseModel):
    """Immutable, and a key we do not know is an error: a typo must never be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


# ---------------------------------------------------------------------------------------- sources


class FilterConfig(_Strict):
    """Which articles of a source are posted. Keywords match title and summary; a keyword
    written ``re:...`` is a regular expression (matched with a time bound). Filtered articles
    are recorded ``skipped`` with the rule that filtered them."""

    include_categories: tuple[str, ...] = ()
    exclude_categories: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @field_validator("include", "exclude")
    @classmethod
    def _regexes_compile(cls, words: tuple[str, ...]) -> tuple[str, ...]:
        import regex

        for word in words:
            if word.startswith("re:"):
                try:
                    regex.compile(word[3:])
                except regex.error as exc:
                    raise ValueError(f"{word!r} is not a valid regular expression: {exc}") from exc
        return words


class SourceConfig(_Strict):
    """What every kind of source shares."""

    name: str = ""
    every: Duration = timedelta(minutes=5)
    backlog: int = Field(default=0, ge=0)
    max_age: OptionalDuration = timedelta(hours=24)
    channels: tuple[str, ...] | None = None
    strip: tuple[str, ...] = ()
    excerpt_length: int = Field(default=160, ge=10, le=4000)
    filters: FilterConfig = FilterConfig()
    priority: Literal["normal", "high"] = "normal"
    priority_categories: tuple[str, ...] = ()
    enrich: bool = False

    @field_validator("strip")
    @classmethod
    def _patterns_compile(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from exc
        return patterns


class FeedSourceConfig(SourceConfig):
    """An RSS 0.9x/1.0/2.0, Atom or JSON Feed, over HTTP(S) or from a local file."""

    kind: Literal["feed"]
    url: str
    timeout: Duration = timedelta(seconds=20)
    max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    user_agent: str = USER_AGENT
    websub: bool = False
    websub_every: Duration = timedelta(hours=1)

    @field_validator("url")
    @classmethod
    def _url_scheme(cls, url: str) -> str:
        return _http_or_file(url)


def _http_or_file(url: str) -> str:
    scheme = urlsplit(url).scheme
    if scheme not in ("http", "https", "file"):
        raise ValueError(f"expected an http(s) URL or a file path, got {url!r}")
    return url


class HtmlSelectors(_Strict):
    """CSS selectors, relative to each item; ``sel@attr`` reads an attribute."""

    item: str
    title: str
    link: str = "a@href"
    excerpt: str | None = None
    date: str | None = None
    image: str | None = None


class HtmlSourceConfig(SourceConfig):
    """A listing page of a site without a feed, read with CSS selectors."""

    kind: Literal["html"]
    url: str
    selectors: HtmlSelectors
    timeout: Duration = timedelta(seconds=20)
    max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)

    @field_validator("url")
    @classmethod
    def _url_scheme(cls, url: str) -> str:
        return _http_or_file(url)


class SitemapSourceConfig(SourceConfig):
    """A Google News sitemap (``news:title``, ``news:publication_date``); indexes are followed."""

    kind: Literal["sitemap"]
    url: str
    timeout: Duration = timedelta(seconds=20)
    max_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)

    @field_validator("url")
    @classmethod
    def _url_scheme(cls, url: str) -> str:
        return _http_or_file(url)


class WebhookSourceConfig(SourceConfig):
    """Articles pushed by the CMS to ``POST /hooks/<name>``, signed with HMAC-SHA256."""

    kind: Literal["webhook"]
    secret: SecretStr
    tolerance: Duration = timedelta(minutes=5)
    every: Duration = timedelta(minutes=5)


AnySource = Annotated[
    FeedSourceConfig | HtmlSourceConfig | SitemapSourceConfig | WebhookSourceConfig,
    Field(discriminator="kind"),
]


# --------------------------------------------------------------------------------------- channels


class ChannelConfig(_Strict):
    """What every kind of channel shares: the template, tracking, pacing and retries.

    ``rate`` left unset takes the platform's documented limit (see ``default_rate``)."""

    name: str = ""
    template: str
    tracking: Mapping[str, str] = Field(default_factory=dict)
    min_gap: Duration = timedelta(0)
    rate: OptionalRate = None
    burst: int = Field(default=1, ge=1)
    quiet_hours: OptionalQuietHours = None
    max_attempts: int = Field(default=8, ge=1)
    retry_backoff: Duration = timedelta(seconds=30)
    resend_uncertain: bool = False

    @property
    def default_rate(self) -> Rate | None:
        return None

    @property
    def effective_rate(self) -> Rate | None:
        if self.rate == RATE_OFF:
            return None
        return self.rate or self.default_rate

    def post_cost(self, post: Post) -> float | None:
        """What the platform charges for this post (``None``: nothing is charged)."""
        return None

    def secrets(self) -> list[str]:
        """Every secret value of this channel, for the log redaction filter."""
        return [
            value.get_secret_value()
            for value in self.__dict__.values()
            if isinstance(value, SecretStr) and value.get_secret_value()
        ]


class TelegramButton(_Strict):
    label: str = "閱讀全文"


class TelegramChannelConfig(ChannelConfig):
    kind: Literal["telegram"]
    token: SecretStr
    chat: str
    api_url: str = "https://api.telegram.org"
    link_preview: Literal["on", "off", "above", "large", "large_above"] = "on"
    silent: bool = False
    button: TelegramButton | None = None
    photo: bool = False
    timeout: Duration = timedelta(seconds=20)

    @property
    def default_rate(self) -> Rate | None:
        # Telegram: about 20 messages a minute into one channel.
        return Rate(20, timedelta(minutes=1))

    @field_validator("chat")
    @classmethod
    def _chat_form(cls, chat: str) -> str:
        if not (chat.startswith("@") or re.fullmatch(r"-?\d+", chat)):
            raise ValueError(f"expected @channelname or a numeric chat id, got {chat!r}")
        return chat


class XChannelConfig(ChannelConfig):
    kind: Literal["x"]
    consumer_key: SecretStr
    consumer_secret: SecretStr
    access_token: SecretStr
    access_token_secret: SecretStr
    api_url: str = "https://api.twitter.com"
    media: bool = False
    timeout: Duration = timedelta(seconds=20)
    price_per_post: float = Field(default=0.0, ge=0)
    price_per_link_post: float = Field(default=0.0, ge=0)
    monthly_budget: float | None = Field(default=None, ge=0)
    currency: str = "USD"

    def post_cost(self, post: Post) -> float | None:
        # X prices a post that carries a link higher than one that does not.
        has_link = bool(post.link) and post.link in post.text
        return self.price_per_link_post if has_link else self.price_per_post

    @property
    def default_rate(self) -> Rate | None:
        # X: 100 posts per 15 minutes per user.
        return Rate(100, timedelta(minutes=15))


class ConsoleChannelConfig(ChannelConfig):
    """Prints each post. ``measure`` picks whose length rules apply: by default Telegram's for an
    ``*.html.j2`` template and X's otherwise, so the console shows what the platform would get."""

    kind: Literal["console"]
    measure: Literal["telegram", "x"] | None = None

    @property
    def rules(self) -> Literal["telegram", "x"]:
        if self.measure:
            return self.measure
        return "telegram" if self.template.endswith(".html.j2") else "x"


AnyChannel = Annotated[
    TelegramChannelConfig | XChannelConfig | ConsoleChannelConfig, Field(discriminator="kind")
]


# ------------------------------------------------------------------------------ daemon settings


class HealthConfig(_Strict):
    """The daemon's HTTP listener: ``/healthz``, ``/metrics``, and the push endpoints
    (``/hooks/<source>``, ``/websub/<source>``)."""

    listen: str = "127.0.0.1:9108"

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError(f"expected host:port such as 127.0.0.1:9108, got {value!r}")
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class AlertsConfig(_Strict):
    """Where operations hear about trouble: a Telegram chat, rate-limited."""

    token: SecretStr
    chat: str
    api_url: str = "https://api.telegram.org"
    min_interval: Duration = timedelta(minutes=5)
    timeout: Duration = timedelta(seconds=10)

    def secrets(self) -> list[str]:
        return [self.token.get_secret_value()] if self.token.get_secret_value() else []


# ------------------------------------------------------------------------------------------- root


class Config(_Strict):
    """The whole configuration, validated. ``path`` is the file it came from."""

    path: Path
    timezone: str = "Asia/Taipei"
    database: str = "sqlite:///var/newsbot.db"
    templates: Path = Path("../templates")
    sources: Mapping[str, AnySource]
    channels: Mapping[str, AnyChannel]
    health: HealthConfig | None = None
    alerts: AlertsConfig | None = None
    public_url: str | None = None
    retention: OptionalDuration = None
    stop_timeout: Duration = timedelta(seconds=30)
    # Environment values put into a URL (a private feed's key): secret, though no key says so.
    _secrets_in_urls: tuple[str, ...] = PrivateAttr(default=())

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"expected an IANA time zone such as Asia/Taipei, got {name!r}"
            ) from exc
        return name

    @field_validator("sources", "channels")
    @classmethod
    def _not_empty(cls, value: Mapping[str, Any]) -> Mapping[str, Any]:
        if not value:
            raise ValueError("expected at least one entry")
        return value

    @model_validator(mode="after")
    def _routes_exist(self) -> Config:
        for name, source in self.sources.items():
            for channel in source.channels or ():
                if channel not in self.channels:
                    known = ", ".join(sorted(self.channels))
                    raise _RouteError(name, channel, known)
        return self

    @model_validator(mode="after")
    def _push_needs_listener(self) -> Config:
        for name, source in self.sources.items():
            pushed = isinstance(source, WebhookSourceConfig) or (
                isinstance(source, FeedSourceConfig) and source.websub
            )
            if pushed and self.health is None:
                raise _SettingError(
                    ("sources", name, "kind"),
                    "a pushed source needs the daemon's listener: add `health: {listen: "
                    "127.0.0.1:9108}` (webhooks arrive at /hooks/<source>)",
                )
            if isinstance(source, FeedSourceConfig) and source.websub and not self.public_url:
                raise _SettingError(
                    ("sources", name, "websub"),
                    "WebSub needs `public_url`: the address at which the hub can reach this "
                    "daemon's listener",
                )
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def routes(self, source: str) -> tuple[str, ...]:
        """The channels a source posts to: its list, or every channel when it names none."""
        chosen = self.sources[source].channels
        return tuple(chosen) if chosen is not None else tuple(self.channels)

    def secrets(self) -> list[str]:
        """Every secret value in the config: the log redaction filter hides each of them."""
        found = [secret for channel in self.channels.values() for secret in channel.secrets()]
        for source in self.sources.values():
            if isinstance(source, WebhookSourceConfig):
                found.append(source.secret.get_secret_value())
        if self.alerts is not None:
            found.extend(self.alerts.secrets())
        found.extend(self._secrets_in_urls)
        return [secret for secret in found if secret]


class _SettingError(ValueError):
    """A rule that spans several settings, reported at the key that must change."""

    def __init__(self, at: tuple[str, ...], message: str) -> None:
        self.at = at
        super().__init__(message)


class _RouteError(ValueError):
    def __init__(self, source: str, channel: str, known: str) -> None:
        self.source = source
        self.channel = channel
        super().__init__(f"no channel named {channel!r} (channels are: {known})")


# ----------------------------------------------------------------------------------------- loading


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``--config``, else ``$NEWSBOT_CONFIG``, else ``config/newsbot.yaml``."""
    if explicit:
        return Path(explicit)
    from_env = os.environ.get(CONFIG_ENV)
    return Path(from_env) if from_env else DEFAULT_CONFIG


def load_config(
    path: str | os.PathLike[str],
    environ: Mapping[str, str] | None = None,
    *,
    secrets_optional: bool = False,
) -> Config:
    """Read, substitute, validate. Raises :class:`ConfigError` naming file, line and key.

    ``secrets_optional``: a secret (a channel's token or key) whose environment variable is
    not set is left empty instead of refused — for commands that only read the ledger
    (``status``, ``retry``, ``db``), so an editor can look without holding the X keys."""
    path = Path(path)
    environ = os.environ if environ is None else environ
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("no such config file", where=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the config file: {exc}", where=str(path)) from None

    lines = _LineIndex(str(path), secrets_optional=secrets_optional)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"not valid YAML: {problem}", where=where) from None
    if node is None:
        raise ConfigError("the config file is empty", where=str(path))
    raw = lines.build(node, (), environ)
    if not isinstance(raw, dict):
        raise ConfigError("expected a mapping of settings at the top", where=f"{path}:1")

    base = path.resolve().parent
    for section in ("sources", "channels"):
        entries = raw.get(section)
        if isinstance(entries, dict):
            for name, entry in entries.items():
                if isinstance(entry, dict):
                    entry.setdefault("name", name)
    _resolve_paths(raw, base)
    raw["path"] = path.resolve()
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise lines.explain(exc) from None
    config._secrets_in_urls = tuple(sorted(lines.in_urls))
    return config


def _resolve_paths(raw: dict[str, Any], base: Path) -> None:
    templates = raw.get("templates", "../templates")
    if isinstance(templates, str):
        raw["templates"] = (base / templates).resolve()
    database = raw.get("database", "sqlite:///var/newsbot.db")
    if isinstance(database, str):
        raw["database"] = resolve_database_url(database, base)
    for source in (raw.get("sources") or {}).values():
        if isinstance(source, dict) and isinstance(source.get("url"), str):
            source["url"] = _resolve_source_url(source["url"], base)


def resolve_database_url(url: str, base: Path) -> str:
    """``sqlite:///relative/path.db`` resolves against ``base``; other URLs pass unchanged."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        rest = url[len(prefix) :]
        if rest and rest != ":memory:":
            return prefix + str((base / rest).resolve())
    return url


def _resolve_source_url(url: str, base: Path) -> str:
    if "://" in url:
        return url
    if url.startswith("file:"):
        url = url[len("file:") :]
    return (base / url).resolve().as_uri()


def _secret_fields() -> frozenset[str]:
    """The names of every channel (and alerts) setting that holds a secret."""
    kinds: tuple[type[_Strict], ...] = (
        TelegramChannelConfig,
        XChannelConfig,
        ConsoleChannelConfig,
        AlertsConfig,
    )
    return frozenset(
        name
        for kind in kinds
        for name, field in kind.model_fields.items()
        if field.annotation is SecretStr
    )


def _is_secret(at: tuple[str | int, ...]) -> bool:
    """Whether the value at this key path is a channel's (or the alerts') secret."""
    return ((len(at) == 3 and at[0] == "channels") or (len(at) == 2 and at[0] == "alerts")) and str(
        at[-1]
    ) in _secret_fields()


class _LineIndex:
    """Builds plain data from YAML nodes while remembering the line of every key."""

    def __init__(self, filename: str, *, secrets_optional: bool = False) -> None:
        self.filename = filename
        self.secrets_optional = secrets_optional
        self.lines: dict[tuple[str | int, ...], int] = {}
        # Values that came from the environment may be secrets put in the wrong key: an error
        # message about that key must not repeat them.
        self.from_environment: set[str] = set()
        self.in_urls: set[str] = set()

    def build(self, node: yaml.Node, at: tuple[str | int, ...], environ: Mapping[str, str]) -> Any:
        self.lines.setdefault(at, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = yaml.SafeLoader(io_empty()).construct_object(key_node)
                key = str(key) if not isinstance(key, str) else key
                if key in result:
                    raise ConfigError(
                        "this key appears twice",
                        where=self.where(key_node),
                        key=_dotted((*at, key)),
                    )
                self.lines[(*at, key)] = key_node.start_mark.line + 1
                result[key] = self.build(value_node, (*at, key), environ)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*at, i), environ) for i, item in enumerate(node.value)]
        value = yaml.SafeLoader(io_empty()).construct_object(node)
        if isinstance(value, str) and "${" in value:
            value = self._substitute(value, node, at, environ)
        return value

    def _substitute(
        self, value: str, node: yaml.Node, at: tuple[str | int, ...], environ: Mapping[str, str]
    ) -> str:
        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in environ:
                if len(environ[name]) >= 4:
                    self.from_environment.add(environ[name])
                    if str(at[-1]).endswith("url"):
                        # A key in a feed's or a site's URL: quoted by every fetch error.
                        self.in_urls.add(environ[name])
                return environ[name]
            if default is not None:
                return default
            if self.secrets_optional and _is_secret(at):
                return ""
            raise ConfigError(
                f"the environment variable {name} is not set "
                f"(export {name}=... before starting newsbot, or put it in the environment file)",
                where=self.where(node),
                key=_dotted(at),
            )

        return _ENV_REF.sub(replace, value)

    def where(self, node: yaml.Node) -> str:
        return f"{self.filename}:{node.start_mark.line + 1}"

    def line_of(self, loc: tuple[str | int, ...]) -> int | None:
        for end in range(len(loc), -1, -1):
            line = self.lines.get(loc[:end])
            if line is not None:
                return line
        return None

    def explain(self, exc: ValidationError) -> ConfigError:
        """The first validation error, in the editor's terms, with no value from the
        environment repeated in it."""
        error = self._explain(exc)
        for value in sorted(self.from_environment, key=len, reverse=True):
            error.message = error.message.replace(value, "[value from the environment]")
        error.args = (str(error),)
        return error

    def _explain(self, exc: ValidationError) -> ConfigError:
        error = exc.errors(include_url=False)[0]
        loc = self._data_loc(tuple(error["loc"]))
        line = self.line_of(loc)
        where = f"{self.filename}:{line}" if line else self.filename
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, _SettingError):
            line = self.line_of(cause.at)
            where = f"{self.filename}:{line}" if line else self.filename
            return ConfigError(str(cause), where=where, key=_dotted(cause.at))
        if isinstance(cause, _RouteError):
            key = _dotted(("sources", cause.source, "channels"))
            line = self.line_of(("sources", cause.source, "channels"))
            where = f"{self.filename}:{line}" if line else self.filename
            return ConfigError(str(cause), where=where, key=key)
        return ConfigError(_message(error, loc), where=where, key=_dotted(loc) or None)

    def _data_loc(self, loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
        """Drops the kind tags pydantic inserts: ``sources.a.feed.url`` → ``sources.a.url``."""
        kept: list[str | int] = []
        for part in loc:
            candidate = (*kept, part)
            if candidate in self.lines or part not in _KIND_TAGS:
                kept.append(part)
        return tuple(kept)


_KIND_TAGS = {"feed", "html", "sitemap", "webhook", "telegram", "x", "console"}


def _message(error: Mapping[str, Any], loc: tuple[str | int, ...]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key (check its spelling; see the configuration reference in README.md)"
    if kind == "missing":
        return "this required key is missing"
    if kind == "union_tag_invalid":
        ctx = error.get("ctx", {})
        return f"unknown kind {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags', '')}"
    if kind == "union_tag_not_found":
        return "the 'kind' key is missing (say which kind of source or channel this is)"
    message = str(error["msg"])
    message = message.removeprefix("Value error, ")
    if kind.startswith(("int_", "bool_", "string_", "float_", "dict_", "tuple_", "list_")):
        message = f"{message}, got {error.get('input')!r}"
    return message


def _dotted(loc: tuple[str | int, ...]) -> str:
    return ".".join(str(part) for part in loc)


def io_empty() -> str:
    """An empty stream for a throwaway loader that only constructs single scalar nodes."""
    return ""
