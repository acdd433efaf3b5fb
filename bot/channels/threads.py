"""Threads (Meta's Threads API on graph.threads.net): the only module that knows its endpoints.

What Threads documents, and what this channel does with it:

- Publishing is two steps (developers.facebook.com/documentation/threads/posts): ``POST
  /{user-id}/threads`` makes a media container (``media_type=TEXT`` with ``text`` and, for a
  preview card, ``link_attachment``; or ``IMAGE`` with an ``image_url`` Threads fetches itself),
  then ``POST /{user-id}/threads_publish`` with ``creation_id`` publishes it.
- Text is limited to 500 characters, "emojis are counted as the number of UTF-8 bytes"
  (same page): :data:`bot.compose.length.THREADS_POST`. At most five distinct links
  (THREADS_API__LINK_LIMIT_EXCEEDED since 22 December 2025, .../create-posts/text-attachments).
- "Threads profiles are limited to 250 API-published posts within a 24-hour moving period",
  enforced on ``threads_publish``; ``GET /{user-id}/threads_publishing_limit`` tells
  ``quota_usage`` and ``config.quota_total`` (developers.facebook.com/docs/threads/overview).
  The default pace is 250/24h, kept in the ledger; before each new container the quota is read
  too (other apps posting for the profile count against it) unless ``quota_check: false``.
- A container is ``IN_PROGRESS``, ``FINISHED``, ``PUBLISHED``, ``EXPIRED`` (not published
  within 24 hours) or ``ERROR``: ``GET /{container-id}?fields=status,error_message``
  (.../threads/troubleshooting).
- Errors are Graph's (:mod:`bot.channels.graph`).

**Never published twice.** The container id is written to the delivery's row in the ledger
(:class:`~bot.channels.base.InFlight`) after the container is made and before the publish call.
Any later attempt on the delivery (a retry after a lost answer, ``newsbot retry --uncertain``
after a crash) first asks Threads for that container's status: PUBLISHED means the earlier
attempt went out (recorded sent, nothing published); FINISHED means it did not (that same
container is published); EXPIRED or ERROR means a new container. A container made but not
noted (a crash between the two calls) is never published and expires. Hence
``resend_is_safe``: a send whose answer was lost is retried rather than left uncertain.

A post's life after it is published:

- **No edit.** The Threads API has no endpoint that changes a published post (the app lets a
  person edit for a few minutes; the API documents create, retrieve, reply and delete only:
  developers.facebook.com/docs/threads/posts), so corrections default to ``reply``.
- **Delete**: ``DELETE /{threads-media-id}`` with the post's media id (not its container),
  permission ``threads_delete``, at most 100 deletes per profile in 24 hours; it answers
  ``{"success": true, "deleted_id": ...}`` (developers.facebook.com/docs/threads/posts/
  delete-posts). Takedowns default to ``delete``. A post that is not there answers code 100
  "does not exist": :class:`~bot.errors.PostGone`.
- **Reply**: the same two steps, the container made with ``reply_to_id`` set to the post's
  media id, then ``threads_publish`` (developers.facebook.com/documentation/threads/
  retrieve-and-manage-replies/create-replies). Replies have a quota of their own
  (``reply_quota_usage``), so the post quota is not consulted.
  *Never published twice*, without a ledger note (the delivery's row is already sent): a reply
  container is published right after it is made, and one whose publish never happened (a crash
  between the two calls) expires unpublished. Before making a container, a reply first reads
  the post's replies (``GET /{media-id}/replies?fields=id,text,username,permalink``): one by
  this profile with the same text is an earlier attempt whose answer was lost, and is answered
  as the receipt instead of replying again.

Long-lived tokens last 60 days and are renewed with ``GET /refresh_access_token
?grant_type=th_refresh_token`` (:meth:`ThreadsChannel.refresh_token`; README).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from bot.channels.base import Channel, InFlight, MemoryInFlight
from bot.channels.graph import GraphClient, GraphError
from bot.compose.length import THREADS_POST, LengthRule
from bot.config import ThreadsChannelConfig
from bot.errors import PermanentError, TransientError
from bot.model import Correction, Post, Published, Receipt, Takedown

NOTE_PREFIX = "threads-container:"
QUOTA_RECHECK = 900.0
READY_CHECKS = 5
IN_PROGRESS_RETRY = 60.0

log = logging.getLogger(__name__)


class ThreadsChannel(Channel):
    """Posts to one Threads profile: text with a link card, or an image with the text."""

    resend_is_safe = True
    can_reply = True
    can_delete = True
    # A repost would be published through send(), whose container note (never published
    # twice) lives on a delivery being sent; a repost's delivery is already sent, so the note
    # is refused after the delete has gone through. Config validation refuses the policy.
    can_repost = False
    default_corrections = Correction.REPLY
    default_takedowns = Takedown.DELETE

    def __init__(self, config: ThreadsChannelConfig, in_flight: InFlight | None = None) -> None:
        super().__init__(config.name or "threads")
        self.config = config
        self.in_flight = in_flight or MemoryInFlight()
        self.graph = GraphClient(
            base=f"{config.api_url.rstrip('/')}/{config.api_version}",
            token=config.access_token.get_secret_value(),
            timeout=config.timeout.total_seconds(),
            what="Threads",
            channel=self.name,
            token_hint="access_token",
        )
        self._user = config.user_id
        self._username: str | None = None

    @classmethod
    def from_config(
        cls, config: ThreadsChannelConfig, in_flight: InFlight | None = None
    ) -> ThreadsChannel:
        return cls(config, in_flight)

    def rule(self, *, has_image: bool) -> LengthRule:
        return THREADS_POST

    async def start(self) -> None:
        await self.graph.start()

    async def close(self) -> None:
        await self.graph.close()

    async def verify(self) -> str:
        """The profile's username and its publishing quota, without posting."""
        me = await self.graph.request("GET", "/me", {"fields": "id,username"})
        self._username = str(me.get("username") or "") or None
        who = f"@{me.get('username', '?')} (id {me.get('id', '?')})"
        usage = await self._quota()
        if usage is not None:
            who += f", {usage[0]} of {usage[1]} posts in the last 24 h"
        return who

    async def refresh_token(self) -> tuple[str, int]:
        """A new long-lived token and its lifetime in seconds (the old one stays valid until
        it expires). Threads refreshes a token at least 24 hours old and not yet expired."""
        base = self.config.api_url.rstrip("/")
        refresher = GraphClient(
            base=base,
            token=self.config.access_token.get_secret_value(),
            timeout=self.graph.timeout,
            what="Threads",
            channel=self.name,
            token_hint="access_token",
        )
        try:
            body = await refresher.call(
                "GET", "/refresh_access_token", {"grant_type": "th_refresh_token"}
            )
        except GraphError as exc:
            raise refresher.translate(exc) from exc
        finally:
            await refresher.close()
        token, lifetime = body.get("access_token"), body.get("expires_in")
        if not isinstance(token, str) or not isinstance(lifetime, int):
            raise PermanentError("Threads answered the token refresh without a token")
        return token, lifetime

    # -- sending -----------------------------------------------------------------------------

    async def send(self, post: Post) -> Receipt:
        notes: list[str] = []
        resumed = await self._resume(post, notes)
        if isinstance(resumed, Receipt):
            return resumed
        if resumed is not None:
            container, ready = resumed
        else:
            if self.config.quota_check:
                await self._quota_allows()
            container, ready = await self._create(post, notes)
            try:
                await self.in_flight.remember(post, NOTE_PREFIX + container)
            except Exception as exc:
                # Unnoted, this container must never be published: a retry makes a new one.
                raise TransientError(
                    f"the Threads container {container} could not be noted in the ledger "
                    f"({type(exc).__name__}), so it was not published"
                ) from exc
        if not ready:
            await self._until_ready(container)
        return await self._publish(container, notes, text=post.text)

    # -- after publication -------------------------------------------------------------------

    async def delete(self, published: Published) -> None:
        media = published.remote_id
        body = await self.graph.request("DELETE", f"/{media}", post=media)
        if body.get("success") is not True:
            raise PermanentError(f"Threads did not confirm the deletion of post {media}")

    async def reply(self, published: Published, post: Post) -> Receipt:
        """``post`` as a reply under the published post (text, with its link card)."""
        parent = published.remote_id
        earlier = await self._earlier_reply(parent, post.text)
        if earlier is not None:
            return earlier
        params = {"media_type": "TEXT", "text": post.text, "reply_to_id": parent}
        if self.config.link_attachment and post.link:
            params["link_attachment"] = post.link
        body = await self.graph.request("POST", f"/{self._user}/threads", params, post=parent)
        container = str(body.get("id") or "")
        if not container:
            raise PermanentError("Threads made a reply container but answered no id")
        return await self._publish(container, [], text=post.text)

    async def _earlier_reply(self, parent: str, text: str) -> Receipt | None:
        """The reply an earlier attempt published with this text, if the post has one."""
        body = await self.graph.request(
            "GET", f"/{parent}/replies", {"fields": "id,text,username,permalink"}, post=parent
        )
        data = body.get("data")
        if self._username is None and isinstance(data, list) and data:
            me = await self.graph.request("GET", "/me", {"fields": "id,username"})
            self._username = str(me.get("username") or "") or None
        for entry in data if isinstance(data, list) else []:
            if (
                isinstance(entry, dict)
                and entry.get("text") == text
                and entry.get("username") == self._username
                and entry.get("id")
            ):
                return Receipt(
                    remote_id=str(entry["id"]),
                    url=str(entry["permalink"]) if entry.get("permalink") else None,
                    accepted_at=datetime.now(UTC),
                    notes=("replied by an earlier attempt whose answer was lost",),
                )
        return None

    async def _resume(self, post: Post, notes: list[str]) -> tuple[str, bool] | Receipt | None:
        """What an earlier attempt left: a receipt when its container went out, the container
        to publish when it did not, or None when a new container is needed."""
        note = await self.in_flight.recall(post)
        if not note or not note.startswith(NOTE_PREFIX):
            return None
        container = note[len(NOTE_PREFIX) :]
        status = await self._status(container)
        if status == "PUBLISHED":
            log.info("%s: container %s was published by an earlier attempt", self.name, container)
            notes.append(
                f"published by an earlier attempt whose answer was lost (Threads container "
                f"{container} is PUBLISHED)"
            )
            return await self._found(container, post.text, notes)
        if status in ("FINISHED", "IN_PROGRESS"):
            notes.append(f"published the container {container} an earlier attempt had made")
            return container, status == "FINISHED"
        notes.append(f"the earlier container {container} was {status or 'gone'}; made a new one")
        return None

    async def _status(self, container: str) -> str | None:
        try:
            body = await self.graph.call("GET", f"/{container}", {"fields": "status,error_message"})
        except GraphError as exc:
            if exc.code == 100:
                return None  # no such container (any more)
            raise self.graph.translate(exc) from exc
        status = body.get("status")
        return str(status) if status else None

    async def _quota(self) -> tuple[int, int] | None:
        try:
            body = await self.graph.call(
                "GET", f"/{self._user}/threads_publishing_limit", {"fields": "quota_usage,config"}
            )
        except GraphError as exc:
            if exc.code in {190, 10} or 200 <= exc.code <= 299 or exc.status >= 500:
                raise self.graph.translate(exc) from exc
            return None  # the endpoint is not there: the ledger's pace still holds
        data = body.get("data")
        entry = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
        usage, config = entry.get("quota_usage"), entry.get("config")
        total = config.get("quota_total") if isinstance(config, dict) else None
        if isinstance(usage, int) and isinstance(total, int):
            return usage, total
        return None

    async def _quota_allows(self) -> None:
        usage = await self._quota()
        if usage is not None and usage[0] >= usage[1]:
            raise TransientError(
                f"the Threads profile has used its publishing quota ({usage[0]} of {usage[1]} "
                "posts in the last 24 hours, other apps included)",
                retry_after=QUOTA_RECHECK,
            )

    async def _create(self, post: Post, notes: list[str]) -> tuple[str, bool]:
        """A new container, and whether it is ready (text is; an image is processed first)."""
        if self.config.media and post.image:
            params = {"media_type": "IMAGE", "image_url": post.image, "text": post.text}
            try:
                return await self._container(params), False
            except PermanentError as exc:
                if "access token" in exc.reason or "permission" in exc.reason:
                    raise
                notes.append(f"posted without the image: {exc.reason}")
                log.warning("%s: %s", self.name, notes[-1])
        params = {"media_type": "TEXT", "text": post.text}
        if self.config.link_attachment and post.link:
            params["link_attachment"] = post.link
        return await self._container(params), True

    async def _container(self, params: dict[str, str]) -> str:
        body = await self.graph.request("POST", f"/{self._user}/threads", params)
        container = body.get("id")
        if not container:
            raise PermanentError("Threads made a container but answered no id")
        return str(container)

    async def _publish(self, container: str, notes: list[str], *, text: str = "") -> Receipt:
        try:
            body = await self.graph.call(
                "POST", f"/{self._user}/threads_publish", {"creation_id": container}
            )
        except GraphError as exc:
            error = self.graph.translate(exc)
            if isinstance(error, PermanentError) and await self._status(container) == "PUBLISHED":
                notes.append("Threads had already published this container")
                return await self._found(container, text, notes)
            raise error from exc
        media = str(body.get("id") or "")
        if not media:
            raise PermanentError("Threads published the post but answered no id")
        return Receipt(
            remote_id=media,
            url=await self._permalink(media, notes),
            accepted_at=datetime.now(UTC),
            notes=tuple(notes),
        )

    async def _found(self, container: str, text: str, notes: list[str]) -> Receipt:
        """The receipt of a container an earlier attempt published: its post, found among the
        profile's latest posts by its exact text (an edit, a reply or a delete needs the media
        id, which only the lost answer had), else the container's id, so noted."""
        try:
            body = await self.graph.call(
                "GET", f"/{self._user}/threads", {"fields": "id,text,permalink", "limit": "25"}
            )
        except (GraphError, TransientError):
            body = {}
        data = body.get("data")
        for entry in data if isinstance(data, list) else []:
            if isinstance(entry, dict) and text and entry.get("text") == text and entry.get("id"):
                link = entry.get("permalink")
                return Receipt(
                    remote_id=str(entry["id"]),
                    url=str(link) if link else None,
                    accepted_at=datetime.now(UTC),
                    notes=tuple(notes),
                )
        notes.append("the post's own id could not be found; the receipt names the container")
        return Receipt(remote_id=container, accepted_at=datetime.now(UTC), notes=tuple(notes))

    async def _until_ready(self, container: str) -> None:
        """An image container is processed before it can be published; text is ready at once."""
        for attempt in range(READY_CHECKS):
            status = await self._status(container)
            if status in ("FINISHED", None):
                return
            if status == "ERROR":
                raise PermanentError(f"Threads could not process the container {container}")
            if status in ("EXPIRED", "PUBLISHED"):
                return  # publishing answers for it
            if attempt < READY_CHECKS - 1:
                await asyncio.sleep(self.config.container_wait.total_seconds())
        raise TransientError(
            f"the Threads container {container} is still being processed",
            retry_after=IN_PROGRESS_RETRY,
        )

    async def _permalink(self, media: str, notes: list[str]) -> str | None:
        try:
            body = await self.graph.call("GET", f"/{media}", {"fields": "permalink"})
        except (GraphError, TransientError) as exc:
            notes.append(f"the post's permalink could not be read ({type(exc).__name__})")
            return None
        link = body.get("permalink")
        return str(link) if link else None
