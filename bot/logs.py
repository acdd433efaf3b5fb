"""Log output: readable lines by default, JSON lines on request, never a secret.

The bot token sits in every Telegram API URL and httpx logs URLs at INFO, so the HTTP client
loggers are quieted and a filter on our handler masks secrets with :mod:`bot.redact` (every
configured secret value, anything shaped like a bot token, an OAuth secret or a URL's
password), whoever logged it.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Literal, TextIO

from bot.redact import REDACTED, Redactor

__all__ = [
    "REDACTED",
    "JsonFormatter",
    "RedactionFilter",
    "Redactor",
    "TextFormatter",
    "setup_logging",
]

# Attributes a LogRecord always has; anything else was passed in ``extra`` and is context.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
CONTEXT_KEYS = ("source", "article", "channel", "delivery")


class RedactionFilter(logging.Filter):
    """Masks secrets, with the shared :class:`~bot.redact.Redactor`, in the final text of every
    record that passes through the handler."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        redact = self.redactor.redact
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg, record.args = redact(message), None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        for key in CONTEXT_KEYS:
            value = getattr(record, key, None)
            if isinstance(value, str):
                setattr(record, key, redact(value))
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
    redactor: Redactor | None = None,
) -> Redactor:
    """Route every log record through one redacting handler; returns the redactor, the one the
    ledger, the pipeline and the alerts use too, so a reload's new secrets reach them all."""
    if redactor is None:
        redactor = Redactor(secrets)
    else:
        redactor.update(secrets)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RedactionFilter(redactor))
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
