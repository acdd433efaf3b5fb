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
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    AliasChoices,
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
from bot.model import Correction, Post, Takedown

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
    try:
        if isinstance(value, int | float):
            return timedelta(seconds=value)
        if isinstance(value, str):
            match = _DURATION.match(value)
            if match:
                return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2) or "s"])
    except (OverflowError, ValueError):
        # timedelta tops out at 999999999 days; infinity and NaN are no durations either.
        raise ValueError(f"expected a duration such as 30s, 5m, 2h or 2d, got {value!r}") from None
    raise ValueError(f"expected a duration such as 30s, 5m, 2h or 2d, got {value!r}")


def _spoken(span: timedelta) -> str:
    """A duration as the config writes it: ``180d``, ``36h``, ``90s``."""
    seconds = span.total_seconds()
    for unit in ("d", "h", "m", "s"):
        if seconds >= _UNITS[unit] and seconds % _UNITS[unit] == 0:
            return f"{seconds / _UNITS[unit]:g}{unit}"
    return f"{seconds:g}s"


def _within(low: timedelta, high: timedelta, *, above: bool = False) -> Any:
    """A check that a duration lies in ``[low, high]`` (``(low, high]`` when ``above``)."""

    def check(span: timedelta | None) -> timedelta | None:
        if span is None:
            return None
        too_low = span <= low if above else span < low
        if too_low or span > high:
            least = f"more than {_spoken(low)}" if above else f"at least {_spoken(low)}"
            raise ValueError(
                f"expected a duration {least} and at most {_spoken(high)}, "
                f"got {_spoken(span) if span >= timedelta(0) else span}"
            )
        return span

    return AfterValidator(check)


def _optional_duration(value: object) -> timedelta | None:
    if value is None or value is False or (isinstance(value, str) and value.strip() == "off"):
        return None
    return parse_duration(value)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
OptionalDuration = Annotated[timedelta | None, BeforeValidator(_optional_duration)]

# Ranges: a value outside one is a mistake (a negative interval spins the scheduler; a duration
# of centuries overflows the clock arithmetic), reported at its key like any other.
_ZERO, _YEAR = timedelta(0), timedelta(days=365)
#: How often a source is read: at least a second (less would poll in a busy loop).
Interval = Annotated[Duration, _within(timedelta(seconds=1), timedelta(days=30))]
#: How long to wait for a server: more than nothing, at most ten minutes.
Timeout = Annotated[Duration, _within(_ZERO, timedelta(minutes=10), above=True)]
#: A pause or a backoff: zero or more, at most a week.
Pause = Annotated[Duration, _within(_ZERO, timedelta(days=7))]
#: A window (a webhook's clock tolerance, the stop timeout): more than nothing, a day at most.
Window = Annotated[Duration, _within(_ZERO, timedelta(days=1), above=True)]
#: How long something is kept (``max_age``, ``retention``) or ``off``: up to ten years.
Keep = Annotated[OptionalDuration, _within(_ZERO, 10 * _YEAR, above=True)]
#: A byte cap: a kibibyte to a gibibyte.
Bytes = Annotated[int, Field(ge=1024, le=1 << 30)]
#: Money: a finite, non-negative amount.
Amount = Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)]


def _not_blank(secret: SecretStr) -> SecretStr:
    # An empty key would sign (or verify) with "": anyone could forge a push.
    if not secret.get_secret_value().strip():
        raise ValueError(
            "this secret is empty: set its environment variable to the real value "
            "(an empty or blank secret, token or key is never used)"
        )
    return secret


#: A secret, token or key: never empty or blank.
Secret = Annotated[SecretStr, AfterValidator(_not_blank)]

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
    if not match or not 1 <= int(match.group(1)) <= 1_000_000:
        raise ValueError(f"expected a rate such as 20/min, 30/s or 100/15m, got {value!r}")
    unit = _RATE_UNITS.get(match.group(3), match.group(3))
    period = parse_duration(f"{match.group(2) or 1}{unit}")
    if not timedelta(0) < period <= timedelta(days=30):
        raise ValueError(f"expected a rate over a period of up to 30d, got {value!r}")
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


