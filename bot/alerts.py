"""Telling operations: a short message to a Telegram chat when something needs a person.

Alerts are rate-limited per kind, sent in the background so they never slow a delivery, and
never recurse: an alert that cannot be sent is logged, not alerted.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bot.channels.base import Channel
from bot.errors import DeliveryError
from bot.model import Post
from bot.redact import SHAPES

log = logging.getLogger("newsbot.alerts")

MAX_ALERT_CHARS = 1000
DRAIN_SECONDS = 5.0


class Alerter:
    """``alerter(kind, message)``: fire and forget. ``channel`` ``None`` means log only."""

    def __init__(
        self,
        channel: Channel | None,
        *,
        min_interval: timedelta = timedelta(minutes=5),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        redact: Callable[[str], str] = SHAPES.redact,
    ) -> None:
        self.channel = channel
        # Alert texts quote API errors, which may echo a token: masked like the log and ledger.
        self.redact = redact
        self.min_interval = min_interval
        self.clock = clock
        self.last_sent: dict[str, datetime] = {}
        self.suppressed: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self, kind: str, message: str) -> None:
        message = self.redact(message)
        log.warning("alert (%s): %s", kind, message)
        now = self.clock()
        last = self.last_sent.get(kind)
        if last is not None and now - last < self.min_interval:
            self.suppressed[kind] = self.suppressed.get(kind, 0) + 1
            return
        self.last_sent[kind] = now
        extra = self.suppressed.pop(kind, 0)
        text = message if not extra else f"{message}\n(+{extra} similar since the last alert)"
        if self.channel is None:
            return
        try:
            task = asyncio.get_running_loop().create_task(self._send(kind, text))
        except RuntimeError:
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, kind: str, message: str) -> None:
        assert self.channel is not None
        body = html.escape(message[:MAX_ALERT_CHARS])
        text = f"⚠️ <b>newsbot: {html.escape(kind)}</b>\n{body}"
        post = Post(channel=self.channel.name, text=text, length=len(text), limit=4096, link="")
        try:
            await self.channel.send(post)
        except DeliveryError as exc:
            # Never alert about an alert: that way lies a loop.
            log.error("could not send an alert (%s): %s", kind, exc.reason)
        except Exception:
            log.exception("could not send an alert (%s)", kind)

    async def drain(self) -> None:
        """Wait (a little) for alerts still being sent."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=DRAIN_SECONDS)
