"""Recording a revision straight into the ledger, as the revisions-in side does (a changed
feed entry, a webhook delete, ``newsbot correct``): the article brought to its new content,
a ``revisions`` row, and one queued ``revision_actions`` row per post that was sent, sending
or uncertain, older queued ones superseded. Where the tests and the benchmark of applying
revisions start from, without depending on how revisions are detected."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import sqlalchemy as sa

from bot.ledger import Ledger, articles, deliveries, revision_actions, revisions
from bot.model import Action, ActionState, DeliveryState, RevisionKind

PUBLISHED = [str(DeliveryState.SENT), str(DeliveryState.SENDING), str(DeliveryState.UNCERTAIN)]


def record_revision(
    ledger: Ledger,
    *,
    key: str,
    now: datetime,
    actions: Mapping[str, Action],
    title: str | None = None,
    title_override: str | None = None,
    retract: bool = False,
    reason: str | None = None,
) -> list[int]:
    """Revise the article ``key``; ``actions`` names what each channel does to its post (a
    channel left out does nothing). The ids of the actions queued."""
    with ledger.engine.begin() as conn:
        article_id = conn.execute(
            sa.select(articles.c.id).where(articles.c.key == key)
        ).scalar_one()
        changes: dict[str, object] = {}
        if title is not None:
            changes["title"] = title
        if title_override is not None:
            changes["title_override"] = title_override
        if retract:
            changes["retracted_at"] = now
        if changes:
            conn.execute(sa.update(articles).where(articles.c.id == article_id).values(**changes))
        revision_id = conn.execute(
            sa.insert(revisions)
            .values(
                article_id=article_id,
                kind=str(RevisionKind.DELETE if retract else RevisionKind.UPDATE),
                origin="editor",
                changes='["title"]' if title or title_override else "[]",
                reason=reason,
                title=title_override or title,
                created_at=now,
            )
            .returning(revisions.c.id)
        ).scalar_one()
        posts = conn.execute(
            sa.select(deliveries.c.id, deliveries.c.channel).where(
                deliveries.c.article_id == article_id, deliveries.c.state.in_(PUBLISHED)
            )
        ).all()
        ids = []
        for delivery_id, channel in posts:
            if channel not in actions:
                continue
            conn.execute(
                sa.update(revision_actions)
                .where(
                    revision_actions.c.delivery_id == delivery_id,
                    revision_actions.c.state == str(ActionState.QUEUED),
                )
                .values(state=str(ActionState.SUPERSEDED), updated_at=now)
            )
            ids.append(
                conn.execute(
                    sa.insert(revision_actions)
                    .values(
                        revision_id=revision_id,
                        delivery_id=delivery_id,
                        channel=channel,
                        action=str(actions[channel]),
                        state=str(ActionState.QUEUED),
                        due_at=now,
                        created_at=now,
                        updated_at=now,
                    )
                    .returning(revision_actions.c.id)
                ).scalar_one()
            )
    return ids