def parse_rates(value: object) -> tuple[Rate, ...] | None:
    """One rate (``20/min``) or several windows that all hold (``[200/15m, 300/3h]``)."""
    if value is None:
        return None
    if isinstance(value, list | tuple):
        if not value:
            raise ValueError("expected at least one rate such as 200/15m in the list")
        rates = [parse_rate(item) for item in value]
        if any(rate is None or rate == RATE_OFF for rate in rates):
            raise ValueError("`off` stands alone, not inside a list of rates")
        return tuple(rate for rate in rates if rate is not None)
    rate = parse_rate(value)
    return None if rate is None else (rate,)


OptionalRates = Annotated[tuple[Rate, ...] | None, BeforeValidator(parse_rates)]
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


def _allow_entry(entry: str) -> str:
    from bot.sources.policy import allow_entry

    return allow_entry(entry)


AllowEntry = Annotated[str, AfterValidator(_allow_entry)]


class SourceConfig(_Strict):
    """What every kind of source shares."""

    name: str = ""
    every: Interval = timedelta(minutes=5)
    backlog: int = Field(default=0, ge=0, le=100_000)
    max_age: Keep = timedelta(hours=24)
    channels: tuple[str, ...] | None = None
    strip: tuple[str, ...] = ()
    # The editor's upper bound on an excerpt, in code points; each channel's fitting cuts it
    # further to the room its limit leaves, in its own measure (X weighted units, Telegram
    # characters), so on X the limit nearly always decides.
    excerpt_length: int = Field(default=300, ge=10, le=4000)
    filters: FilterConfig = FilterConfig()
    priority: Literal["normal", "high"] = "normal"
    priority_categories: tuple[str, ...] = ()
    enrich: bool = False
    # An article's page found gone (404/410) when read again takes its posts down. Off by
    # default: a CMS glitch or a moved page also answers 404, and a takedown deletes posts.
    takedown_on_gone: bool = False
    # Hosts, addresses and networks this source may fetch although private (least privilege).
    allow_private: tuple[AllowEntry, ...] = ()

    @model_validator(mode="after")
    def _gone_needs_pages(self) -> Self:
        kind = getattr(self, "kind", None)
        if not self.takedown_on_gone:
            return self
        if kind == "webhook":
            raise ValueError(
                "takedown_on_gone does not apply to a webhook: the CMS withdraws an article "
                'itself with "action": "delete"'
            )
        if kind != "sitemap" and not self.enrich:
            raise ValueError(
                "takedown_on_gone needs enrich: true on a feed or html source: newsbot reads "
                "an article's page only to enrich it (a sitemap's pages are also checked when "
                "their entries leave it)"
            )
        return self

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
    timeout: Timeout = timedelta(seconds=20)
    max_bytes: Bytes = 10 * 1024 * 1024
    user_agent: str = USER_AGENT
    websub: bool = False
    websub_every: Interval = timedelta(hours=1)

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
    timeout: Timeout = timedelta(seconds=20)
    max_bytes: Bytes = 10 * 1024 * 1024

    @field_validator("url")
    @classmethod
    def _url_scheme(cls, url: str) -> str:
        return _http_or_file(url)


class SitemapSourceConfig(SourceConfig):
    """A Google News sitemap (``news:title``, ``news:publication_date``); indexes are followed."""

    kind: Literal["sitemap"]
    url: str
    timeout: Timeout = timedelta(seconds=20)
    max_bytes: Bytes = 50 * 1024 * 1024

    @field_validator("url")
    @classmethod
    def _url_scheme(cls, url: str) -> str:
        return _http_or_file(url)


