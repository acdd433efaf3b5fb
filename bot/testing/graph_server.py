"""What Meta's Graph APIs (Facebook Pages, Threads) share, for the local fakes on 127.0.0.1.

Errors come in Graph's one shape, ``{"error": {"message", "type", "code", "error_subcode",
"fbtrace_id"}}`` (developers.facebook.com/docs/graph-api/guides/error-handling): code 190 for an
expired or invalid token (subcode 463 expired, 460 password changed, 467 invalid), 10 and
200-299 for missing permissions, 4 / 17 / 32 / 613 for rate limiting, 1 / 2 for a passing
failure on Meta's side, 100 for an invalid parameter. Rate-limit usage rides on the
``X-App-Usage`` header (percentages of the app's budget) and, for Page tokens, on
``X-Business-Use-Case-Usage`` (per business id: ``call_count``, ``total_cputime``,
``total_time`` and ``estimated_time_to_regain_access`` in minutes).

Tests queue failures with :meth:`GraphFake.fail_next`; the access token is taken from the
``access_token`` parameter (query or form) or an ``Authorization: Bearer`` header, as Graph does.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

from bot.testing.server import LOOPBACK, LocalServer, Served

Handler = Callable[[web.Request, dict[str, str]], Awaitable[web.StreamResponse]]

EXPIRED = "Error validating access token: Session has expired on Tuesday, 01-Dec-26 12:00:00 PST."
INVALID = "Invalid OAuth access token - Cannot parse access token"
RATE_MESSAGES = {
    4: "(#4) Application request limit reached",
    17: "(#17) User request limit reached",
    32: "(#32) Page request limit reached",
    613: "(#613) Calls to this api have exceeded the rate limit.",
}


@dataclass(frozen=True, slots=True)
class GraphFault:
    """A failure to inject; build one with the class methods."""

    kind: Literal["error", "drop", "slow"]
    status: int = 400
    code: int = 0
    subcode: int | None = None
    message: str = ""
    type: str = "OAuthException"
    seconds: float = 0.0
    regain_minutes: int = 0

    @classmethod
    def expired_token(cls) -> GraphFault:
        return cls("error", 400, 190, 463, EXPIRED)

    @classmethod
    def permission(cls, code: int = 200) -> GraphFault:
        message = (
            "(#10) Application does not have permission for this action"
            if code == 10
            else "(#200) Requires pages_manage_posts permission to manage the object"
        )
        return cls("error", 403, code, None, message)

    @classmethod
    def rate_limited(cls, code: int = 32, regain_minutes: int = 5) -> GraphFault:
        """A rate-limit refusal; the usage headers say when access comes back."""
        return cls("error", 400, code, None, RATE_MESSAGES[code], regain_minutes=regain_minutes)

    @classmethod
    def server_error(cls, status: int = 500) -> GraphFault:
        if status == 503:
            return cls("error", 503, 2, None, "Service temporarily unavailable")
        return cls("error", status, 1, None, "An unknown error has occurred.")

    @classmethod
    def invalid(cls, message: str = "(#100) Invalid parameter") -> GraphFault:
        return cls("error", 400, 100, None, message)

    @classmethod
    def drop(cls) -> GraphFault:
        """Close the connection without answering (before carrying the request out)."""
        return cls("drop")

    @classmethod
    def slow(cls, seconds: float) -> GraphFault:
        """Wait, then carry the request out and answer (even if the client has left)."""
        return cls("slow", seconds=seconds)


@dataclass(slots=True)
class _Queued:
    fault: GraphFault
    remaining: int
    path: str | None
    method: str | None = None


@dataclass(frozen=True, slots=True)
class GraphAttempt:
    """Every request that reached the fake; ``status`` is None when dropped."""

    method: str
    path: str
    status: int | None
    at: float
    code: int | None = None


def graph_error(
    status: int,
    code: int,
    message: str,
    *,
    subcode: int | None = None,
    kind: str = "OAuthException",
    headers: dict[str, str] | None = None,
) -> web.Response:
    error: dict[str, Any] = {
        "message": message,
        "type": kind,
        "code": code,
        "fbtrace_id": secrets.token_urlsafe(9),
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    return web.json_response({"error": error}, status=status, headers=headers)


class GraphFake(Served):
    """One Graph host: faults, token checks, usage headers and a record of every attempt.

    Subclasses add their routes with :meth:`route` (``version`` is checked for them)."""

    def __init__(self, *, token: str, version_prefix: str = "v", host: str, port: int) -> None:
        self.app = web.Application()
        self._server = LocalServer(self.app, host=host, port=port)
        self.token = token
        self.token_expired = False
        self.permissions_revoked = False
        self.attempts: list[GraphAttempt] = []
        self.calls_in_hour: list[float] = []
        self.hourly_budget = 10_000
        self._faults: list[_Queued] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(17_900_000_000_000_001)
        self._version_prefix = version_prefix

    @property
    def url(self) -> str:
        return self._server.url

    def fail_next(
        self, n: int, fault: GraphFault, *, path: str | None = None, method: str | None = None
    ) -> None:
        """The next ``n`` requests (whose path ends with ``path`` and whose method is
        ``method``, when given) meet ``fault``."""
        with self._lock:
            self._faults.append(_Queued(fault, n, path, method))

    def expire_token(self) -> None:
        """From now on the token is expired: every call answers code 190 subcode 463."""
        self.token_expired = True

    def attempts_to(self, suffix: str) -> list[GraphAttempt]:
        return [a for a in self.attempts if a.path.endswith(suffix)]

    def next_id(self) -> str:
        return str(next(self._ids))

    # -- plumbing ----------------------------------------------------------------------------

    def route(self, method: str, path: str, handler: Handler) -> None:
        self.app.router.add_route(method, path, self._guarded(handler))

    def _take_fault(self, method: str, path: str) -> GraphFault | None:
        with self._lock:
            for queued in self._faults:
                if (
                    queued.remaining > 0
                    and (queued.path is None or path.endswith(queued.path))
                    and queued.method in (None, method)
                ):
                    queued.remaining -= 1
                    return queued.fault
        return None

    def record(self, request: web.Request, status: int | None, code: int | None = None) -> None:
        self.attempts.append(GraphAttempt(request.method, request.path, status, time.time(), code))

    def usage_headers(self, regain_minutes: int = 0) -> dict[str, str]:
        """Usage as Graph reports it: percentages of the budget, and minutes until access."""
        now = time.time()
        self.calls_in_hour = [t for t in self.calls_in_hour if t > now - 3600]
        percent = min(100, len(self.calls_in_hour) * 100 // max(1, self.hourly_budget))
        if regain_minutes:
            percent = 100
        app = {"call_count": percent, "total_cputime": percent // 2, "total_time": percent // 2}
        return {"X-App-Usage": json.dumps(app), **self.business_usage(percent, regain_minutes)}

    def business_usage(self, percent: int, regain_minutes: int) -> dict[str, str]:
        """``X-Business-Use-Case-Usage``; only Page tokens get it (see the Facebook fake)."""
        return {}

    def _guarded(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def guarded(request: web.Request) -> web.StreamResponse:
            params = dict(request.query)
            if request.method == "POST":
                if request.content_type == "application/json":
                    try:
                        body = await request.json()
                    except ValueError:
                        body = None
                    if isinstance(body, dict):
                        params.update({k: str(v) for k, v in body.items()})
                else:
                    params.update({k: str(v) for k, v in (await request.post()).items()})
            fault = self._take_fault(request.method, request.path)
            if fault is not None:
                refused = await self._apply(fault, request)
                if refused is not None:
                    return refused
            token = params.pop("access_token", "")
            header = request.headers.get("Authorization", "")
            if not token and header.lower().startswith(("bearer ", "oauth ")):
                token = header.split(" ", 1)[1].strip()
            if token != self.token:
                self.record(request, 400, 190)
                return graph_error(400, 190, INVALID, headers=self.usage_headers())
            if self.token_expired:
                self.record(request, 400, 190)
                return graph_error(400, 190, EXPIRED, subcode=463, headers=self.usage_headers())
            self.calls_in_hour.append(time.time())
            if len(self.calls_in_hour) > self.hourly_budget:
                self.record(request, 400, 32)
                return graph_error(400, 32, RATE_MESSAGES[32], headers=self.usage_headers(60))
            return await handler(request, params)

        return guarded

    async def _apply(self, fault: GraphFault, request: web.Request) -> web.StreamResponse | None:
        if fault.kind == "slow":
            await asyncio.sleep(fault.seconds)
            return None
        if fault.kind == "drop":
            self.record(request, None)
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        self.record(request, fault.status, fault.code)
        return graph_error(
            fault.status,
            fault.code,
            fault.message,
            subcode=fault.subcode,
            kind=fault.type,
            headers=self.usage_headers(fault.regain_minutes),
        )

    def ok(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        self.record(request, 200)
        return web.json_response(body, headers=self.usage_headers())

    def refuse(
        self, request: web.Request, status: int, code: int, message: str, **extra: Any
    ) -> web.Response:
        self.record(request, status, code)
        return graph_error(status, code, message, headers=self.usage_headers(), **extra)


def serve_until_stopped(fake: GraphFake, what: str) -> int:
    """Serve ``fake`` until SIGINT or SIGTERM (``python -m bot.testing threads|facebook``)."""

    async def main() -> None:
        async with fake:
            print(f"{what} at {fake.url}", file=sys.stderr)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()

    asyncio.run(main())
    return 0


__all__ = ["LOOPBACK", "GraphAttempt", "GraphFake", "GraphFault", "graph_error"]
