"""Running a fake on 127.0.0.1: in the caller's event loop, or in a thread of its own.

A test that drives the ``newsbot`` command in a subprocess needs the fake to keep answering
while the test blocks, hence the thread; a test inside one event loop uses ``async with``.
The port is chosen by the OS unless given.
"""

from __future__ import annotations

import asyncio
import ipaddress
import signal
import threading
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Self, TypeVar

from aiohttp import web

LOOPBACK = "127.0.0.1"
T = TypeVar("T")


def _is_loopback(host: str) -> bool:
    # Any of 127.0.0.0/8: a second loopback address (127.0.0.2) stands for "another machine"
    # in the tests of the fetch policy.
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LocalServer:
    """One aiohttp application served on the loopback interface."""

    def __init__(self, app: web.Application, *, host: str = LOOPBACK, port: int = 0) -> None:
        if host != "localhost" and not _is_loopback(host):
            raise ValueError("the fakes only ever listen on the loopback interface")
        self.app = app
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:43121``."""
        if not self.port:
            raise RuntimeError("the server has not started")
        return f"http://{self.host}:{self.port}"

    async def start(self) -> str:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        sockets = getattr(site._server, "sockets", None)
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

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

    # -- in a thread of its own -------------------------------------------------------------

    def start_in_thread(self) -> str:
        """Serve from a background thread; returns the base URL once it accepts connections."""
        self._thread = threading.Thread(target=self._serve_forever, name="fake-server", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=10)
        if self._error is not None:
            raise RuntimeError("the fake server failed to start") from self._error
        return self.url

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run ``coroutine`` on the server's own loop (threaded mode) and wait for it: how a
        test thread makes a threaded fake act, e.g. a hub pushing to its subscribers."""
        if self._loop is None:
            raise RuntimeError("run() is for a fake started with `with`, in its own thread")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def stop_thread(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> Self:
        self.start_in_thread()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_thread()

    def _serve_forever(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self.start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self.stop())
            loop.close()


class Served:
    """What every fake shares: it owns a :class:`LocalServer` (``_server``) and runs as
    ``with fake:`` (in a thread, for a test driving the ``newsbot`` command) or
    ``async with fake:`` (in the test's own event loop)."""

    _server: LocalServer

    async def __aenter__(self) -> Self:
        await self._server.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._server.stop()

    def __enter__(self) -> Self:
        self._server.start_in_thread()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.stop_thread()


def serve_until_signalled(fake: Served, url: Callable[[], str]) -> None:
    """Run ``fake`` in this process until SIGINT or SIGTERM, printing its base URL first so
    that a caller (a script, a person) can read where it listens."""

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        async with fake:
            print(url(), flush=True)
            await stop.wait()

    asyncio.run(run())