class WebhookSourceConfig(SourceConfig):
    """Articles pushed by the CMS to ``POST /hooks/<name>``, signed with HMAC-SHA256."""

    kind: Literal["webhook"]
    secret: Secret
    tolerance: Window = timedelta(minutes=5)
    every: Interval = timedelta(minutes=5)


AnySource = Annotated[
    FeedSourceConfig | HtmlSourceConfig | SitemapSourceConfig | WebhookSourceConfig,
    Field(discriminator="kind"),
]


# --------------------------------------------------------------------------------------- channels


class ChannelConfig(_Strict):
    """What every kind of channel shares: the template, tracking, pacing and retries.

    ``rate`` left unset takes the platform's documented limits (see ``default_rates``); a list
    of rates sets several windows, each of which must hold."""

    name: str = ""
    template: str
    tracking: Mapping[str, str] = Field(default_factory=dict)
    min_gap: Pause = timedelta(0)
    rate: OptionalRates = None
    burst: int = Field(default=1, ge=1, le=10_000)
    quiet_hours: OptionalQuietHours = None
    max_attempts: int = Field(default=8, ge=1, le=1000)
    retry_backoff: Pause = timedelta(seconds=30)
    resend_uncertain: bool = False
    # A post's life after publication; unset takes what the channel's platform allows
    # (``Channel.default_corrections`` / ``default_takedowns``).
    corrections: Correction | None = None
    takedowns: Takedown | None = None
    correction_template: str | None = None

    @property
    def correction_template_name(self) -> str:
        """The template of a correction posted as a reply: the configured one, else the
        default for the post's format (Telegram's HTML or plain text)."""
        if self.correction_template:
            return self.correction_template
        return "correction.html.j2" if self.template.endswith(".html.j2") else "correction.txt.j2"

    @property
    def default_rates(self) -> tuple[Rate, ...]:
        return ()

    @property
    def effective_rates(self) -> tuple[Rate, ...]:
        """Every window the channel keeps to: the configured ones, else the platform's."""
        if self.rate == (RATE_OFF,):
            return ()
        return self.rate or self.default_rates

    @property
    def effective_rate(self) -> Rate | None:
        """The window that spaces posts evenly: the one allowing the fewest posts a second."""
        rates = self.effective_rates
        return min(rates, key=lambda r: r.count / r.period.total_seconds()) if rates else None

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
    token: Secret
    chat: str
    api_url: str = "https://api.telegram.org"
    link_preview: Literal["on", "off", "above", "large", "large_above"] = "on"
    silent: bool = False
    button: TelegramButton | None = None
    photo: bool = False
    timeout: Timeout = timedelta(seconds=20)
    # A forum topic of a group with topics (message_thread_id): one channel entry per topic.
    topic: int | None = Field(
        default=None, ge=1, validation_alias=AliasChoices("topic", "thread_id")
    )

    @property
    def default_rates(self) -> tuple[Rate, ...]:
        # Telegram: about 20 messages a minute into one channel.
        return (Rate(20, timedelta(minutes=1)),)

    @field_validator("chat")
    @classmethod
    def _chat_form(cls, chat: str) -> str:
        if not (chat.startswith("@") or re.fullmatch(r"-?\d+", chat)):
            raise ValueError(f"expected @channelname or a numeric chat id, got {chat!r}")
        return chat


