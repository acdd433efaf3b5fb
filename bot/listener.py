"""The daemon's HTTP listener: health, metrics and the push endpoints.

=========================== ========================================================
``GET /healthz``            200 ``ok``, or 503 with the reason the daemon is unhealthy
``GET /metrics``            the Prometheus text exposition (:mod:`bot.metrics`)
``POST /hooks/<source>``    a CMS webhook (:class:`bot.sources.webhook.WebhookReceiver`)
``GET|POST /websub/<source>`` a WebSub subscription (:class:`bot.sources.websub.WebSubSubscriber`)
=========================== ========================================================

Push bodies are capped (1 MiB unless a receiver asks for more, e.g. a WebSub feed up to its
source's ``max_bytes``): a larger one is refused with 413 before it is read whole. The listener
runs in the daemon's event loop: ``async with Listener(config, health=..., metrics=...)``.
It logs no request bodies and no headers, so a signature or secret never reaches a log line.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType, TracebackType
from typing import Self

from aiohttp import web

from bot.config import HealthConfig
from bot.errors import LedgerError
from bot.metrics import Metrics
from bot.sources.push import PushReceiver, PushRequest, PushResponse

__all__ = ["Health", "Listener"]

log = logging.getLogger("newsbot.listener")

#: ``(healthy, reason)``; the reason is shown with a 503.
Health = Callable[[], Awaitable[tuple[bool, str]]]

_CHUNK = 64 * 1024
_EMPTY: Mapping[str, PushReceiver] = MappingProxyType({})


class Listener:
    """An aiohttp server on ``config.listen``; ``url`` is its base URL once started."""

    def __init__(
        self,
        config: HealthConfig,
        *,
        health: Health,
        metrics: Metrics,
        receivers: Mapping[str, PushReceiver] = _EMPTY,
        shutdown_timeout: float = 5.0,
    ) -> None:
        self.config = config
        self._health = health
        self.metrics = metrics
        self.receivers = dict(receivers)
        self._shutdown_timeout = shutdown_timeout
        self._runner: web.AppRunner | None = None
        self._port = config.port
        # Bodies are read by _read_capped with each receiver's own cap, not aiohttp's.
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_route("*", "/hooks/{source}", self._push)
        app.router.add_route("*", "/websub/{source}", self._push)
        self.app = app

    @property
    def url(self) -> str:
        """``http://host:port`` (the port the OS chose when the config said 0)."""
        host = self.config.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self._port}"

    def register(self, receiver: PushReceiver) -> None:
        """Serve ``receiver`` from now on (replacing one of the same name), e.g. after a reload
        or when the receiver needs the listener's URL to be built."""
        self.receivers[receiver.name] = receiver

    def unregister(self, name: str) -> None:
        self.receivers.pop(name, None)

    async def start(self) -> None:
        runner = web.AppRunner(
            self.app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=self._shutdown_timeout,
        )
        await runner.setup()
        site = web.TCPSite(
            runner,
            self.config.host,
            self.config.port,
            reuse_address=True,
        )
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        sockets = getattr(site._server, "sockets", None)
        if sockets:
            self._port = int(sockets[0].getsockname()[1])
        log.info("listening on %s (/healthz, /metrics, push endpoints)", self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- handlers ------------------------------------------------------------------------------

    async def _healthz(self, request: web.Request) -> web.Response:
        try:
            healthy, reason = await self._health()
        except Exception as exc:  # a broken check is itself a reason to be called unhealthy
            log.exception("the health check failed")
            healthy, reason = False, f"the health check failed: {type(exc).__name__}"
        if healthy:
            return web.Response(text="ok\n")
        return web.Response(status=503, text=(reason or "unhealthy").rstrip("\n") + "\n")

    async def _metrics(self, request: web.Request) -> web.Response:
        body, content_type = self.metrics.render()
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response

    async def _push(self, request: web.Request) -> web.StreamResponse:
        prefix = request.path.strip("/").split("/", 1)[0]
        name = request.match_info["source"]
        receiver = self.receivers.get(name)
        if receiver is None or receiver.prefix != prefix:
            what = "webhook" if prefix == "hooks" else "WebSub"
            return _answer(
                PushResponse.json(404, {"error": f"no {what} source named {name!r} is configured"})
            )
        if request.method not in receiver.methods:
            allowed = ", ".join(sorted(receiver.methods))
            response = _answer(
                PushResponse.json(405, {"error": f"{request.method} is not allowed here"})
            )
            response.headers["Allow"] = allowed
            return response
        body = await _read_capped(request, receiver.max_body)
        if body is None:
            self.metrics.pushed(name, accepted=False)
            return _answer(
                PushResponse.json(
                    413, {"error": f"the body is larger than {receiver.max_body} bytes"}
                )
            )
        push = PushRequest(
            method=request.method,
            body=body,
            headers=MappingProxyType({k.lower(): v for k, v in request.headers.items()}),
            query=MappingProxyType(dict(request.query)),
            remote=request.remote,
        )
        try:
            answer = await receiver.handle(push)
        except LedgerError as exc:
            # Nothing was recorded and the sender should try again later: not our bug.
            log.error("push to %s not recorded: %s", name, exc, extra={"source": name})
            answer = PushResponse.problem(503, "the ledger cannot record it now; try again")
        except Exception:
            log.exception("push to %s failed", name, extra={"source": name})
            answer = PushResponse.problem(500, "internal error; nothing was recorded, try again")
        if answer.outcome is not None:
            self.metrics.pushed(name, accepted=answer.outcome == "accepted")
        return _answer(answer)


async def _read_capped(request: web.Request, limit: int) -> bytes | None:
    """The body, or ``None`` when it is over ``limit`` (stops reading there)."""
    declared = request.content_length
    if declared is not None and declared > limit:
        return None
    body = bytearray()
    async for chunk in request.content.iter_chunked(_CHUNK):
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def _answer(answer: PushResponse) -> web.Response:
    response = web.Response(status=answer.status, body=answer.body)
    response.headers["Content-Type"] = answer.content_type
    return response
