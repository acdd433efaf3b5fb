"""Revisions out: a recorded correction or takedown applied to each published post, once.

The revisions themselves (what changed in an article, and one ``revision_actions`` row per
published post, the action chosen by the channel's policy) are recorded when a source or an
editor changes an article. This module applies them, per channel, after the channel's due
posts and at the same pace: claim (a lease, like a delivery's), compose the post from the
article as it reads now, mark in flight, call the channel's ``edit`` / ``reply`` / ``delete``
(``delete`` then ``send`` for a repost), judge the result with
:func:`bot.outcome.judge_action`, and record it with one :meth:`bot.ledger.Ledger.finish_action`.
Nothing here decides an outcome; it knows no platform.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot import outcome as rules
from bot.channels.base import Channel
from bot.errors import PermanentError, PostGone, TemplateError
from bot.ledger import ClaimedAction, Mark, Pace, offload
from bot.model import Action, Post, Receipt
from bot.outcome import ActionOutcome

if TYPE_CHECKING:
    from bot.pipeline import PassReport, Pipeline

log = logging.getLogger("newsbot.revising")

#: What may go during a channel's quiet hours: changes that notify nobody. A reply and a
#: repost are new posts, and wait for the morning like any other.
SILENT_ACTIONS = (Action.EDIT, Action.DELETE)


class Reviser:
    """Applies due revision actions for the pipeline it belongs to (its config, channels,
    ledger, clock and holder, read on every use, so a reload takes effect)."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    async def drain(
        self, name: str, batch: int, pace: Pace | None, report: PassReport, *, quiet: bool = False
    ) -> None:
        """Apply what is due on one channel, in order, until nothing more may go now; the
        report learns each outcome and when to look again."""
        pipeline = self.pipeline
        kinds = SILENT_ACTIONS if quiet else None
        while not pipeline.stopping:
            now = pipeline.clock()
            claim = await offload(
                pipeline.ledger.claim_actions,
                now,
                holder=pipeline.holder,
                channel=name,
                pace=pace,
                limit=batch,
                kinds=kinds,
            )
            if not claim.actions:
                wait = claim.wait_until
                if wait is not None and pace is not None and wait > now:
                    # As for posts: another instance's slot frees sooner than it reserved.
                    wait = min(wait, now + max(pace.spacing, timedelta(seconds=1)))
                report.wake(wait)
                return
            paused_until: datetime | None = None
            in_flight = False
            for index, action in enumerate(claim.actions):
                if pipeline.stopping or paused_until is not None:
                    for rest in claim.actions[index:]:
                        await offload(
                            pipeline.ledger.release_action,
                            rest.id,
                            now=pipeline.clock(),
                            holder=pipeline.holder,
                        )
                    break
                following = claim.actions[index + 1] if index + 1 < len(claim.actions) else None
                applied = await self.apply(
                    action,
                    spacing=pace.spacing if pace else None,
                    in_flight=in_flight,
                    then=following.id if following else None,
                )
                outcome, in_flight = applied if applied is not None else (None, False)
                if outcome is None:
                    continue
                if not outcome.retry:
                    report.actions[str(outcome.state)] += 1
                if outcome.pause_until is not None and outcome.pause_until > pipeline.clock():
                    paused_until = outcome.pause_until
            if paused_until is not None:
                report.paused_channels[name] = paused_until
                report.wake(paused_until)
                return

    async def apply(
        self,
        action: ClaimedAction,
        *,
        spacing: timedelta | None = None,
        in_flight: bool = False,
        then: int | None = None,
    ) -> tuple[ActionOutcome, bool] | None:
        """One claimed action's whole path, with one ledger write for its outcome: the outcome,
        and whether ``then`` (the next claimed action) was marked in flight with it (as a
        delivery's next is: one round trip per action); ``None`` when the claim was lost
        (recovery gave it away while this instance stalled). ``in_flight``: this one already
        was marked so."""
        pipeline = self.pipeline
        outcome, error = await self._attempt(action, in_flight=in_flight)
        context = {
            "source": action.source,
            "article": action.article.key,
            "channel": action.channel,
            "delivery": action.delivery_id,
            "action": action.id,
        }
        if outcome is None:
            log.warning("claim lost before the %s; not applied", action.action, extra=context)
            return None
        finished = await offload(
            pipeline.ledger.finish_action,
            action.id,
            outcome,
            now=pipeline.clock(),
            holder=pipeline.holder,
            spacing=spacing,
            then_in_flight=then,
        )
        if not finished:
            log.warning(
                "claim lost before the %s's outcome was recorded: %s",
                action.action,
                outcome.state,
                extra=context,
            )
            return None
        pipeline.announce(outcome, context, error)
        if pipeline.observer is not None and not outcome.retry:
            pipeline.observer.revised(action.channel, str(action.action), str(outcome.state))
        return outcome, finished.next_in_flight

    async def _attempt(
        self, action: ClaimedAction, *, in_flight: bool = False
    ) -> tuple[ActionOutcome | None, BaseException | None]:
        pipeline = self.pipeline
        channel = pipeline.channels.get(action.channel)
        settings = pipeline.config.channels.get(action.channel)
        if channel is None or settings is None:
            reason = f"channel {action.channel!r} is no longer in the config"
            return rules.action_skipped(reason, level=logging.WARNING), None
        post = notice = None
        if action.action is not Action.DELETE:
            try:
                post, notice = await asyncio.to_thread(self._compose, action)
            except (PermanentError, TemplateError) as exc:
                reason = exc.reason if isinstance(exc, PermanentError) else str(exc)
                return rules.action_not_composed(
                    action.channel, action.article.title, action.action, reason
                ), None
        early = rules.before_action(
            action.action,
            retracted=action.retracted,
            current_text=action.published.text,
            new_text=post.text if post else None,
        )
        if early is not None:
            return early, None
        if not in_flight:
            mark = await offload(
                pipeline.ledger.mark_action_in_flight,
                action.id,
                now=pipeline.clock(),
                holder=pipeline.holder,
            )
            if mark is Mark.RETRACTED:  # withdrawn since the claim
                return rules.before_action(
                    action.action, retracted=True, current_text=None, new_text=None
                ), None
            if not mark:
                return None, None
        result: Receipt | BaseException | None
        try:
            result = await self._call(channel, action, post, notice)
        except Exception as exc:
            # A bug in a channel must not stop the others; judged, recorded, never retried.
            result = exc
        sent = notice if action.action is Action.REPLY else post
        policy = rules.Policy.of(settings, resend_is_safe=channel.resend_is_safe)
        outcome = rules.judge_action(
            result,
            action=action.action,
            attempts=action.attempts,
            title=action.article.title,
            text=sent.text if sent else None,
            policy=policy,
            now=pipeline.clock(),
        )
        return outcome, result if isinstance(result, BaseException) else None

    def _compose(self, action: ClaimedAction) -> tuple[Post, Post | None]:
        """The post as the article reads now (same template as the original), and for a
        reply the correction notice from the channel's ``correction_template``."""
        pipeline = self.pipeline
        post = pipeline.compose(
            article=action.article,
            excerpt=action.excerpt,
            source=action.source,
            channel=action.channel,
        )
        if action.action is not Action.REPLY:
            return post, None
        # The channel's correction_template, or the default notice for its kind of template.
        template = pipeline.config.channels[action.channel].correction_template_name
        notice = pipeline.compose_post(
            article=action.article,
            excerpt=action.excerpt,
            source=action.source,
            channel=action.channel,
            template=template,
        ).post
        return post, notice

    @staticmethod
    async def _call(
        channel: Channel, action: ClaimedAction, post: Post | None, notice: Post | None
    ) -> Receipt | None:
        published = action.published
        if action.action is Action.DELETE:
            await channel.delete(published)
            return None
        assert post is not None
        if action.action is Action.EDIT:
            return await channel.edit(published, post)
        if action.action is Action.REPLY:
            assert notice is not None
            return await channel.reply(published, notice)
        # Already gone (by hand, or by an earlier attempt): the repost goes ahead.
        with contextlib.suppress(PostGone):
            await channel.delete(published)
        return await channel.send(post)
