"""Bluesky, through the ``atproto`` SDK's ``AsyncClient``: the only module that imports atproto.

What Bluesky documents, and how this channel follows it:

- A post's text is at most 300 graphemes and 3,000 bytes (lexicon ``app.bsky.feed.post``,
  ``maxGraphemes: 300, maxLength: 3000``). Links, hashtags and mentions are rich-text facets over
  UTF-8 *byte* ranges (https://docs.bsky.app/docs/advanced-guides/post-richtext), built by
  :mod:`bot.compose.richtext`; the visible link is shortened as the Bluesky app shows it and the
  facet keeps the whole URL, so :data:`~bot.compose.length.BLUESKY_POST` measures the short form.
  A mention's handle is resolved to its DID (``com.atproto.identity.resolveHandle``); one that
  does not resolve stays plain text, as the app does.
- The link card is an ``app.bsky.embed.external`` with the article's title, description and a
  thumbnail uploaded first as a blob (``com.atproto.repo.uploadBlob``; at most 1,000,000 bytes,
  the lexicon's ``thumb`` limit). A thumbnail that cannot be had costs the card its image, never
  the post.
- Login is ``com.atproto.server.createSession`` with an app password, once per process: the
  session is reused for every post and the SDK refreshes it (``refreshSession``) before the
  access token expires. A token the PDS still calls expired is refreshed once, and a refused
  refresh means one new login. ``createSession`` is itself limited (30 per 5 minutes, 300 a day
  per account: https://docs.bsky.app/docs/advanced-guides/rate-limits), hence no login per post.
- Writes cost points: 5,000 an hour and 35,000 a day per account, 3 per created record (same
  page). Each write's answer carries ``ratelimit-remaining`` and ``ratelimit-reset`` (epoch
  seconds, draft-polli-ratelimit-headers): once fewer points remain than a post costs, the next
  post waits for the reset without a request, and a 429 waits for it too
  (:class:`TransientError` ``retry_after``).

Bluesky keeps no idempotency key for ``createRecord``, so a request that left with no answer
back is *maybe sent*: the delivery becomes uncertain rather than risk a second post.

A post's life after it is published:

- **No edit.** A Bluesky post cannot be edited: the app offers none, and although a repo record
  could be overwritten (``com.atproto.repo.putRecord``), every reply, like, repost and quote
  holds a strong reference (uri and cid) to the version it saw, which an overwrite would break.
  Corrections default to ``reply``.
- **Reply**: a post whose ``reply`` holds strong refs to the thread's ``root`` and to its
  ``parent`` (lexicon ``app.bsky.feed.post#replyRef``; https://docs.bsky.app/docs/
  advanced-guides/posts#replies). The receipt has only the uri, so the parent's cid (and, when
  it is itself a reply, its root) come from ``com.atproto.repo.getRecord``; a record that is not
  there (``RecordNotFound``) is :class:`PostGone`. Facets and the link card are a normal post's.
  The account's latest records are read first (``com.atproto.repo.listRecords``): a reply to
  the same post with the same text is an earlier attempt whose answer was lost, taken as the
  receipt rather than replying twice.
- **Delete**: ``com.atproto.repo.deleteRecord`` of the post's collection and rkey (1 write
  point). The PDS answers a record already gone with success and no ``commit``, which is
  :class:`PostGone`. Takedowns default to ``delete``.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from atproto import AsyncClient, models
from atproto_client import exceptions as at_errors
from atproto_client.models.common import XrpcError
from atproto_client.request import AsyncRequest
from atproto_core.exceptions import AtProtocolError

from bot.channels.base import Channel
from bot.compose import richtext
from bot.compose.length import BLUESKY_POST, LengthRule
from bot.config import BlueskyChannelConfig
from bot.errors import DeliveryError, PermanentError, PostGone, TransientError
from bot.images import NoImage, download
from bot.model import Correction, Post, Published, Receipt, Takedown
from bot.sources.fetch import Fetcher
from bot.sources.policy import STRICT, FetchPolicy

log = logging.getLogger(__name__)

MAX_THUMB_BYTES = 1_000_000
POINTS_PER_POST = 3  # a created record costs 3 of the 5,000 write points an hour
POST_COLLECTION = "app.bsky.feed.post"
_NOT_FOUND = "RecordNotFound"
EARLIER_REPLIES = 50  # the account's latest records read for a reply an earlier attempt made
MAX_DESCRIPTION = 300
DEFAULT_RETRY_AFTER = 60.0
IMAGE_TIMEOUT = 10.0
_IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif")
_EXPIRED = "ExpiredToken"
_MAX_DETAIL = 300


class _HeaderKeepingRequest(AsyncRequest):  # type: ignore[misc]
    """The SDK's request, remembering the write budget the PDS reported on its last answer
    (``ratelimit-remaining`` / ``ratelimit-reset``), which the SDK's models do not carry."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.remaining: int | None = None
        self.reset: float | None = None

    async def _send_request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        response: httpx.Response = await super()._send_request(method, url, **kwargs)
        remaining = response.headers.get("ratelimit-remaining", "")
        reset = response.headers.get("ratelimit-reset", "")
        if (
            url.endswith("com.atproto.repo.createRecord")
            and remaining.isdigit()
            and reset.isdigit()
        ):
            self.remaining, self.reset = int(remaining), float(reset)
        return response


