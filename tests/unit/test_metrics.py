"""The daemon's Prometheus metrics: names, labels, and a registry per instance."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from bot.metrics import Metrics


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_delivered_counts_by_channel_and_state_and_observes_delay() -> None:
    """delivered() counts posts per (channel, state) and records published→post time."""
    metrics = Metrics()
    metrics.delivered("telegram", "sent", delay_seconds=0.4)
    metrics.delivered("telegram", "sent", delay_seconds=90)
    metrics.delivered("x", "failed")
    assert value(metrics, "newsbot_posts_total", channel="telegram", state="sent") == 2
    assert value(metrics, "newsbot_posts_total", channel="x", state="failed") == 1
    hist = "newsbot_publish_to_post_seconds"
    assert value(metrics, f"{hist}_count", channel="telegram") == 2
    assert value(metrics, f"{hist}_sum", channel="telegram") == 90.4
    assert value(metrics, f"{hist}_bucket", channel="telegram", le="0.5") == 1
    assert value(metrics, f"{hist}_bucket", channel="telegram", le="21600.0") == 2
    assert value(metrics, f"{hist}_count", channel="x") is None


def test_histogram_buckets_span_a_tenth_of_a_second_to_six_hours() -> None:
    """The delay histogram's finite buckets run from 0.1 s to 6 h."""
    metrics = Metrics()
    metrics.delivered("x", "sent", delay_seconds=1)
    bounds = [
        float(sample.labels["le"])
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == "newsbot_publish_to_post_seconds_bucket"
    ]
    finite = [b for b in bounds if b != float("inf")]
    assert min(finite) == 0.1 and max(finite) == 6 * 3600


def test_polled_counts_results_and_errors() -> None:
    """polled() labels ok / not_modified / error and counts errors per source separately."""
    metrics = Metrics()
    metrics.polled("newsvision", ok=True)
    metrics.polled("newsvision", ok=True, not_modified=True)
    metrics.polled("newsvision", ok=False)
    metrics.polled("newsvision", ok=False)
    polls = "newsbot_source_polls_total"
    assert value(metrics, polls, source="newsvision", result="ok") == 1
    assert value(metrics, polls, source="newsvision", result="not_modified") == 1
    assert value(metrics, polls, source="newsvision", result="error") == 2
    assert value(metrics, "newsbot_source_errors_total", source="newsvision") == 2


def test_queue_depth_sets_each_channel_and_zeroes_the_ones_left_out() -> None:
    """set_queue_depth() is a snapshot: a channel no longer mentioned drops to 0."""
    metrics = Metrics()
    metrics.set_queue_depth({"telegram": 3, "x": 5})
    metrics.set_queue_depth({"x": 1})
    assert value(metrics, "newsbot_queue_depth", channel="telegram") == 0
    assert value(metrics, "newsbot_queue_depth", channel="x") == 1


def test_x_spend_and_push_results() -> None:
    """set_x_spend() sets the month's posts and spend; pushed() counts accepted and rejected."""
    metrics = Metrics()
    metrics.set_x_spend("x", posts=12, spend=2.4)
    metrics.pushed("cms", accepted=True)
    metrics.pushed("cms", accepted=False)
    metrics.pushed("cms", accepted=False)
    assert value(metrics, "newsbot_x_month_posts", channel="x") == 12
    assert value(metrics, "newsbot_x_month_spend", channel="x") == 2.4
    pushes = "newsbot_push_requests_total"
    assert value(metrics, pushes, source="cms", result="accepted") == 1
    assert value(metrics, pushes, source="cms", result="rejected") == 2


def test_two_instances_do_not_share_a_registry() -> None:
    """Each Metrics has its own registry: building two in one process neither fails nor mixes."""
    first, second = Metrics(), Metrics()
    first.pushed("cms", accepted=True)
    assert value(second, "newsbot_push_requests_total", source="cms", result="accepted") is None


def test_render_is_parseable_prometheus_text() -> None:
    """render() gives the text exposition format with its content type, every family named."""
    metrics = Metrics()
    metrics.delivered("telegram", "sent", delay_seconds=2)
    metrics.polled("newsvision", ok=True)
    metrics.set_queue_depth({"telegram": 0})
    metrics.set_x_spend("x", posts=0, spend=0.0)
    metrics.pushed("cms", accepted=True)
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(body.decode("utf-8"))}
    assert {
        "newsbot_posts",
        "newsbot_publish_to_post_seconds",
        "newsbot_source_polls",
        "newsbot_source_errors",
        "newsbot_queue_depth",
        "newsbot_x_month_posts",
        "newsbot_x_month_spend",
        "newsbot_push_requests",
    } <= names


def test_revised_counts_actions_by_channel_action_and_state() -> None:
    """revised() counts corrections and takedowns per (channel, action, state)."""
    metrics = Metrics()
    metrics.revised("telegram", "edit", "done")
    metrics.revised("telegram", "edit", "done")
    metrics.revised("x", "delete", "failed")
    name = "newsbot_revision_actions_total"
    assert value(metrics, name, channel="telegram", action="edit", state="done") == 2
    assert value(metrics, name, channel="x", action="delete", state="failed") == 1
