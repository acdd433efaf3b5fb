"""Graph's refusals in newsbot's terms, from the error JSON and usage headers alone."""

from __future__ import annotations

import json

import pytest

from bot.channels.graph import GraphClient, GraphError, busiest_usage
from bot.errors import PermanentError, PostGone, TransientError

TOKEN = "EAAG-unit-secret-token"


def client() -> GraphClient:
    return GraphClient(
        base="http://127.0.0.1:1/v21.0",
        token=TOKEN,
        timeout=5,
        what="Facebook",
        channel="facebook",
        token_hint="access_token",
    )


def buc(minutes: object) -> dict[str, str]:
    usage = {
        "1": [{"type": "pages", "call_count": 100, "estimated_time_to_regain_access": minutes}]
    }
    return {"X-Business-Use-Case-Usage": json.dumps(usage)}


@pytest.mark.parametrize(
    ("code", "subcode", "status", "kind"),
    [
        (190, 463, 400, PermanentError),
        (10, None, 403, PermanentError),
        (200, None, 403, PermanentError),
        (4, None, 400, TransientError),
        (17, None, 400, TransientError),
        (32, None, 400, TransientError),
        (613, None, 400, TransientError),
        (80001, None, 400, TransientError),
        (1, None, 500, TransientError),
        (2, None, 503, TransientError),
        (100, None, 400, PermanentError),
        (0, None, 502, TransientError),
    ],
)
def test_codes_map_to_the_right_class(
    code: int, subcode: int | None, status: int, kind: type[Exception]
) -> None:
    """Tokens, permissions and bad requests are permanent; throttling and Meta's own
    failures transient."""
    error = client().translate(GraphError(status, code, subcode, f"message with {TOKEN}"))
    assert type(error) is kind
    assert TOKEN not in error.reason and f"code {code}" in error.reason


def test_duplicate_is_flagged() -> None:
    """506 Duplicate status message: permanent, marked duplicate for the pipeline."""
    error = client().translate(GraphError(400, 506, None, "Duplicate status message"))
    assert isinstance(error, PermanentError) and error.duplicate


def test_is_transient_flag_is_honoured() -> None:
    """An unknown code Graph itself marks is_transient is retried."""
    error = client().translate(GraphError(400, 9999, None, "try again", transient=True))
    assert isinstance(error, TransientError)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        (buc(7), 420.0),
        (buc(0), 3600.0),
        (buc("soon"), 3600.0),
        ({"X-Business-Use-Case-Usage": "{not json"}, 3600.0),
        ({"X-Business-Use-Case-Usage": json.dumps({"1": "x"})}, 3600.0),
        ({}, 3600.0),
    ],
)
def test_retry_after_from_usage_header_survives_garbage(
    headers: dict[str, str], seconds: float
) -> None:
    """estimated_time_to_regain_access in minutes; anything unreadable falls back to an hour."""
    error = client().translate(GraphError(400, 32, None, "Page request limit", headers=headers))
    assert isinstance(error, TransientError) and error.retry_after == seconds


def test_busiest_usage_reads_both_headers() -> None:
    """The highest percentage of X-App-Usage and X-Business-Use-Case-Usage."""
    usage = {
        "X-App-Usage": {"call_count": 12, "total_time": 40},
        "X-Business-Use-Case-Usage": {"1": [{"call_count": 85, "total_cputime": 3}]},
    }
    assert busiest_usage(usage) == 85
    assert busiest_usage({"X-App-Usage": "bad"}) == 0


@pytest.mark.parametrize(
    ("subcode", "message"),
    [
        (33, "Unsupported post request. Object with ID '104_9' does not exist"),
        (None, "(#100) Object with ID '104_9' does not exist, cannot be loaded"),
    ],
)
def test_a_published_post_graph_no_longer_has_is_gone(subcode: int | None, message: str) -> None:
    """Code 100 'does not exist' on a call about a published post is PostGone; the same answer
    to a call about no post (a new post to a wrong Page) stays a plain refusal."""
    error = GraphError(400, 100, subcode, message)
    gone = client().translate(error, post="104_9")
    assert isinstance(gone, PostGone) and "104_9 is no longer there" in gone.reason
    plain = client().translate(error)
    assert isinstance(plain, PermanentError) and not isinstance(plain, PostGone)


def test_an_invalid_parameter_on_a_published_post_is_not_gone() -> None:
    """Code 100 for a bad parameter (a too long message) is a refusal, not a gone post."""
    error = GraphError(400, 100, None, "(#100) The message is longer than 63206 characters")
    refused = client().translate(error, post="104_9")
    assert isinstance(refused, PermanentError) and not isinstance(refused, PostGone)
