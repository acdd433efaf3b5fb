"""Facebook Pages through the Graph API: the only module that knows its endpoints.

- A Page post is ``POST /{version}/{page-id}/feed`` with ``message`` and ``link`` (Facebook
  builds the link's preview card from its Open Graph tags), made with a **Page access token**
  (permissions ``pages_manage_posts`` and ``pages_read_engagement``); it answers
  ``{"id": "<page-id>_<post-id>"}`` (developers.facebook.com/docs/pages-api/posts).
- A photo post is ``POST /{version}/{page-id}/photos`` with ``url`` (Facebook fetches it) and
  ``caption``; it answers ``{"id": <photo>, "post_id": <post>}``. When the photo is refused
  the post goes out as a link post, saying so in the receipt.
- A message takes up to 63,206 characters (:data:`bot.compose.length.FACEBOOK_POST`).
- The Graph API version is configurable (``graph_version: v21.0``): Meta retires each version
  about two years after its release, and a Page keeps working by moving the setting on.
- Page tokens fall under Business Use Case rate limits: 4800 calls per 24 hours times the
  Page's engaged users, usage in ``X-Business-Use-Case-Usage``
  (developers.facebook.com/docs/graph-api/overview/rate-limiting). The default pace is that
  budget's floor, 4800/24h; a receipt notes when the usage headers pass 80 %.
- Errors are Graph's (:mod:`bot.channels.graph`): 190 expired token, 10/200 permission, 4/17/32/
  613/80001 throttled, 1/2 and 5xx passing, 506 duplicate. Facebook has no idempotency key, so a
  post whose answer was lost becomes ``uncertain``; a resend of the same message right after is
  refused as a duplicate (506), which then confirms the earlier attempt.

A post's life after it is published (developers.facebook.com/docs/pages-api/posts, "Update a
post", "Delete a post", and .../graph-api/reference/object/comments):

- **Edit**: ``POST /{page-post-id}`` with ``message`` answers ``{"success": true}``. Only the
  text of a Page post can be changed: a link post keeps its link and its preview card (Graph
  takes no ``link`` on an update), a photo post its photo; the new message is the whole text.
  Edits are in place, so corrections default to ``edit``.
- **Delete**: ``DELETE /{page-post-id}`` answers ``{"success": true}``; takedowns default to
  ``delete``.
- **Reply**: a comment by the Page, ``POST /{page-post-id}/comments`` with ``message``,
  answering ``{"id": "<post>_<comment>"}``. The post's comments are read first (``GET
  /{page-post-id}/comments?order=reverse_chronological``, .../graph-api/reference/object/
  comments): one by the Page with the same text is an earlier attempt whose answer was lost,
  taken as the receipt rather than commenting twice.
- A post that is not there any more answers code 100 (subcode 33, "does not exist"):
  :class:`~bot.errors.PostGone`. Permissions (200: ``pages_manage_posts`` for edit and delete,
  ``pages_manage_engagement`` for comments), tokens (190) and throttling as for a post.
  An edit is the same request however often it is sent, so a lost answer to one is simply tried
  again; a comment whose answer was lost may have been made (``maybe_sent``), and its retry
  finds it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from bot.channels.base import Channel
from bot.channels.graph import GraphClient, GraphError, busiest_usage
from bot.compose.length import FACEBOOK_POST, LengthRule
from bot.config import FacebookChannelConfig
from bot.errors import PermanentError
from bot.model import Correction, Post, Published, Receipt, Takedown

PHOTO_PROBLEMS = frozenset({100, 324, 1366046})
USAGE_WARNING = 80

log = logging.getLogger(__name__)


class FacebookChannel(Channel):
    """Posts to one Facebook Page: a link post, or a photo with the text as its caption."""

    can_edit = True
    can_reply = True
    can_delete = True
    default_corrections = Correction.EDIT
    default_takedowns = Takedown.DELETE

    def __init__(self, config: FacebookChannelConfig) -> None:
        super().__init__(config.name or "facebook")
        self.config = config
        self.graph = GraphClient(
            base=f"{config.api_url.rstrip('/')}/{config.graph_version}",
            token=config.access_token.get_secret_value(),
            timeout=config.timeout.total_seconds(),
            what="Facebook",
            channel=self.name,
            token_hint="access_token (a Page access token)",
        )

    @classmethod
    def from_config(cls, config: FacebookChannelConfig) -> FacebookChannel:
        return cls(config)

    def rule(self, *, has_image: bool) -> LengthRule:
        return FACEBOOK_POST

    async def start(self) -> None:
        await self.graph.start()

    async def close(self) -> None:
        await self.graph.close()

    async def verify(self) -> str:
        """The Page's name: proves the token reads the Page, without posting."""
        page = await self.graph.request("GET", f"/{self.config.page_id}", {"fields": "id,name"})
        return f"{page.get('name', '?')} (page {page.get('id', '?')})"

    async def send(self, post: Post) -> Receipt:
        notes: list[str] = []
        if self.config.photo and post.image:
            try:
                body = await self.graph.call(
                    "POST",
                    f"/{self.config.page_id}/photos",
                    {"url": post.image, "caption": post.text},
                )
            except GraphError as exc:
                if exc.code not in PHOTO_PROBLEMS:
                    raise self.graph.translate(exc) from exc
                notes.append(f"posted without the photo: {self.graph.translate(exc).reason}")
                log.warning("%s: %s", self.name, notes[-1])
            else:
                post_id = str(body.get("post_id") or body.get("id") or "")
                return self._receipt(post_id, notes)
        params = {"message": post.text}
        if post.link:
            params["link"] = post.link
        body = await self.graph.request("POST", f"/{self.config.page_id}/feed", params)
        return self._receipt(str(body.get("id") or ""), notes)

    async def edit(self, published: Published, post: Post) -> Receipt:
        """The post's message becomes ``post.text``; its link, card or photo stay."""
        post_id = published.remote_id
        body = await self.graph.request("POST", f"/{post_id}", {"message": post.text}, post=post_id)
        if body.get("success") is not True:
            raise PermanentError(f"Facebook did not confirm the edit of post {post_id}")
        return self._receipt(post_id, [])

    async def reply(self, published: Published, post: Post) -> Receipt:
        """A comment by the Page under the post; one the Page already made there with this
        text (an earlier attempt whose answer was lost) is answered instead of a second."""
        post_id = published.remote_id
        earlier = await self._earlier_comment(post_id, post.text)
        if earlier is not None:
            return self._comment_receipt(
                post_id, earlier, ["commented by an earlier attempt whose answer was lost"]
            )
        body = await self.graph.request(
            "POST", f"/{post_id}/comments", {"message": post.text}, post=post_id
        )
        comment = str(body.get("id") or "")
        if not comment:
            raise PermanentError("Facebook accepted the comment but answered no id")
        return self._comment_receipt(post_id, comment, [])

    async def _earlier_comment(self, post_id: str, text: str) -> str | None:
        body = await self.graph.request(
            "GET",
            f"/{post_id}/comments",
            {"fields": "id,message,from", "order": "reverse_chronological", "limit": "50"},
            post=post_id,
        )
        data = body.get("data")
        for entry in data if isinstance(data, list) else []:
            author = entry.get("from") if isinstance(entry, dict) else None
            if (
                isinstance(author, dict)
                and str(author.get("id")) == self.config.page_id
                and entry.get("message") == text
                and entry.get("id")
            ):
                return str(entry["id"])
        return None

    def _comment_receipt(self, post_id: str, comment: str, notes: list[str]) -> Receipt:
        receipt = self._receipt(comment, notes)
        local = comment.rsplit("_", 1)[-1]
        return Receipt(
            remote_id=comment,
            url=f"https://www.facebook.com/{post_id}?comment_id={local}",
            accepted_at=receipt.accepted_at,
            notes=receipt.notes,
        )

    async def delete(self, published: Published) -> None:
        post_id = published.remote_id
        body = await self.graph.request("DELETE", f"/{post_id}", post=post_id)
        if body.get("success") is not True:
            raise PermanentError(f"Facebook did not confirm the deletion of post {post_id}")

    def _receipt(self, post_id: str, notes: list[str]) -> Receipt:
        if not post_id:
            raise PermanentError("Facebook accepted the post but answered no id")
        busiest = busiest_usage(self.graph.last_usage)
        if busiest >= USAGE_WARNING:
            notes.append(f"the Page's Graph API budget is {busiest} % used")
        return Receipt(
            remote_id=post_id,
            url=f"https://www.facebook.com/{post_id}",
            accepted_at=datetime.now(UTC),
            notes=tuple(notes),
        )
