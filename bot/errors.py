"""The one exception tree of newsbot.

Every error newsbot raises on purpose derives from :class:`BotError`; library errors are
translated at the edge where the library is used (``raise ... from exc``)::

    BotError
    ├── ConfigError          the config file or a template is wrong (exit status 2)
    │   └── TemplateError    a template does not exist, compile or render
    ├── SourceError          a source could not be read this time (recorded, retried next poll)
    │   └── FetchRefused     the outbound-fetch policy forbids that URL; nothing was sent
    ├── LedgerError          the ledger database refused an operation
    ├── ArticleError         an editor's command names no article, or several (it lists them)
    └── DeliveryError        a post could not be delivered
        ├── TransientError   try again later, not before ``retry_after`` seconds
        └── PermanentError   never try again; ``reason`` says why
            └── PostGone     the published post an edit, reply or delete was for is no
                             longer on the platform

Messages are written for the person who has to act on them: what went wrong, where, and what
was expected. No message ever contains a secret.
"""

from __future__ import annotations


class BotError(Exception):
    """Root of every error newsbot raises on purpose."""


class ConfigError(BotError):
    """The configuration is wrong; ``where`` is ``file:line`` when known, ``key`` the dotted key."""

    def __init__(self, message: str, *, where: str | None = None, key: str | None = None) -> None:
        self.message = message
        self.where = where
        self.key = key
        super().__init__(self.__str__())

    def __str__(self) -> str:
        parts = []
        if self.where:
            parts.append(self.where)
        if self.key:
            parts.append(self.key)
        prefix = ": ".join(parts)
        return f"{prefix}: {self.message}" if prefix else self.message


class TemplateError(ConfigError):
    """A template cannot be found, compiled or rendered."""


class SourceError(BotError):
    """A source could not be polled; the reason is recorded against the source."""


class FetchRefused(SourceError):
    """The URL (its scheme, or the address it resolves or redirects to) is one this source may
    not fetch: not http(s), or private, loopback, link-local... without ``allow_private``.
    Refused before any connection is made."""


class PageGone(SourceError):
    """The server answered 404 Not Found or 410 Gone: the page is not there (any more).
    ``status`` is the code. For an article known to be published, a sign it was withdrawn;
    whether that takes its posts down is the source's ``takedown_on_gone``."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class LedgerError(BotError):
    """The ledger database refused an operation."""


class ArticleError(BotError):
    """An editor's command names an article the ledger does not keep, or one that several
    sources have (the message lists them), or asks what cannot be done to it."""


class DeliveryError(BotError):
    """A post could not be delivered to a channel."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class TransientError(DeliveryError):
    """The platform may accept the post later; never retry before ``retry_after`` seconds.

    ``maybe_sent`` is true when the request left us and no answer came back (a read timeout,
    a connection dropped after sending): the post may have been published, so resending it
    blindly could post it twice.
    """

    def __init__(
        self, reason: str, *, retry_after: float | None = None, maybe_sent: bool = False
    ) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        self.maybe_sent = maybe_sent


class PermanentError(DeliveryError):
    """The platform will never accept this post as it is; ``reason`` says why. ``duplicate``
    is true when the platform refused it as already posted."""

    def __init__(self, reason: str, *, duplicate: bool = False) -> None:
        super().__init__(reason)
        self.duplicate = duplicate


class PostGone(PermanentError):
    """The published post that an edit, a reply or a delete was meant for no longer exists on
    the platform (deleted by hand, or by an earlier attempt whose answer was lost). For a
    takedown that is the goal reached; for an edit it is a refusal with this reason."""
