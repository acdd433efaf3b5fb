"""Revisions in: when an article changed or was withdrawn, and what that asks of each post.

Pure functions over values ("decide, then record"): :func:`content_digest` says whether a
source's article changed in a way any post would show; :func:`changed_fields` names what
changed; :func:`plan_actions` decides, for every delivery of a revised article, the action its
channel's policy asks for (or why none). :meth:`bot.ledger.Ledger.revise` records the lot in one
transaction; applying the actions to the platforms is the revisions-out side's work.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from bot.model import Action, Article, Correction, DeliveryState, RevisionKind, Takedown

#: Where a revision came from (``revisions.origin``).
ORIGINS = ("feed", "webhook", "sitemap", "enrich", "editor")

#: The fields a revision can change, in the order ``changes`` lists them.
FIELDS = ("title", "summary", "image", "link", "categories", "author")


class Policies(NamedTuple):
    """One channel's policies: what a correction and what a takedown do to its posts."""

    corrections: Correction
    takedowns: Takedown


def _text(value: str | None) -> str:
    if not value:
        return ""
    if not unicodedata.is_normalized("NFC", value):
        value = unicodedata.normalize("NFC", value)
    return " ".join(value.split())


def _html(value: str) -> str:
    # Whitespace beside a tag never shows in an excerpt: "<p>甲</p>\n<p>乙</p>" reads as
    # "<p>甲</p><p>乙</p>". Once collapsed, that whitespace is one space next to "<" or ">".
    return _text(value).replace("> ", ">").replace(" <", "<")


def normalised(article: Article) -> dict[str, object]:
    """What a post is made from, with cosmetic differences taken out: NFC text, whitespace
    collapsed (inside the HTML too), categories as a set. The link is the canonical URL the
    source already made (tracking parameters gone); ``published`` / ``updated`` are not in it."""
    return {
        "title": _text(article.title),
        "summary": _html(article.summary_html),
        "image": (article.image or "").strip(),
        "link": article.url.strip(),
        "categories": sorted({_text(c) for c in article.categories} - {""}),
        "author": _text(article.author),
    }


def content_digest(article: Article) -> str:
    """128 bits of SHA-256 over :func:`normalised`: equal exactly when no post would differ.
    It runs on every entry of every poll, so the fields are joined with separator characters
    (which normalised text cannot hold) rather than serialised."""
    fields = normalised(article)
    categories = "\x1f".join(fields.pop("categories"))  # type: ignore[arg-type]
    payload = "\x1e".join([*(str(fields[name]) for name in FIELDS if name in fields), categories])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]


def changed_fields(before: Article, after: Article) -> tuple[str, ...]:
    """The fields (of :data:`FIELDS`) in which ``after`` differs from ``before``."""
    old, new = normalised(before), normalised(after)
    return tuple(name for name in FIELDS if old[name] != new[name])


@dataclass(frozen=True, slots=True)
class Revision:
    """One change of one article, decided; what :meth:`Ledger.revise` records.

    ``article`` is the source's new content for an update from a source (``None`` for the
    editor's re-render or title, and for a withdrawal); ``excerpt`` and ``digest`` go with it.
    ``title_override`` is the editor's title. ``title`` is the title the posts show afterwards."""

    article_id: int
    kind: RevisionKind
    origin: str
    title: str
    changes: tuple[str, ...] = ()
    reason: str | None = None
    article: Article | None = None
    excerpt: str | None = None
    digest: str | None = None
    title_override: str | None = None


def source_revision(
    article_id: int,
    *,
    before: Article,
    after: Article,
    origin: str,
    excerpt: str,
    digest: str,
    title_override: str | None,
    enriched: bool = False,
) -> Revision | None:
    """The revision a source's new content makes, or ``None`` when no post would change: a
    new title under an editor's override shows nowhere (the override wins, and stays).
    ``enriched``: the source fills fields in from the article's page, so a field that is now
    empty may only be a page that could not be read this time, not a correction."""
    changes = changed_fields(before, after)
    if title_override is not None:
        changes = tuple(name for name in changes if name != "title")
    if enriched:
        now = normalised(after)
        changes = tuple(name for name in changes if now[name])
    if not changes:
        return None
    return Revision(
        article_id=article_id,
        kind=RevisionKind.UPDATE,
        origin=origin,
        title=title_override or after.title,
        changes=changes,
        article=after,
        excerpt=excerpt,
        digest=digest,
    )


