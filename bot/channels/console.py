"""The console channel: prints each post as the platform would get it. The runnable default
config posts here, so a newcomer sees real posts with no account."""

from __future__ import annotations

import itertools
import sys
from datetime import UTC, datetime
from typing import TextIO

from bot.channels.base import Channel
from bot.compose.length import (
    BLUESKY_POST,
    FACEBOOK_POST,
    MASTODON_DEFAULT,
    TELEGRAM_MESSAGE,
    THREADS_POST,
    X_POST,
    LengthRule,
)
from bot.config import ConsoleChannelConfig
from bot.model import Post, Receipt

_RULES = {
    "telegram": TELEGRAM_MESSAGE,
    "x": X_POST,
    "threads": THREADS_POST,
    "facebook": FACEBOOK_POST,
    "bluesky": BLUESKY_POST,
    "mastodon": MASTODON_DEFAULT,
}


class ConsoleChannel(Channel):
    """Writes posts to a stream (standard output by default)."""

    def __init__(self, config: ConsoleChannelConfig, stream: TextIO | None = None) -> None:
        super().__init__(config.name)
        self.config = config
        self.stream = stream
        self._ids = itertools.count(1)

    def rule(self, *, has_image: bool) -> LengthRule:
        return _RULES[self.config.rules]

    async def send(self, post: Post) -> Receipt:
        stream = self.stream or sys.stdout
        remote_id = f"{self.name}-{next(self._ids)}"
        stream.write(format_post(post, rules=self.config.rules) + "\n")
        stream.flush()
        return Receipt(remote_id=remote_id, accepted_at=datetime.now(UTC))


def format_post(post: Post, *, rules: str) -> str:
    """A post framed for a terminal, with its length as the platform counts it."""
    header = f"── {post.channel} · {post.source} · {rules} {post.length}/{post.limit} "
    return f"{header:─<72}\n{post.text}\n"
