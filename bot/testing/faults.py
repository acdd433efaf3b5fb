"""Scripted failures shared by the Bluesky and Mastodon fakes: a queue of faults, each for the
next *n* requests (to one path, or any), and the two that look the same on every platform —
a dropped connection and a late answer. Each fake answers a rate limit or a server error in its
own platform's words."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web

FaultKind = Literal["rate_limited", "server_error", "drop", "slow"]


@dataclass(frozen=True, slots=True)
class Fault:
    """One failure to inject; build one with the class methods."""

    kind: FaultKind
    seconds: float = 0.0
    status: int = 503

    @classmethod
    def rate_limited(cls, reset_in: float = 60.0) -> Fault:
        """429 with the platform's reset header ``reset_in`` seconds from now."""
        return cls("rate_limited", seconds=reset_in, status=429)

    @classmethod
    def server_error(cls, status: int = 503) -> Fault:
        return cls("server_error", status=status)

    @classmethod
    def drop(cls) -> Fault:
        """Close the connection without answering (before doing anything)."""
        return cls("drop")

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        """Carry out the request, but answer only after ``seconds`` (even if the client left)."""
        return cls("slow", seconds=seconds)


@dataclass(slots=True)
class _Queued:
    fault: Fault
    remaining: int
    path: str | None


@dataclass(slots=True)
class FaultQueue:
    """Faults waiting for requests; thread-safe, since a threaded fake is scripted from tests."""

    _queued: list[_Queued] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, n: int, fault: Fault, path: str | None = None) -> None:
        with self._lock:
            self._queued.append(_Queued(fault, n, path))

    def take(self, path: str) -> Fault | None:
        with self._lock:
            for queued in self._queued:
                if queued.remaining > 0 and queued.path in (None, path):
                    queued.remaining -= 1
                    return queued.fault
            return None


def drop_connection(request: web.Request) -> None:
    """Abort the connection under ``request``; the handler must end without answering."""
    if request.transport is not None:
        request.transport.abort()
    # Nothing can be written to an aborted transport; end the handler quietly.
    raise asyncio.CancelledError


__all__ = ["Fault", "FaultKind", "FaultQueue", "drop_connection"]