class DeliveryRow(NamedTuple):
    """What :func:`plan_actions` needs of one delivery of the revised article."""

    id: int
    channel: str
    state: DeliveryState


@dataclass(frozen=True, slots=True)
class PlannedAction:
    """One ``revision_actions`` row to write: ``queued`` to be applied, or ``skipped`` with
    the reason no action is taken (a policy ``off``, a channel gone, a retracted article)."""

    delivery_id: int
    channel: str
    action: Action
    queued: bool
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """What a revision does: the action rows, and the deliveries not yet posted that a
    takedown stops (``skip``, with ``skip_reason``)."""

    actions: tuple[PlannedAction, ...]
    skip: tuple[int, ...] = ()
    skip_reason: str | None = None


#: A delivery in these states has (or may have) a post on the platform.
PUBLISHED_STATES = frozenset({DeliveryState.SENT, DeliveryState.SENDING, DeliveryState.UNCERTAIN})

_CORRECTION_ACTIONS = {
    Correction.EDIT: Action.EDIT,
    Correction.REPLY: Action.REPLY,
    Correction.DELETE_AND_REPOST: Action.DELETE_AND_REPOST,
}


def plan_actions(
    kind: RevisionKind,
    deliveries: Sequence[DeliveryRow],
    policies: Mapping[str, Policies],
    *,
    reason: str | None = None,
    retracted: bool = False,
) -> Plan:
    """Each published delivery's action under its channel's policy. A delivery still queued
    gets none: it will post the current text; a takedown skips it instead. ``retracted``: the
    article was withdrawn before this update, so a correction acts on no post."""
    actions: list[PlannedAction] = []
    for delivery in deliveries:
        if delivery.state not in PUBLISHED_STATES:
            continue
        policy = policies.get(delivery.channel)
        if kind is RevisionKind.DELETE:
            why = (
                f"channel {delivery.channel!r} is no longer in the config"
                if policy is None
                else f"takedowns are off for channel {delivery.channel!r}"
                if policy.takedowns is Takedown.OFF
                else None
            )
            actions.append(
                PlannedAction(delivery.id, delivery.channel, Action.DELETE, not why, why)
            )
            continue
        action = _CORRECTION_ACTIONS.get(policy.corrections) if policy else None
        why = (
            "the article was retracted: its posts are taken down, not corrected"
            if retracted
            else f"channel {delivery.channel!r} is no longer in the config"
            if policy is None
            else f"corrections are off for channel {delivery.channel!r}"
            if action is None
            else None
        )
        actions.append(
            PlannedAction(delivery.id, delivery.channel, action or Action.EDIT, not why, why)
        )
    if kind is not RevisionKind.DELETE:
        return Plan(tuple(actions))
    waiting = tuple(d.id for d in deliveries if d.state is DeliveryState.QUEUED)
    return Plan(tuple(actions), waiting, f"retracted: {reason or 'withdrawn by the source'}")


def policies_for(
    settings_corrections: Correction | None,
    settings_takedowns: Takedown | None,
    *,
    default_corrections: Correction,
    default_takedowns: Takedown,
) -> Policies:
    """A channel's policies: what its config says, else its platform's defaults."""
    return Policies(
        settings_corrections or default_corrections, settings_takedowns or default_takedowns
    )


def policy_refusal(
    policies: Policies,
    *,
    can_edit: bool,
    can_reply: bool,
    can_delete: bool,
    can_repost: bool = True,
    platform: str = "this channel",
) -> tuple[str, str] | None:
    """(key, why) when a policy asks what the platform cannot do; ``None`` when it can. The
    reason says what the platform does allow for that key. A repost needs a delete and
    ``can_repost``: a new post of the same delivery working there."""
    repost = can_delete and can_repost
    needs = {
        Correction.EDIT: (can_edit, "edit a published post"),
        Correction.REPLY: (can_reply, "reply to a published post"),
        Correction.DELETE_AND_REPOST: (repost, "delete a published post and post it again"),
    }
    if policies.corrections in needs:
        able, what = needs[policies.corrections]
        if not able:
            allowed = [str(c) for c, (ok, _) in needs.items() if ok] + [str(Correction.OFF)]
            return "corrections", (
                f"corrections: {policies.corrections} needs a platform that can {what}, and "
                f"{platform} cannot; it allows corrections: {' | '.join(allowed)}"
            )
    if policies.takedowns is Takedown.DELETE and not can_delete:
        return "takedowns", (
            "takedowns: delete needs a platform that can delete a published post, and "
            f"{platform} cannot; it allows takedowns: off"
        )
    return None