class XChannelConfig(ChannelConfig):
    kind: Literal["x"]
    consumer_key: Secret
    consumer_secret: Secret
    access_token: Secret
    access_token_secret: Secret
    api_url: str = "https://api.twitter.com"
    media: bool = False
    timeout: Timeout = timedelta(seconds=20)
    # X's pay-per-use rates (docs.x.com/x-api/getting-started/pricing, 2026): "Content: Create"
    # $0.015 a request, "Content: Create (with URL)" $0.200 a request.
    price_per_post: Amount = 0.015
    price_per_link_post: Amount = 0.20
    monthly_budget: Amount | None = None
    currency: str = "USD"

    def post_cost(self, post: Post) -> float | None:
        # X prices a post that carries a link higher than one that does not.
        has_link = bool(post.link) and post.link in post.text
        return self.price_per_link_post if has_link else self.price_per_post

    @property
    def default_rates(self) -> tuple[Rate, ...]:
        # POST /2/tweets: 200 requests per 15 minutes per user, and 300 per 3 hours per user
        # shared with reposts (docs.x.com/x-api/posts/manage-tweets/migrate/overview).
        return (Rate(200, timedelta(minutes=15)), Rate(300, timedelta(hours=3)))


class ThreadsChannelConfig(ChannelConfig):
    """A Threads profile through the Threads API (graph.threads.net)."""

    kind: Literal["threads"]
    access_token: Secret
    user_id: str = "me"
    api_url: str = "https://graph.threads.net"
    api_version: str = "v1.0"
    link_attachment: bool = True
    media: bool = False
    quota_check: bool = True
    timeout: Timeout = timedelta(seconds=30)
    container_wait: Pause = timedelta(seconds=2)

    @property
    def default_rates(self) -> tuple[Rate, ...]:
        # "Threads profiles are limited to 250 API-published posts within a 24-hour moving
        # period" (developers.facebook.com/docs/threads/overview, Posts).
        return (Rate(250, timedelta(hours=24)),)

    @field_validator("user_id")
    @classmethod
    def _user_form(cls, value: str) -> str:
        if not (value == "me" or value.isdigit()):
            raise ValueError(f"expected `me` or the numeric Threads user id, got {value!r}")
        return value


class FacebookChannelConfig(ChannelConfig):
    """A Facebook Page through the Graph API, with a Page access token."""

    kind: Literal["facebook"]
    page_id: str
    access_token: Secret
    api_url: str = "https://graph.facebook.com"
    graph_version: str = "v21.0"
    photo: bool = False
    timeout: Timeout = timedelta(seconds=30)

    @property
    def default_rates(self) -> tuple[Rate, ...]:
        # A Page token's calls count against the Page's Business Use Case budget: 4800 calls
        # per 24 hours times the Page's engaged users (developers.facebook.com/docs/graph-api/
        # overview/rate-limiting). At its floor (one engaged user), one call per post: 4800/24h.
        return (Rate(4800, timedelta(hours=24)),)

    @field_validator("page_id")
    @classmethod
    def _page_form(cls, value: str) -> str:
        if not value.isdigit():
            raise ValueError(f"expected the Page's numeric id, got {value!r}")
        return value

    @field_validator("graph_version")
    @classmethod
    def _version_form(cls, value: str) -> str:
        if not re.fullmatch(r"v\d+\.\d+", value):
            raise ValueError(f"expected a Graph API version such as v21.0, got {value!r}")
        return value


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"expected an http(s) URL such as https://bsky.social, got {value!r}")
    return value.rstrip("/")


_HANDLE = r"([a-zA-Z0-9-]+\.)+[a-zA-Z][a-zA-Z0-9-]*|did:[a-z]+:[A-Za-z0-9._:%-]+"


class BlueskyChannelConfig(ChannelConfig):
    """A Bluesky account, logged in with an app password (Settings → Privacy and security →
    App passwords), never the account password."""

    kind: Literal["bluesky"]
    handle: str
    app_password: Secret
    pds_url: str = "https://bsky.social"
    link_card: bool = True
    thumbnail: bool = True
    language: str = "zh-TW"
    timeout: Timeout = timedelta(seconds=20)

    @field_validator("pds_url")
    @classmethod
    def _pds_form(cls, value: str) -> str:
        return _http_url(value)

    @field_validator("handle")
    @classmethod
    def _handle_form(cls, handle: str) -> str:
        handle = handle.strip().removeprefix("@")
        if not re.fullmatch(_HANDLE, handle):
            raise ValueError(
                f"expected a handle such as newsvision.bsky.social or a did:plc:..., got {handle!r}"
            )
        return handle

    @property
    def default_rates(self) -> tuple[Rate, ...]:
        # Bluesky: 5,000 points an hour per account, a created record costs 3 (1,666 posts an
        # hour at most); 30 every 10 minutes keeps a newsroom far below it.
        return (Rate(30, timedelta(minutes=10)),)


