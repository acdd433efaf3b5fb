"""The daemon's HTTP listener on 127.0.0.1: health, metrics, push routing and the body cap."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import ClassVar

import aiohttp
import pytest

from bot.config import HealthConfig
from bot.errors import LedgerError
from bot.listener import Listener
from bot.metrics import Metrics
from bot.sources.push import PushReceiver, PushRequest, PushResponse


def loopback_any_port() -> HealthConfig:
    # Port 0 (the OS picks) is for tests: the config's validator asks for a real port.
    return HealthConfig.model_construct(listen="127.0.0.1:0")


class Health:
    def __init__(self) -> None:
        self.answer: tuple[bool, str] = (True, "ok")
        self.fail = False

    async def __call__(self) -> tuple[bool, str]:
        if self.fail:
            raise RuntimeError("boom")
        return self.answer


class Echo(PushReceiver):
    """Answers 202 with the size of what it was sent."""

    prefix: ClassVar[str] = "hooks"

    def __init__(self, name: str, *, max_body: int = 1024 * 1024) -> None:
        super().__init__(name, max_body=max_body)
        self.requests: list[PushRequest] = []

    async def handle(self, request: PushRequest) -> PushResponse:
        self.requests.append(request)
        return PushResponse.json(202, {"bytes": len(request.body)}, outcome="accepted")


@pytest.fixture
def health() -> Health:
    return Health()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def echo() -> Echo:
    return Echo("cms")


@pytest.fixture
async def listener(health: Health, metrics: Metrics, echo: Echo) -> AsyncIterator[Listener]:
    async with Listener(
        loopback_any_port(), health=health, metrics=metrics, receivers={"cms": echo}
    ) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_healthz_is_200_ok_when_healthy(
    listener: Listener, http: aiohttp.ClientSession
) -> None:
    """GET /healthz answers 200 "ok" when the health check says so."""
    async with http.get(listener.url + "/healthz") as response:
        assert response.status == 200
        assert (await response.text()).strip() == "ok"


async def test_healthz_is_503_with_the_reason_when_unhealthy(
    listener: Listener, health: Health, http: aiohttp.ClientSession
) -> None:
    """GET /healthz answers 503 with the health check's reason as text."""
    health.answer = (False, "the ledger does not answer: database is locked")
    async with http.get(listener.url + "/healthz") as response:
        assert response.status == 503
        assert "the ledger does not answer" in await response.text()


async def test_healthz_is_503_when_the_check_itself_fails(
    listener: Listener, health: Health, http: aiohttp.ClientSession
) -> None:
    """A health check that raises makes /healthz 503, not a 500 or a dead listener."""
    health.fail = True
    async with http.get(listener.url + "/healthz") as response:
        assert response.status == 503
        assert "health check failed" in await response.text()


async def test_metrics_serves_prometheus_text_with_the_newsbot_names(
    listener: Listener, metrics: Metrics, http: aiohttp.ClientSession
) -> None:
    """GET /metrics serves the text exposition with the daemon's metric names and values."""
    metrics.delivered("telegram", "sent", delay_seconds=1.5)
    metrics.polled("newsvision", ok=True)
    metrics.set_queue_depth({"telegram": 4})
    async with http.get(listener.url + "/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    assert 'newsbot_posts_total{channel="telegram",state="sent"} 1.0' in text
    assert "newsbot_publish_to_post_seconds_bucket" in text
    assert 'newsbot_source_polls_total{result="ok",source="newsvision"} 1.0' in text
    assert 'newsbot_queue_depth{channel="telegram"} 4.0' in text


async def test_push_reaches_the_receiver_and_is_counted(
    listener: Listener, echo: Echo, metrics: Metrics, http: aiohttp.ClientSession
) -> None:
    """POST /hooks/<source> goes to that source's receiver, with headers; the push is counted."""
    async with http.post(
        listener.url + "/hooks/cms", data=b'{"url": "x"}', headers={"X-Test": "1"}
    ) as response:
        assert response.status == 202
        assert await response.json() == {"bytes": 12}
    assert echo.requests[0].header("x-test") == "1"
    pushes = metrics.registry.get_sample_value(
        "newsbot_push_requests_total", {"source": "cms", "result": "accepted"}
    )
    assert pushes == 1


async def test_unknown_source_is_404_with_a_clear_message(
    listener: Listener, echo: Echo, http: aiohttp.ClientSession
) -> None:
    """A push to a source that is not configured gets 404 naming it; no receiver is called."""
    async with http.post(listener.url + "/hooks/nosuch", data=b"{}") as response:
        assert response.status == 404
        assert "no webhook source named 'nosuch'" in (await response.json())["error"]
    async with http.get(listener.url + "/websub/cms") as response:
        # cms is a webhook, not a WebSub source: the WebSub path does not reach it.
        assert response.status == 404
    assert echo.requests == []


async def test_wrong_method_is_405(listener: Listener, http: aiohttp.ClientSession) -> None:
    """A GET to a webhook (which takes POST only) is 405 with an Allow header."""
    async with http.get(listener.url + "/hooks/cms") as response:
        assert response.status == 405
        assert response.headers["Allow"] == "POST"


async def test_body_over_the_cap_is_413_and_not_handed_on(
    listener: Listener, echo: Echo, metrics: Metrics, http: aiohttp.ClientSession
) -> None:
    """A push larger than the receiver's cap (1 MiB) is refused with 413, declared or chunked."""
    big = b"x" * (1024 * 1024 + 1)
    async with http.post(listener.url + "/hooks/cms", data=big) as response:
        assert response.status == 413

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(17):
            yield b"y" * 65536

    async with http.post(listener.url + "/hooks/cms", data=chunks()) as response:
        assert response.status == 413
    assert echo.requests == []
    rejected = metrics.registry.get_sample_value(
        "newsbot_push_requests_total", {"source": "cms", "result": "rejected"}
    )
    assert rejected == 2


async def test_body_at_the_cap_is_accepted(
    listener: Listener, echo: Echo, http: aiohttp.ClientSession
) -> None:
    """A push of exactly the cap is read whole."""
    async with http.post(listener.url + "/hooks/cms", data=b"z" * (1024 * 1024)) as response:
        assert response.status == 202
        assert await response.json() == {"bytes": 1024 * 1024}


async def test_stop_releases_the_port(health: Health, metrics: Metrics) -> None:
    """After stop() nothing answers at the old address."""
    listener = Listener(loopback_any_port(), health=health, metrics=metrics)
    await listener.start()
    url = listener.url
    await listener.stop()
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(url + "/healthz")


class LedgerGone(Echo):
    """A receiver whose ledger refuses to record (replaced under the daemon, a full disk)."""

    async def handle(self, request: PushRequest) -> PushResponse:
        raise LedgerError("the ledger file was deleted under the running newsbot")


async def test_a_push_the_ledger_cannot_record_is_503_try_again(
    health: Health, metrics: Metrics, http: aiohttp.ClientSession
) -> None:
    """A push that cannot be recorded answers 503 (send it again later), not a 500."""
    async with (
        Listener(
            loopback_any_port(),
            health=health,
            metrics=metrics,
            receivers={"cms": LedgerGone("cms")},
        ) as running,
        http.post(running.url + "/hooks/cms", data=b'{"url": "x"}') as response,
    ):
        assert response.status == 503
        assert "try again" in (await response.json())["error"]
