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
from bot.model import Correction, Post, Published, Receipt, Takedown

_RULES = {
    "telegram": TELEGRAM_MESSAGE,
    "x": X_POST,
    "threads": THREADS_POST,
    "facebook": FACEBOOK_POST,
    "bluesky": BLUESKY_POST,
    "mastodon": MASTODON_DEFAULT,
}


class ConsoleChannel(Channel):
    """Writes posts to a stream (standard output by default). It can do to a post whatever any
    platform can, so an editor trying corrections and takedowns on the runnable default
    config sees what each would do."""

    can_edit = True
    can_reply = True
    can_delete = True
    default_corrections = Correction.EDIT
    default_takedowns = Takedown.DELETE

    def __init__(self, config: ConsoleChannelConfig, stream: TextIO | None = None) -> None:
        super().__init__(config.name)
        self.config = config
        self.stream = stream
        self._ids = itertools.count(1)

    def rule(self, *, has_image: bool) -> LengthRule:
        return _RULES[self.config.rules]

    async def send(self, post: Post) -> Receipt:
        remote_id = f"{self.name}-{next(self._ids)}"
        self._write(format_post(post, rules=self.config.rules))
        return Receipt(remote_id=remote_id, accepted_at=datetime.now(UTC))

    async def edit(self, published: Published, post: Post) -> Receipt:
        self._write(f"[edit {published.remote_id}]\n" + format_post(post, rules=self.config.rules))
        return Receipt(remote_id=published.remote_id, accepted_at=datetime.now(UTC))

    async def reply(self, published: Published, post: Post) -> Receipt:
        receipt = await self.send(post)
        self._write(f"[the post above replies to {published.remote_id}]")
        return receipt

    async def delete(self, published: Published) -> None:
        self._write(f"[deleted {published.remote_id}]")

    def _write(self, text: str) -> None:
        stream = self.stream or sys.stdout
        stream.write(text + "\n")
        stream.flush()


def format_post(post: Post, *, rules: str) -> str:
    """A post framed for a terminal, with its length as the platform counts it."""
    header = f"── {post.channel} · {post.source} · {rules} {post.length}/{post.limit} "
    return f"{header:─<72}\n{post.text}\n"
