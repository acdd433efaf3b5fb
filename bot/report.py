"""What ``newsbot status`` and ``newsbot preview`` print: tables that line up in a terminal
even with Chinese text (wide characters take two columns)."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
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


def status_table(
    deliveries: Sequence[Delivery], tz: ZoneInfo, marks: Mapping[int, str] | None = None
) -> str:
    """The delivery log; ``marks`` (delivery id → ``corrected`` / ``retracted``) go beside the
    state of a delivery whose article was revised."""
    marks = marks or {}

    def when(d: Delivery) -> str:
        moment: datetime = d.sent_at or d.updated_at
        return moment.astimezone(tz).strftime("%m-%d %H:%M")

    def state(d: Delivery) -> str:
        mark = marks.get(d.id)
        return f"{d.state} ({mark})" if mark else str(d.state)

    rows = [
        [
            str(d.id),
            state(d),
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


def history_text(found: Mapping[str, Any], tz: ZoneInfo) -> str:
    """``newsbot history``: the article, its posts, then each revision and what it did to each
    post, with the platform's receipt (:func:`bot.editor.history` gives ``found``)."""

    def when(value: str | None) -> str:
        if not value:
            return ""
        return datetime.fromisoformat(value).astimezone(tz).strftime("%Y-%m-%d %H:%M")

    article = found["article"]
    lines = [f"article {article['source']} {article['key']!r} 「{article['title']}」"]
    lines.append(f"  {article['url']}")
    if article["title_override"]:
        lines.append(f"  editor's title; the source's is 「{article['source_title']}」")
    if article["retracted_at"]:
        lines.append(f"  retracted {when(article['retracted_at'])}")
    lines.append("")
    lines.append("posts:")
    rows = [
        [
            str(d["id"]),
            d["channel"],
            d["state"],
            when(d["sent_at"] or d["updated_at"]),
            " ".join(part for part in (d["remote_id"], d["remote_url"]) if part)
            or clip(d["reason"] or "", 60),
        ]
        for d in found["deliveries"]
    ]
    lines.append(table(["DELIVERY", "CHANNEL", "STATE", "WHEN", "RECEIPT / REASON"], rows))
    if not found["revisions"]:
        lines += ["", "no revisions"]
    for rev in found["revisions"]:
        what = ", ".join(rev["changes"]) or "re-rendered"
        lines += [
            "",
            f"revision {rev['id']} · {rev['kind']} · from {rev['origin']} · "
            f"{when(rev['created_at'])} · {what if rev['kind'] == 'update' else 'withdrawn'}",
        ]
        if rev["title"]:
            lines.append(f"  title: 「{rev['title']}」")
        if rev["reason"]:
            lines.append(f"  reason: {rev['reason']}")
        rows = [
            [
                str(act["delivery_id"]),
                act["channel"],
                act["action"],
                act["outcome"],
                when(act["done_at"]),
                " ".join(part for part in (act["remote_id"], act["remote_url"]) if part)
                or clip(act["reason"] or "", 60),
            ]
            for act in rev["actions"]
        ]
        if rows:
            headers = ["DELIVERY", "CHANNEL", "ACTION", "OUTCOME", "WHEN", "RECEIPT / REASON"]
            lines.append(table(headers, rows))
        elif rev["kind"] == "update":
            lines.append("  no post was published yet: the posts still to go carry this text")
        else:
            lines.append("  no post was published: the posts still to go were stopped")
    return "\n".join(lines)
