"""Meta's Graph API (Facebook Pages, Threads) over aiohttp: one call, and its errors in
newsbot's terms. Used by :mod:`bot.channels.facebook` and :mod:`bot.channels.threads`, which
alone know their endpoints.

Graph answers every refusal as ``{"error": {"message", "type", "code", "error_subcode",
"fbtrace_id", "is_transient"}}`` (developers.facebook.com/docs/graph-api/guides/error-handling):

- 190 (OAuthException; subcode 463 expired, 460 password changed, 467 invalid): the token is
  no good → :class:`PermanentError` naming the setting to renew;
- 10 and 200-299: a permission is missing → :class:`PermanentError`;
- 4 (app), 17 (user), 32 (Page), 613 (custom), 80001-80014 (Business Use Case): throttled →
  :class:`TransientError` with ``retry_after`` from ``X-Business-Use-Case-Usage``'s
  ``estimated_time_to_regain_access`` (minutes), else an hour, the window platform limits roll
  over (developers.facebook.com/docs/graph-api/overview/rate-limiting);
- 1, 2, ``is_transient`` or HTTP 5xx: a passing failure → :class:`TransientError`;
- 506 "Duplicate status message" → :class:`PermanentError` with ``duplicate`` set;
- 100 with subcode 33, or a message saying the object "does not exist", on a call about a post
  already published (an edit, a delete, a reply: ``translate(..., post=...)``) →
  :class:`PostGone`: Graph answers so for a post deleted since, and for one the token may no
  longer see, which for newsbot comes to the same;
- anything else → :class:`PermanentError` with Graph's message.

A request that changes something (``POST``, ``DELETE``) and got no answer (a read timeout, a
connection dropped after sending) may have been carried out: ``maybe_sent`` is set. A connection
never made is not.
The access token travels as the ``access_token`` parameter, as Meta documents, and every
message is scrubbed of it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import aiohttp

from bot.errors import DeliveryError, PermanentError, PostGone, TransientError

RATE_CODES = frozenset({4, 17, 32, 613, *range(80001, 80015)})
TRANSIENT_CODES = frozenset({1, 2})
DEFAULT_THROTTLE = 3600.0
_MAX_DETAIL = 300


class GraphError(Exception):
    """Graph refused a call; ``code`` and ``subcode`` are Graph's own."""

    def __init__(
        self,
        status: int,
        code: int,
        subcode: int | None,
        message: str,
        *,
        transient: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.subcode = subcode
        self.message = message
        self.transient = transient
        self.headers: Mapping[str, str] = headers or {}


class GraphClient:
    """One Graph host for one channel. ``what`` names the platform in messages, ``token_hint``
    the setting that holds the token."""

    def __init__(
        self,
        *,
        base: str,
        token: str,
        timeout: float,
        what: str,
        channel: str,
        token_hint: str,
    ) -> None:
        self.base = base.rstrip("/")
        self._token = token
        self.timeout = timeout
        self.what = what
        self.channel = channel
        self.token_hint = token_hint
        self.last_usage: dict[str, Any] = {}
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(
                    total=self.timeout, sock_connect=min(self.timeout, 10.0)
                )
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(
        self, method: str, path: str, params: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """The JSON answer; raises :class:`GraphError` when Graph refuses, and
        :class:`TransientError` when no answer came (``maybe_sent`` for a POST)."""
        await self.start()
        assert self._session is not None
        fields = {**(params or {}), "access_token": self._token}
        verb = method.upper()
        sending = verb in ("POST", "DELETE")
        url = self.base + path
        try:
            if verb == "POST":
                request = self._session.post(url, data=fields)
            else:
                request = self._session.request(verb, url, params=fields)
            async with request as response:
                text = await response.text()
                headers = dict(response.headers)
                status = response.status
        except aiohttp.ClientConnectorError as exc:
            raise TransientError(
                f"could not reach {self.what} at {self.base} ({type(exc).__name__})"
            ) from exc
        except aiohttp.ConnectionTimeoutError as exc:
            raise TransientError(
                f"could not connect to {self.what} at {self.base} within the timeout"
            ) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise TransientError(
                f"{self.what} at {self.base} did not answer within {self.timeout:g} s"
                + ("; the request was sent, so it may have been carried out" if sending else ""),
                maybe_sent=sending,
            ) from exc
        except (aiohttp.ClientError, asyncio.IncompleteReadError) as exc:
            raise TransientError(
                f"the connection to {self.what} at {self.base} broke ({type(exc).__name__})"
                + ("; the request was sent, so it may have been carried out" if sending else ""),
                maybe_sent=sending,
            ) from exc
        self.last_usage = _usage(headers)
        try:
            body = json.loads(text) if text else {}
        except ValueError:
            body = None
        if status >= 400 or not isinstance(body, dict) or "error" in body:
            raise _graph_error(status, body, headers, self.scrub)
        return body

    async def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        post: str | None = None,
    ) -> dict[str, Any]:
        """:meth:`call`, a refusal already translated (:meth:`translate`); ``post`` names the
        published post the call is about, if any."""
        try:
            return await self.call(method, path, params)
        except GraphError as exc:
            raise self.translate(exc, post=post) from exc

    def translate(self, error: GraphError, *, post: str | None = None) -> DeliveryError:
        """Graph's refusal as a :class:`TransientError` or :class:`PermanentError`; when the
        call was about the published post ``post`` and Graph says it is not there,
        :class:`PostGone`."""
        detail = self.scrub(error.message)[:_MAX_DETAIL] or "no detail given"
        where = f"{self.what} (code {error.code}"
        where += f", subcode {error.subcode})" if error.subcode else ")"
        if post is not None and is_gone(error):
            return PostGone(f"{where}: the post {post} is no longer there: {detail}")
        if error.code == 190:
            return PermanentError(
                f"{where} rejected the access token: {detail}. Renew it and set {self.token_hint} "
                f"of channel {self.channel!r}"
            )
        if error.code == 10 or 200 <= error.code <= 299:
            return PermanentError(f"{where} refused for lack of a permission: {detail}")
        if error.code in RATE_CODES:
            return TransientError(
                f"{where} is throttling this channel: {detail}",
                retry_after=_retry_after(error.headers),
            )
        if error.code in TRANSIENT_CODES or error.transient or error.status >= 500:
            return TransientError(f"{where} had a passing failure (HTTP {error.status}): {detail}")
        if error.code == 506:
            return PermanentError(f"{where} refused a duplicate post: {detail}", duplicate=True)
        return PermanentError(f"{where} refused the request (HTTP {error.status}): {detail}")

    def scrub(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text


def is_gone(error: GraphError) -> bool:
    """Graph's answer for an object that is not there (any more)."""
    return error.code == 100 and (error.subcode == 33 or "does not exist" in error.message.lower())


def _graph_error(status: int, body: object, headers: Mapping[str, str], scrub: Any) -> GraphError:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return GraphError(
            status, 0, None, f"HTTP {status} without a Graph error", transient=status >= 500
        )
    code = error.get("code")
    subcode = error.get("error_subcode")
    return GraphError(
        status=status,
        code=code if isinstance(code, int) else 0,
        subcode=subcode if isinstance(subcode, int) else None,
        message=scrub(str(error.get("message") or "")),
        transient=error.get("is_transient") is True,
        headers=headers,
    )


def _usage(headers: Mapping[str, str]) -> dict[str, Any]:
    """The usage headers, parsed; what cannot be read is left out."""
    found: dict[str, Any] = {}
    for name in ("X-App-Usage", "X-Business-Use-Case-Usage", "X-Page-Usage"):
        raw = headers.get(name)
        if raw:
            try:
                found[name] = json.loads(raw)
            except ValueError:
                continue
    return found


def _retry_after(headers: Mapping[str, str]) -> float:
    """Seconds until access returns: the largest ``estimated_time_to_regain_access`` (minutes)
    of ``X-Business-Use-Case-Usage``, else an hour."""
    usage = _usage(headers).get("X-Business-Use-Case-Usage")
    minutes: list[float] = []
    if isinstance(usage, dict):
        for entries in usage.values():
            for entry in entries if isinstance(entries, list) else []:
                value = (
                    entry.get("estimated_time_to_regain_access")
                    if isinstance(entry, dict)
                    else None
                )
                if isinstance(value, int | float) and value > 0:
                    minutes.append(float(value))
    return max(minutes) * 60 if minutes else DEFAULT_THROTTLE


def busiest_usage(usage: Mapping[str, Any]) -> int:
    """The highest percentage of any budget the usage headers report (0 when none)."""
    values: list[int] = []
    app = usage.get("X-App-Usage")
    if isinstance(app, dict):
        values.extend(v for v in app.values() if isinstance(v, int))
    business = usage.get("X-Business-Use-Case-Usage")
    if isinstance(business, dict):
        for entries in business.values():
            for entry in entries if isinstance(entries, list) else []:
                if isinstance(entry, dict):
                    values.extend(
                        entry[k]
                        for k in ("call_count", "total_cputime", "total_time")
                        if isinstance(entry.get(k), int)
                    )
    return max(values, default=0)
