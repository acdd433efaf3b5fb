"""One newsbot among several on a shared ledger: heartbeat, source leases, crash recovery.

The daemon keeps one :class:`InstanceKeeper` per process. It registers the process in the
ledger at start and heartbeats while it runs; it takes a source's lease before polling it, so
one instance polls a source at a time; and it turns the posts a dead instance had in flight
into ``uncertain`` ones (``queued`` on channels with ``resend_uncertain``), never resending
them blindly. An instance is dead when its heartbeat is older than ``dead_after``, or at once
when it ran on this host and its process is gone. On a clean stop it leaves: its heartbeat row
and leases are removed, and the others take its sources over at their next poll.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bot.config import Config
from bot.ledger import Ledger, RecoveryReport

log = logging.getLogger("newsbot.instances")

HEARTBEAT_EVERY = 5.0  # seconds between heartbeats (and recovery checks)
DEAD_AFTER = timedelta(seconds=30)  # no heartbeat for this long: the instance is dead
MIN_LEASE = timedelta(seconds=10)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class InstanceKeeper:
    """This process's presence in a shared ledger. ``config`` is read on every use, so a
    reloaded config (a channel's ``resend_uncertain``, a source's ``every``) takes effect."""

    def __init__(
        self,
        ledger: Ledger,
        holder: str,
        config: Callable[[], Config],
        *,
        dead_after: timedelta = DEAD_AFTER,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.ledger = ledger
        self.holder = holder
        self.config = config
        self.dead_after = dead_after
        self.clock = clock

    def start(self) -> RecoveryReport:
        """Recover what a previous life of this process, or a dead neighbour, left in flight;
        then register this process."""
        report = self.recover(starting=True)
        self.ledger.heartbeat(self.holder, self.clock(), starting=True)
        return report

    def tick(self) -> RecoveryReport:
        """Heartbeat, then recover what dead instances left in flight."""
        self.ledger.heartbeat(self.holder, self.clock())
        return self.recover()

    def stop(self) -> None:
        """A clean stop: leave the ledger's list of instances and give the leases up."""
        self.ledger.leave(self.holder)

    def recover(self, *, starting: bool = False) -> RecoveryReport:
        resend = [name for name, cfg in self.config().channels.items() if cfg.resend_uncertain]
        report = self.ledger.recover_dead(
            self.clock(), self.dead_after, resend, also=self._gone_here(starting=starting)
        )
        if report.uncertain:
            log.warning(
                "%d post(s) were in flight when newsbot instance(s) %s stopped and are now "
                "'uncertain': check the channel, then run `newsbot retry --uncertain`",
                report.uncertain,
                ", ".join(report.holders),
            )
        if report.actions_uncertain:
            log.warning(
                "%d correction(s) or takedown(s) were being applied when newsbot instance(s) %s "
                "stopped and are now 'uncertain': check the posts, then run "
                "`newsbot retry --uncertain`",
                report.actions_uncertain,
                ", ".join(report.holders),
            )
        if report.requeued:
            log.warning(
                "%d post(s) in flight when newsbot instance(s) %s stopped are queued again "
                "(resend_uncertain): they may appear twice",
                report.requeued,
                ", ".join(report.holders),
            )
        return report

    def may_poll(self, source: str) -> bool:
        """Take or renew this source's lease; False while another instance holds it."""
        return self.ledger.try_lease(source, self.holder, self.clock(), self.lease_ttl(source))

    def lease_ttl(self, source: str) -> timedelta:
        """Long enough to be renewed at the next poll; a dead holder's lease is released by
        recovery, sooner than it would expire."""
        settings = self.config().sources.get(source)
        every = settings.every if settings is not None else MIN_LEASE
        return max(2 * every + timedelta(seconds=5), MIN_LEASE)

    def _gone_here(self, *, starting: bool) -> list[str]:
        """Holders of this host whose process is gone. At start this process's own holder
        counts as gone: anything it holds is from an earlier process with the same pid (a
        container restarted under the same name)."""
        here = socket.gethostname()
        candidates = set(self.ledger.in_flight_holders())
        candidates.update(record.holder for record in self.ledger.instances())
        gone = []
        for holder in candidates:
            host, _, pid = holder.rpartition(":")
            if host != here or not pid.isdigit():
                continue
            if holder == self.holder:
                if starting:
                    gone.append(holder)
            elif not _alive(int(pid)):
                gone.append(holder)
        return sorted(gone)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