class MastodonChannelConfig(ChannelConfig):
    """A Mastodon account on one instance, with an application's access token (Preferences →
    Development → New application, scope ``write:statuses`` and ``write:media``)."""

    kind: Literal["mastodon"]
    instance_url: str
    access_token: Secret
    visibility: Literal["public", "unlisted", "private", "direct"] = "public"
    language: str = "zh-TW"
    media: bool = False
    timeout: Timeout = timedelta(seconds=20)

    @field_validator("instance_url")
    @classmethod
    def _instance_form(cls, value: str) -> str:
        return _http_url(value)

    @property
    def default_rates(self) -> tuple[Rate, ...]:
        # Mastodon: 300 API calls per 5 minutes per account and 30 media uploads per 30 minutes;
        # 30 posts per 30 minutes stays inside both, an image with every post included.
        return (Rate(30, timedelta(minutes=30)),)


class ConsoleChannelConfig(ChannelConfig):
    """Prints each post. ``measure`` picks whose length rules apply: by default Telegram's for an
    ``*.html.j2`` template, Threads' or Facebook's for a template named after them
    (``threads.txt.j2``), and X's otherwise, so the console shows what the platform would get."""

    kind: Literal["console"]
    measure: Literal["telegram", "x", "threads", "facebook", "bluesky", "mastodon"] | None = None

    @property
    def rules(self) -> Literal["telegram", "x", "threads", "facebook", "bluesky", "mastodon"]:
        if self.measure:
            return self.measure
        if self.template.endswith(".html.j2"):
            return "telegram"
        name = Path(self.template).name
        for platform in ("threads", "facebook", "bluesky", "mastodon"):
            if name.startswith(platform):
                return platform
        return "x"


