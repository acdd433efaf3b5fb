"""What ``newsbot status`` and ``newsbot preview`` print: tables that line up in a terminal
even with Chinese text (wide characters take two columns)."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.ledger import Delivery
from bot.model import ActionState, DeliveryState


def display_width(text: str) -> int:
    """Terminal columns: East Asian wide and full-width characters take two."""
    width = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def clip(text: str, columns: int) -> str:
    """At most ``columns`` terminal columns, with ``…`` where it was cut."""
    text = " ".join(text.split())
    if display_width(text) <= columns:
        return text
    out, used = [], 0
    for char in text:
        step = 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
        if used + step > columns - 1:
            break
        out.append(char)
        used += step
    return "".join(out) + "…"


def pad(text: str, columns: int) -> str:
    return text + " " * max(columns - display_width(text), 0)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [display_width(h) for h in headers]
    for row in rows:
        widths = [max(w, display_width(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(pad(h, w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(pad(c, w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return "\n".join(lines)


def status_table(deliveries: Sequence[Delivery], tz: ZoneInfo) -> str:
    def when(d: Delivery) -> str:
        moment: datetime = d.sent_at or d.updated_at
        return moment.astimezone(tz).strftime("%m-%d %H:%M")

    rows = [
        [
            str(d.id),
            str(d.state),
            d.channel,
            d.source,
            when(d),
            delay(d.delay_seconds),
            clip(d.article.title, 30),
            clip(d.remote_url or d.reason or "", 60),
        ]
        for d in deliveries
    ]
    headers = ["ID", "STATE", "CHANNEL", "SOURCE", "WHEN", "DELAY", "TITLE", "URL / REASON"]
    return table(headers, rows)


def delay(seconds: float | None) -> str:
    """``4.2s``, ``3m10s``, ``2h05m``: publish-to-post delay, short."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def counts_line(counts: Mapping[str, int]) -> str:
    parts = [f"{counts.get(state, 0)} {state}" for state in DeliveryState if counts.get(state)]
    return "deliveries: " + (", ".join(parts) if parts else "none yet")


def actions_line(counts: Mapping[str, int]) -> str | None:
    """Corrections and takedowns applied to published posts, by state; ``None`` when none."""
    parts = [f"{counts.get(state, 0)} {state}" for state in ActionState if counts.get(state)]
    return "corrections and takedowns: " + ", ".join(parts) if parts else None
