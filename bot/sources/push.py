"""What a push receiver is: an endpoint of the daemon's listener that articles are sent to.

A CMS webhook (:mod:`bot.sources.webhook`) and a WebSub subscription
(:mod:`bot.sources.websub`) are push receivers. The listener (:mod:`bot.listener`) reads the
request, caps its body, and hands a :class:`PushRequest` to the receiver registered for the
source named in the path; the receiver answers with a :class:`PushResponse`. Receivers know no
web framework, so they are tested without one and the listener is the only aiohttp server.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar, Literal

from bot.model import Article

__all__ = ["Accept", "PushReceiver", "PushRequest", "PushResponse"]

#: Records pushed articles (the daemon passes a function calling ``Pipeline.accept`` and waking
#: delivery) and returns the key of the first article.
Accept = Callable[[str, Sequence[Article]], Awaitable[str]]

DEFAULT_MAX_BODY = 1024 * 1024


@dataclass(frozen=True, slots=True)
class PushRequest:
    """One request, framework-free. ``headers`` has lower-cased names."""

    method: str
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    query: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    remote: str | None = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True, slots=True)
class PushResponse:
    """The answer. ``outcome`` feeds ``newsbot_push_requests_total``: ``accepted`` when the push
    was authentic and read, ``rejected`` when it was refused or ignored, ``None`` when the request
    was not a push at all (a WebSub verification)."""

    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    outcome: Literal["accepted", "rejected"] | None = None

    @classmethod
    def json(
        cls,
        status: int,
        document: Mapping[str, object],
        *,
        outcome: Literal["accepted", "rejected"] | None = None,
    ) -> PushResponse:
        body = json.dumps(document, ensure_ascii=False).encode("utf-8")
        return cls(status, body, "application/json; charset=utf-8", outcome)

    @classmethod
    def problem(cls, status: int, error: str) -> PushResponse:
        """A refusal: ``{"error": "..."}``, counted as rejected."""
        return cls.json(status, {"error": error}, outcome="rejected")

    @classmethod
    def text(
        cls, status: int, text: str, *, outcome: Literal["accepted", "rejected"] | None = None
    ) -> PushResponse:
        return cls(status, text.encode("utf-8"), "text/plain; charset=utf-8", outcome)


class PushReceiver(abc.ABC):
    """One push endpoint of one source. ``prefix`` is the listener path it lives under
    (``hooks`` → ``/hooks/<name>``), ``methods`` the HTTP methods it answers, ``max_body`` the
    largest body it reads (the listener answers 413 beyond it)."""

    prefix: ClassVar[str]
    methods: ClassVar[frozenset[str]] = frozenset({"POST"})

    def __init__(self, name: str, *, max_body: int = DEFAULT_MAX_BODY) -> None:
        self.name = name
        self.max_body = max_body

    @abc.abstractmethod
    async def handle(self, request: PushRequest) -> PushResponse:
        """Answer one request; never raises for the sender's fault."""
