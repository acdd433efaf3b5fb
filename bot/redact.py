"""The one secret masker: every log line, ledger reason, ``status`` row and alert passes here.

A secret can reach text newsbot writes by many roads: an API error that echoes the request
path (Telegram's ``/bot<token>/`` is in every URL), an OAuth header quoted in an exception, a
feed URL with a key in it, a database URL with a password. Masking in one place, with one set
of rules, means the ledger and ``newsbot status`` can never show what the log hides.

:class:`Redactor` masks every configured secret value (longest first), anything shaped like a
bot token or an OAuth secret, and the password of any ``scheme://user:password@`` URL. The
composition root makes one from the config and hands the same object to the log handler, the
ledger, the pipeline and the alerter; :meth:`Redactor.update` after a reload changes it for
all of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[REDACTED]"
# Secrets shorter than this are not masked by value: "abc" would blank half of every message.
MIN_SECRET = 4

# Telegram bot tokens, <bot id>:<35 characters>, alone or inside a /bot<token>/ URL path.
_TOKEN_SHAPES = re.compile(r"(?:(?<=bot)|\b)\d{5,12}:[A-Za-z0-9_-]{30,}")
_OAUTH_FIELDS = re.compile(
    r'(oauth_(?:signature|token|consumer_key)=")[^"]*(")|(oauth_(?:signature|token)=)[^&\s]+'
)
# The password of a URL's user info: postgresql://newsbot:hunter2@db/…, https://u:p@host/….
_URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*:)[^\s@/]+(@)")


class Redactor:
    """Masks secrets in text. Safe to share: :meth:`update` swaps the list in one step."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: tuple[str, ...] = ()
        self.update(secrets)

    def update(self, secrets: Iterable[str]) -> None:
        """The configured secret values (after a reload, the new ones)."""
        # Longest first, so a secret that contains another is masked whole.
        self.secrets = tuple(
            sorted({s for s in secrets if s and len(s) >= MIN_SECRET}, key=len, reverse=True)
        )

    def redact(self, text: str) -> str:
        """``text`` with every secret masked as ``[REDACTED]``."""
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        text = _TOKEN_SHAPES.sub(REDACTED, text)
        text = _URL_PASSWORD.sub(rf"\1{REDACTED}\2", text)
        return _OAUTH_FIELDS.sub(
            lambda m: (
                f"{m.group(1)}{REDACTED}{m.group(2)}" if m.group(1) else f"{m.group(3)}{REDACTED}"
            ),
            text,
        )

    def redact_optional(self, text: str | None) -> str | None:
        """:meth:`redact`, letting ``None`` (no reason recorded) through."""
        return None if text is None else self.redact(text)

    def __call__(self, text: str) -> str:
        return self.redact(text)


def redact_url(url: str) -> str:
    """A URL fit to show: its password masked (a database URL in a message)."""
    return _URL_PASSWORD.sub(rf"\1{REDACTED}\2", url)


# Shape rules only, for text written where no config is at hand.
SHAPES = Redactor()
