"""Log output: readable lines by default, JSON lines on request, never a secret.

The bot token sits in every Telegram API URL and httpx logs URLs at INFO, so the HTTP client
loggers are quieted and a redaction filter on our handler masks every configured secret value
and anything shaped like a bot token or an OAuth secret, whoever logged it.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Literal, TextIO

REDACTED = "[REDACTED]"
# Telegram bot tokens: <bot id>:<35 characters>; also masked inside /bot<token>/ URL paths.
_TOKEN_SHAPES = re.compile(r"\b\d{5,12}:[A-Za-z0-9_-]{30,}\b")
_OAUTH_FIELDS = re.compile(
    r'(oauth_(?:signature|token|consumer_key)=")[^"]*(")|(oauth_(?:signature|token)=)[^&\s]+'
)
# Attributes a LogRecord always has; anything else was passed in ``extra`` and is context.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
CONTEXT_KEYS = ("source", "article", "channel", "delivery")


class Redactor(logging.Filter):
    """Masks secrets in the final text of every record that passes through the handler."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets: list[str] = []
        self.update(secrets)

    def update(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret that contains another is masked whole.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        text = _TOKEN_SHAPES.sub(REDACTED, text)
        return _OAUTH_FIELDS.sub(
            lambda m: (
                f"{m.group(1)}{REDACTED}{m.group(2)}" if m.group(1) else f"{m.group(3)}{REDACTED}"
            ),
            text,
        )

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        clean = self.redact(message)
        record.msg, record.args = clean, None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        for key in CONTEXT_KEYS:
            value = getattr(record, key, None)
            if isinstance(value, str):
                setattr(record, key, self.redact(value))
        return True


class TextFormatter(logging.Formatter):
    """``2026-11-26 12:00:00 INFO  sent https://t.me/... source=a channel=b``"""

    def format(self, record: logging.LogRecord) -> str:
        when = (
            datetime.fromtimestamp(record.created, UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")
        )
        context = " ".join(
            f"{key}={getattr(record, key)}" for key in CONTEXT_KEYS if hasattr(record, key)
        )
        line = f"{when} {record.levelname:<7} {record.getMessage()}"
        if context:
            line = f"{line}  [{context}]"
        if record.exc_text:
            line = f"{line}\n{record.exc_text}"
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the delivery context as fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = value
        if record.exc_text:
            payload["exception"] = record.exc_text
        return json.dumps(payload, ensure_ascii=False, default=str)


def setup_logging(
    *,
    level: int = logging.INFO,
    fmt: Literal["text", "json"] = "text",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> Redactor:
    """Route every log record through one redacting handler; returns the redactor so the
    daemon can add secrets after a reload."""
    redactor = Redactor(secrets)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(redactor)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # These log every request URL at INFO, and Telegram URLs carry the bot token.
    for noisy in (
        "httpx",
        "httpcore",
        "telegram",
        "apscheduler",
        "urllib3",
        "requests_oauthlib",
        "oauthlib",
        "tweepy",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return redactor