class BlueskyChannel(Channel):
    """Posts to one Bluesky account: text with facets, and a link card for the article."""

    can_reply = True
    can_delete = True
    default_corrections = Correction.REPLY
    default_takedowns = Takedown.DELETE

    def __init__(
        self,
        config: BlueskyChannelConfig,
        client: AsyncClient,
        *,
        image_policy: FetchPolicy = STRICT,
    ) -> None:
        super().__init__(config.name or "bluesky")
        self.config = config
        self.client = client
        self._did: str | None = None
        self._handle = config.handle
        self._dids: dict[str, str | None] = {}
        self._fetcher: Fetcher | None = None
        # Channels have no allowlist of their own: an image is fetched under the strict policy.
        self._image_policy = image_policy
        self._secret = config.app_password.get_secret_value()
        self.logins = 0

    @classmethod
    def from_config(
        cls, config: BlueskyChannelConfig, *, image_policy: FetchPolicy = STRICT
    ) -> BlueskyChannel:
        """A client for the account's PDS with the configured timeout."""
        request = _HeaderKeepingRequest(timeout=config.timeout.total_seconds())
        client = AsyncClient(base_url=config.pds_url, request=request)
        return cls(config, client, image_policy=image_policy)

    def rule(self, *, has_image: bool) -> LengthRule:
        return BLUESKY_POST

    async def start(self) -> None:
        """Logs in once (createSession); the session then serves every post."""
        await self._login()
        self._fetcher = Fetcher(
            max_bytes=MAX_THUMB_BYTES, timeout=IMAGE_TIMEOUT, policy=self._image_policy
        )
        await self._fetcher.__aenter__()

    async def close(self) -> None:
        if self._fetcher is not None:
            await self._fetcher.aclose()
            self._fetcher = None
        await self.client.request.close()

    async def verify(self) -> str:
        """``com.atproto.server.getSession``: the handle the app password logged in as."""
        if self._did is None:
            await self._login()
        try:
            session = await self.client.com.atproto.server.get_session()
        except (AtProtocolError, httpx.HTTPError) as exc:
            raise PermanentError(self._translate(exc, "getSession").reason) from exc
        return f"@{session.handle} ({session.did})"

    async def send(self, post: Post) -> Receipt:
        return await self._create(post)

    async def reply(self, published: Published, post: Post) -> Receipt:
        """``post`` in the published post's thread, right under it; a reply this account
        already made there with this text (an earlier attempt whose answer was lost) is
        answered instead of a second one."""
        self._check_budget()
        try:
            if self._did is None:
                await self._login()
            ref = await self._reply_ref(published)
            earlier = await self._earlier_reply(ref.parent.uri, richtext.display(post.text).text)
        except TransientError as exc:
            # Nothing was posted yet: the reply itself is not in doubt.
            raise TransientError(exc.reason, retry_after=exc.retry_after) from exc
        if earlier is not None:
            return self._receipt(earlier, ["replied by an earlier attempt whose answer was lost"])
        return await self._create(post, reply=ref)

    async def _earlier_reply(self, parent: str, text: str) -> str | None:
        """The uri of this account's latest record replying to ``parent`` with ``text``."""
        params = models.ComAtprotoRepoListRecords.Params(
            repo=self._did, collection=POST_COLLECTION, limit=EARLIER_REPLIES
        )
        listed = await self._with_session(
            lambda: self.client.com.atproto.repo.list_records(params), "listRecords"
        )
        for record in listed.records:
            value = record.value
            reply = getattr(value, "reply", None)
            above = getattr(getattr(reply, "parent", None), "uri", None)
            if above == parent and getattr(value, "text", None) == text:
                return str(record.uri)
        return None

    async def delete(self, published: Published) -> None:
        repo, collection, rkey = _parts(published.remote_id)
        if self._did is None:
            await self._login()
        data = models.ComAtprotoRepoDeleteRecord.Data(
            repo=repo or self._did, collection=collection, rkey=rkey
        )
        response = await self._with_session(
            lambda: self.client.com.atproto.repo.delete_record(data), "deleteRecord"
        )
        if response.commit is None:
            raise PostGone(
                f"Bluesky ({self.config.pds_url}) has no record {published.remote_id} to delete"
            )

    async def _reply_ref(self, published: Published) -> models.AppBskyFeedPost.ReplyRef:
        repo, collection, rkey = _parts(published.remote_id)
        params = models.ComAtprotoRepoGetRecord.Params(
            repo=repo or self._did, collection=collection, rkey=rkey
        )
        found = await self._with_session(
            lambda: self.client.com.atproto.repo.get_record(params),
            "getRecord",
            gone=published.remote_id,
        )
        if not found.cid:
            raise PermanentError(f"Bluesky answered the post {published.remote_id} without a cid")
        parent = models.ComAtprotoRepoStrongRef.Main(uri=found.uri, cid=found.cid)
        value = found.value
        earlier = getattr(value, "reply", None)
        if earlier is None and isinstance(value, dict):
            earlier = value.get("reply")
        root = getattr(earlier, "root", None) if earlier is not None else None
        if root is None and isinstance(earlier, dict):
            raw = earlier.get("root")
            root = models.ComAtprotoRepoStrongRef.Main(**raw) if isinstance(raw, dict) else None
        return models.AppBskyFeedPost.ReplyRef(root=root or parent, parent=parent)

    async def _create(
        self, post: Post, *, reply: models.AppBskyFeedPost.ReplyRef | None = None
    ) -> Receipt:
        self._check_budget()
        shown = richtext.display(post.text)
        notes: list[str] = []
        try:
            if self._did is None:
                await self._login()
            facets = await self._facets(shown)
            embed = await self._card(post, notes) if self.config.link_card and post.link else None
        except TransientError as exc:
            # Nothing was posted yet (a login, a handle lookup): the post itself is not in doubt.
            raise TransientError(exc.reason, retry_after=exc.retry_after) from exc
        record = models.AppBskyFeedPost.Record(
            created_at=self.client.get_current_time_iso(),
            text=shown.text,
            facets=facets or None,
            embed=embed,
            langs=[self.config.language],
            reply=reply,
        )
        response = await self._with_session(
            lambda: self.client.app.bsky.feed.post.create(self._did, record), "createRecord"
        )
        return self._receipt(response.uri, notes)

    def _receipt(self, uri: str, notes: list[str]) -> Receipt:
        rkey = uri.rsplit("/", 1)[-1]
        return Receipt(
            remote_id=uri,
            url=f"https://bsky.app/profile/{self._handle}/post/{rkey}",
            accepted_at=datetime.now(UTC),
            notes=tuple(notes),
        )

    def _check_budget(self) -> None:
        """When the PDS's last answer left fewer write points than a post costs, wait for its
        reset instead of spending a request on a certain 429."""
        request = self.client.request
        remaining = getattr(request, "remaining", None)
        reset = getattr(request, "reset", None)
        if remaining is None or reset is None or remaining >= POINTS_PER_POST:
            return
        wait = reset - time.time()
        if wait > 0:
            raise TransientError(
                f"Bluesky ({self.config.pds_url}) reported {remaining} write points left until "
                f"its reset; waiting {wait:.0f} s",
                retry_after=wait,
            )

    # -- session -------------------------------------------------------------------------------

    async def _login(self) -> None:
        try:
            await self.client.login(self.config.handle, self._secret, fetch_bsky_profile=False)
        except (AtProtocolError, httpx.HTTPError) as exc:
            error = self._translate(exc, "createSession")
            if isinstance(error, TransientError):
                raise error from exc
            raise PermanentError(
                f"Bluesky refused the login of {self.config.handle} at {self.config.pds_url} "
                f"({error.reason}): check the app password (app_password of channel "
                f"{self.name!r}) and the handle"
            ) from exc
        self.logins += 1
        session = self.client._session
        if session is not None:
            self._did, self._handle = session.did, session.handle

    async def _with_session(self, call: Any, doing: str, *, gone: str | None = None) -> Any:
        """One call; a token the PDS calls expired is refreshed (else a new login) once.
        ``gone`` names the published record the call is about: its RecordNotFound is
        :class:`PostGone`."""
        try:
            return await call()
        except (at_errors.BadRequestError, at_errors.UnauthorizedError) as exc:
            if _error_name(exc) != _EXPIRED:
                raise self._translate(exc, doing, gone=gone) from exc
            log.info("Bluesky channel %r: the session expired; refreshing it", self.name)
        except (AtProtocolError, httpx.HTTPError) as exc:
            raise self._translate(exc, doing, gone=gone) from exc
        try:
            await self.client._refresh_and_set_session()
        except (AtProtocolError, httpx.HTTPError):
            await self._login()
        try:
            return await call()
        except (AtProtocolError, httpx.HTTPError) as exc:
            raise self._translate(exc, doing, gone=gone) from exc

    # -- facets and card -----------------------------------------------------------------------

    async def _facets(self, shown: richtext.RichText) -> list[models.AppBskyRichtextFacet.Main]:
        facets = []
        for span in shown.spans:
            feature: Any
            if span.kind == "link":
                feature = models.AppBskyRichtextFacet.Link(uri=span.value)
            elif span.kind == "tag":
                feature = models.AppBskyRichtextFacet.Tag(tag=span.value)
            else:
                did = await self._resolve(span.value)
                if did is None:
                    continue
                feature = models.AppBskyRichtextFacet.Mention(did=did)
            index = models.AppBskyRichtextFacet.ByteSlice(
                byte_start=span.byte_start, byte_end=span.byte_end
            )
            facets.append(models.AppBskyRichtextFacet.Main(features=[feature], index=index))
        return facets

    async def _resolve(self, handle: str) -> str | None:
        if handle not in self._dids:
            try:
                response = await self._with_session(
                    lambda: self.client.resolve_handle(handle), "resolveHandle"
                )
                self._dids[handle] = response.did
            except PermanentError:
                self._dids[handle] = None
        return self._dids[handle]

    async def _card(self, post: Post, notes: list[str]) -> models.AppBskyEmbedExternal.Main:
        thumb = None
        if self.config.thumbnail and post.image:
            try:
                thumb = await self._thumb(post.image)
            except NoImage as exc:
                notes.append(f"link card without its image: {exc}")
                log.warning("%s: %s", self.name, notes[-1])
        description = post.summary
        if len(description) > MAX_DESCRIPTION:
            description = description[: MAX_DESCRIPTION - 1] + "…"
        external = models.AppBskyEmbedExternal.External(
            uri=post.link, title=post.title, description=description, thumb=thumb
        )
        return models.AppBskyEmbedExternal.Main(external=external)

    async def _thumb(self, url: str) -> Any:
        data, media_type = await download(self._fetcher, url, max_bytes=MAX_THUMB_BYTES)
        try:
            uploaded = await self._with_session(
                lambda: self.client.com.atproto.repo.upload_blob(
                    data, headers={"Content-Type": media_type}
                ),
                "uploadBlob",
            )
        except DeliveryError as exc:
            raise NoImage(f"Bluesky refused the upload ({exc.reason})") from exc
        return uploaded.blob

    # -- errors --------------------------------------------------------------------------------

    def _translate(
        self, exc: BaseException, doing: str, *, gone: str | None = None
    ) -> DeliveryError:
        """One SDK or transport error → Transient or Permanent, with the PDS's own words."""
        where = f"Bluesky ({doing} at {self.config.pds_url})"
        if (
            gone is not None
            and isinstance(exc, at_errors.BadRequestError)
            and _error_name(exc) == _NOT_FOUND
        ):
            return PostGone(f"{where}: the post {gone} is no longer there ({self._detail(exc)})")
        if isinstance(exc, at_errors.RateLimitExceededError):
            wait = _retry_after(exc)
            return TransientError(
                f"{where} rate limit reached (429 RateLimitExceeded); retry after {wait:.0f} s",
                retry_after=wait,
            )
        if isinstance(exc, at_errors.UnauthorizedError | at_errors.BadRequestError):
            status = exc.response.status_code if exc.response else "?"
            return PermanentError(f"{where} refused ({status}): {self._detail(exc)}")
        if isinstance(exc, at_errors.RequestErrorBase) and exc.response is not None:
            status = exc.response.status_code
            if status >= 500 or status in (408, 409):
                return TransientError(f"{where} had a server error ({status}): {self._detail(exc)}")
            return PermanentError(f"{where} answered HTTP {status}: {self._detail(exc)}")
        cause = exc.__cause__ if isinstance(exc, at_errors.RequestErrorBase) else exc
        if isinstance(cause, httpx.HTTPError):
            sent = _maybe_sent(cause)
            reason = f"{where}: no answer ({type(cause).__name__})"
            if sent:
                reason += "; the request may have reached the platform"
            return TransientError(reason, maybe_sent=sent)
        if isinstance(exc, at_errors.LoginRequiredError):
            return PermanentError(f"{where}: not logged in")
        if isinstance(exc, at_errors.ModelError):
            # The PDS answered 2xx with a shape the SDK cannot read: the write may have happened.
            return TransientError(
                f"{where} answered in an unexpected shape: {self._scrub(str(exc))[:_MAX_DETAIL]}",
                maybe_sent=doing == "createRecord",
            )
        return PermanentError(f"{where} failed: {type(exc).__name__}: {self._scrub(str(exc))}")

    def _detail(self, exc: at_errors.RequestErrorBase) -> str:
        content = exc.response.content if exc.response is not None else None
        if isinstance(content, XrpcError):
            text = f"{content.error}: {content.message}" if content.message else content.error
        else:
            text = str(content or "no detail given")
        return self._scrub(text)[:_MAX_DETAIL]

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text


def _parts(uri: str) -> tuple[str | None, str, str]:
    """repo, collection and rkey of an ``at://`` uri (a bare rkey is a post of this account)."""
    rest = uri.removeprefix("at://").split("/")
    if len(rest) == 3:
        return rest[0], rest[1], rest[2]
    return None, POST_COLLECTION, rest[-1]


def _error_name(exc: at_errors.RequestErrorBase) -> str | None:
    content = exc.response.content if exc.response is not None else None
    return content.error if isinstance(content, XrpcError) else None


def _retry_after(exc: at_errors.RateLimitExceededError) -> float:
    if exc.reset_at is not None:
        return max(1.0, float(exc.reset_at.timestamp()) - time.time())
    if exc.retry_after is not None:
        return max(1.0, float(exc.retry_after))
    return DEFAULT_RETRY_AFTER


def _maybe_sent(exc: httpx.HTTPError) -> bool:
    """Did the request leave before it failed? Not when the connection never opened or no
    pooled connection was free."""
    return not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
