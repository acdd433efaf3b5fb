"""The editor's commands on a published article: which article a command means, and the
revision it asks for (``newsbot correct``, ``newsbot retract``); ``newsbot history``'s record.

``ARTICLE`` is an article's key, its canonical URL, or the id of one of its deliveries (the ID
column of ``newsbot status``). These only read and write the ledger: what a correction or a
takedown does on each channel comes from the config and the channel's platform
(:func:`bot.channels.kinds.policies`), never from a client built with secrets.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.compose.excerpt import one_line
from bot.errors import ArticleError
from bot.ledger import Ledger, StoredArticle
from bot.model import MAX_TITLE, RevisionKind
from bot.revisions import Revision

#: Most choices listed when ARTICLE names several articles.
_CHOICES_SHOWN = 10


def resolve(ledger: Ledger, text: str) -> StoredArticle:
    """The one article ``text`` names; ArticleError when none or several do."""
    if not text.strip():
        raise ArticleError("ARTICLE is empty: give an article's key, its URL or a delivery id")
    found = ledger.find_articles(text)
    if not found:
        raise ArticleError(
            f"no article {text!r} in the ledger (give its key, its URL or a delivery id from "
            "`newsbot status`)"
        )
    if len(found) == 1:
        return found[0]
    choices = []
    for stored in found[:_CHOICES_SHOWN]:
        delivery = ledger.article_deliveries(stored.id)
        pick = f"delivery id {delivery[0].id}" if delivery else "no delivery"
        choices.append(
            f"  source {stored.source}, key {stored.article.key!r}: {stored.shown_title} ({pick})"
        )
    more = len(found) - _CHOICES_SHOWN
    if more > 0:
        choices.append(f"  and {more} more")
    raise ArticleError(
        f"{text!r} names {len(found)} articles; give one of their delivery ids instead:\n"
        + "\n".join(choices)
    )


def correction(stored: StoredArticle, *, title: str | None, reason: str | None) -> Revision:
    """The editor's correction: every post re-rendered from the current article, under the
    editor's title when one is given (it then wins over the source's from now on)."""
    if stored.retracted_at is not None:
        raise ArticleError(
            f"article {stored.article.key!r} was retracted on {stored.retracted_at:%Y-%m-%d %H:%M} "
            "UTC: its posts are taken down, there is nothing to correct"
        )
    override = one_line(title, MAX_TITLE) if title is not None else None
    if title is not None and not override:
        raise ArticleError("--title is empty: give the corrected title")
    return Revision(
        article_id=stored.id,
        kind=RevisionKind.UPDATE,
        origin="editor",
        title=override or stored.shown_title,
        changes=("title",) if override else (),
        reason=reason,
        title_override=override,
    )


def takedown(stored: StoredArticle, *, reason: str) -> Revision:
    """The editor's withdrawal of the article: its posts taken down on every channel."""
    if not reason.strip():
        raise ArticleError("--reason is empty: say why the article is withdrawn")
    return Revision(
        article_id=stored.id,
        kind=RevisionKind.DELETE,
        origin="editor",
        title=stored.shown_title,
        reason=" ".join(reason.split()),
    )


def history(ledger: Ledger, stored: StoredArticle) -> dict[str, Any]:
    """The article, its deliveries and every revision with its actions, JSON-ready."""

    def when(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "article": {
            "id": stored.id,
            "source": stored.source,
            "key": stored.article.key,
            "url": stored.article.url,
            "title": stored.shown_title,
            "source_title": stored.article.title,
            "title_override": stored.title_override,
            "retracted_at": when(stored.retracted_at),
        },
        "deliveries": [d.as_dict() for d in ledger.article_deliveries(stored.id)],
        "revisions": [
            {
                "id": rev.id,
                "kind": rev.kind,
                "origin": rev.origin,
                "changes": list(rev.changes),
                "reason": rev.reason,
                "title": rev.title,
                "created_at": when(rev.created_at),
                "actions": [
                    {
                        "id": act.id,
                        "delivery_id": act.delivery_id,
                        "channel": act.channel,
                        "action": act.action,
                        "state": act.state,
                        "outcome": outcome(act.action, act.state),
                        "reason": act.reason,
                        "text": act.text,
                        "remote_id": act.remote_id,
                        "remote_url": act.remote_url,
                        "attempts": act.attempts,
                        "created_at": when(act.created_at),
                        "done_at": when(act.done_at),
                    }
                    for act in rev.actions
                ],
            }
            for rev in ledger.history(stored.id)
        ],
    }


_DONE = {"edit": "edited", "reply": "replied", "delete": "deleted", "delete_and_repost": "reposted"}


def outcome(action: str, state: str) -> str:
    """What an action did to its post, in the editor's words: edited, replied, deleted,
    reposted, refused (the platform said no), skipped, superseded, uncertain, queued."""
    if state == "done":
        return _DONE.get(action, "done")
    if state == "failed":
        return "refused"
    if state == "sending":
        return "applying"
    return state