AnyChannel = Annotated[
    TelegramChannelConfig
    | XChannelConfig
    | ThreadsChannelConfig
    | FacebookChannelConfig
    | BlueskyChannelConfig
    | MastodonChannelConfig
    | ConsoleChannelConfig,
    Field(discriminator="kind"),
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

    token: Secret
    chat: str
    api_url: str = "https://api.telegram.org"
    min_interval: Pause = timedelta(minutes=5)
    timeout: Timeout = timedelta(seconds=10)

    def secrets(self) -> list[str]:
        return [self.token.get_secret_value()] if self.token.get_secret_value() else []


# ------------------------------------------------------------------------------------------- root


class Config(_Strict):
    """The whole configuration, validated. ``path`` is the file it came from."""

    path: Path
    timezone: str = "Asia/Taipei"
    # The CLDR locale the templates' datetime filter writes dates in.
    locale: str = "zh_Hant_TW"
    # The share of an excerpt's budget a cut may give away to end at a sentence or clause end
    # rather than inside a clause: bot/compose/excerpt.py (DEFAULT_SLACK, the same value).
    excerpt_slack: float = Field(default=0.25, ge=0, le=1)
    database: str = "sqlite:///var/newsbot.db"
    templates: Path = Path("../templates")
    sources: Mapping[str, AnySource]
    channels: Mapping[str, AnyChannel]
    health: HealthConfig | None = None
    alerts: AlertsConfig | None = None
    public_url: str | None = None
    retention: Keep = None
    stop_timeout: Window = timedelta(seconds=30)
    # Environment values put into a URL (a private feed's key): secret, though no key says so.
    _secrets_in_urls: tuple[str, ...] = PrivateAttr(default=())
    # The line of every key in the file, for rules checked after loading (a channel's policy
    # that its platform cannot follow) to name the place that must change.
    _lines: Mapping[tuple[str | int, ...], int] = PrivateAttr(default_factory=dict)

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

    @field_validator("locale")
    @classmethod
    def _known_locale(cls, name: str) -> str:
        import babel

        try:
            babel.Locale.parse(name)
        except (ValueError, babel.UnknownLocaleError) as exc:
            raise ValueError(
                f"expected a locale such as zh_Hant_TW or en_US, got {name!r}"
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

    def where(self, *at: str) -> str:
        """``file:line`` of the key at ``at`` (or the nearest enclosing key that has a line)."""
        for end in range(len(at), 0, -1):
            line = self._lines.get(at[:end])
            if line is not None:
                return f"{self.path}:{line}"
        return str(self.path)

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
    except RecursionError:
        raise ConfigError(
            "not valid YAML: nested too deeply for a config file", where=str(path)
        ) from None
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
    config._lines = dict(lines.lines)
    return config


def _resolve_paths(raw: dict[str, Any], base: Path) -> None:
    templates = raw.get("templates", "../templates")
    if isinstance(templates, str):
        raw["templates"] = (base / templates).resolve()
    database = raw.get("database", "sqlite:///var/newsbot.db")
    if isinstance(database, str):
        raw["database"] = resolve_database_url(database, base)
    sources = raw.get("sources")
    for source in sources.values() if isinstance(sources, dict) else ():
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


#: Bounds on what a config file's YAML may expand to (a large newsroom's config is a few
#: thousand values, at most six levels deep).
MAX_YAML_VALUES = 100_000
MAX_YAML_DEPTH = 32


def _secret_fields() -> frozenset[str]:
    """The names of every channel (and alerts) setting that holds a secret."""
    kinds: tuple[type[_Strict], ...] = (
        TelegramChannelConfig,
        XChannelConfig,
        ThreadsChannelConfig,
        FacebookChannelConfig,
        BlueskyChannelConfig,
        MastodonChannelConfig,
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
        self.built = 0

    def build(self, node: yaml.Node, at: tuple[str | int, ...], environ: Mapping[str, str]) -> Any:
        # YAML aliases let a few lines stand for billions of values ("billion laughs"), and a
        # recursive anchor for infinitely many: expansion stops at a bound no config comes near.
        self.built += 1
        if self.built > MAX_YAML_VALUES or len(at) > MAX_YAML_DEPTH:
            raise ConfigError(
                f"the YAML expands to more than {MAX_YAML_VALUES} values or deeper than "
                f"{MAX_YAML_DEPTH} levels (anchors and aliases `&x` / `*x` repeating each "
                "other?); a config file is far smaller",
                where=self.filename,
            )
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
                # Read-only commands never use it; not blank, so the secret's own check holds.
                return f"(unset {name})"
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


_KIND_TAGS = {
    "feed",
    "html",
    "sitemap",
    "webhook",
    "telegram",
    "x",
    "threads",
    "facebook",
    "console",
}


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


def retention_warnings(config: Config) -> list[str]:
    """What ``newsbot check`` warns of in ``retention``: deliveries forgotten while their
    articles may still be delivered or shown. Never a repost: the ledger keeps a digest of
    every article it has seen beyond retention, but ``status`` no longer shows them."""
    if config.retention is None:
        return []
    found = []
    for name, source in config.sources.items():
        if source.max_age is None or source.max_age > config.retention:
            age = "off" if source.max_age is None else _spoken(source.max_age)
            found.append(
                f"retention {_spoken(config.retention)} is shorter than "
                f"sources.{name}.max_age ({age}): deliveries are forgotten while their articles "
                "may still be in the feed. They are not posted again (the ledger remembers "
                "every article it has seen), but `newsbot status` no longer shows them; "
                "make retention at least max_age"
            )
    return found
