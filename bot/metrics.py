"""Prometheus metrics of one daemon, served at ``GET /metrics`` by :mod:`bot.listener`.

Every metric lives in a :class:`~prometheus_client.CollectorRegistry` of its own, not the
process-wide default one, so that several daemons (or tests) in one process never collide.
The daemon calls the small methods below as things happen; nothing here reads the ledger.

==================================== ======= ============================================
name                                 type    labels
==================================== ======= ============================================
``newsbot_posts_total``              counter ``channel``, ``state`` (sent, failed, ...)
``newsbot_publish_to_post_seconds``  histo.  ``channel``: article published → post sent
``newsbot_source_polls_total``       counter ``source``, ``result`` (ok, not_modified, error)
``newsbot_source_errors_total``      counter ``source``
``newsbot_queue_depth``              gauge   ``channel``: deliveries waiting
``newsbot_x_month_posts``            gauge   ``channel``: X posts this calendar month
``newsbot_x_month_spend``            gauge   ``channel``: their price this month
``newsbot_push_requests_total``      counter ``source``, ``result`` (accepted, rejected)
``newsbot_health``                   gauge   ``check`` (ledger, ...): 1 healthy, 0 failing
==================================== ======= ============================================
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

__all__ = ["PUBLISH_TO_POST_BUCKETS", "Metrics"]

# From a tenth of a second (a webhook push) to six hours (a post held by quiet hours).
PUBLISH_TO_POST_BUCKETS = (
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    1800.0, 3600.0, 7200.0, 14400.0, 21600.0,
)  # fmt: skip


class Metrics:
    """The daemon's metrics, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._posts = Counter(
            "newsbot_posts",
            "Deliveries that reached a final or retry state, by channel and state.",
            ["channel", "state"],
            registry=self.registry,
        )
        self._actions = Counter(
            "newsbot_revision_actions",
            "Corrections and takedowns applied to published posts (edit, reply, delete, "
            "delete_and_repost) that reached a final state, by channel, action and state.",
            ["channel", "action", "state"],
            registry=self.registry,
        )
        self._delay = Histogram(
            "newsbot_publish_to_post_seconds",
            "Seconds from an article's published time to its post being accepted.",
            ["channel"],
            buckets=PUBLISH_TO_POST_BUCKETS,
            registry=self.registry,
        )
        self._polls = Counter(
            "newsbot_source_polls",
            "Polls of a source, by result (ok, not_modified, error).",
            ["source", "result"],
            registry=self.registry,
        )
        self._source_errors = Counter(
            "newsbot_source_errors",
            "Polls of a source that failed.",
            ["source"],
            registry=self.registry,
        )
        self._queue = Gauge(
            "newsbot_queue_depth",
            "Deliveries waiting to be sent, by channel.",
            ["channel"],
            registry=self.registry,
        )
        self._x_posts = Gauge(
            "newsbot_x_month_posts",
            "Posts made on an X channel in the current calendar month.",
            ["channel"],
            registry=self.registry,
        )
        self._x_spend = Gauge(
            "newsbot_x_month_spend",
            "What the posts on an X channel cost in the current calendar month.",
            ["channel"],
            registry=self.registry,
        )
        self._pushes = Counter(
            "newsbot_push_requests",
            "Pushes received (CMS webhooks, WebSub deliveries), by result (accepted, rejected).",
            ["source", "result"],
            registry=self.registry,
        )
        self._health = Gauge(
            "newsbot_health",
            "Health checks behind /healthz, by check (ledger: can be written, is the one "
            "opened): 1 healthy, 0 failing; /healthz says why.",
            ["check"],
            registry=self.registry,
        )

    def set_health(self, check: str, *, ok: bool) -> None:
        """One health check's verdict at the last /healthz: 1 healthy, 0 failing."""
        self._health.labels(check=check).set(1 if ok else 0)

    def delivered(self, channel: str, state: str, *, delay_seconds: float | None = None) -> None:
        """One delivery reached ``state``; ``delay_seconds`` (published → sent) when known."""
        self._posts.labels(channel=channel, state=state).inc()
        if delay_seconds is not None:
            self._delay.labels(channel=channel).observe(max(delay_seconds, 0.0))

    def revised(self, channel: str, action: str, state: str) -> None:
        """One revision action on a published post reached ``state`` (done, failed, ...)."""
        self._actions.labels(channel=channel, action=action, state=state).inc()

    def polled(self, source: str, *, ok: bool, not_modified: bool = False) -> None:
        """One poll of ``source`` ended: ok, ok with nothing new (304), or in error."""
        result = "error" if not ok else "not_modified" if not_modified else "ok"
        self._polls.labels(source=source, result=result).inc()
        if not ok:
            self._source_errors.labels(source=source).inc()

    def set_queue_depth(self, depths: Mapping[str, int]) -> None:
        """Deliveries waiting per channel; a channel left out of ``depths`` is set to 0."""
        for labels in list(_label_values(self._queue)):
            if labels not in depths:
                self._queue.labels(channel=labels).set(0)
        for channel, depth in depths.items():
            self._queue.labels(channel=channel).set(depth)

    def set_x_spend(self, channel: str, *, posts: int, spend: float) -> None:
        """Posts and their price on an X channel so far this calendar month."""
        self._x_posts.labels(channel=channel).set(posts)
        self._x_spend.labels(channel=channel).set(spend)

    def pushed(self, source: str, *, accepted: bool) -> None:
        """One push request to ``source``: accepted, or rejected (bad signature, bad body)."""
        result = "accepted" if accepted else "rejected"
        self._pushes.labels(source=source, result=result).inc()

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def _label_values(gauge: Gauge) -> list[str]:
    return [
        sample.labels["channel"]
        for metric in gauge.collect()
        for sample in metric.samples
        if "channel" in sample.labels
    ]
