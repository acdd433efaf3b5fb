"""Webhook updates and deletes through the real listener on 127.0.0.1, into a real pipeline and
ledger (SQLite and PostgreSQL): an ``update`` is a revision from the webhook, a ``delete`` a
takedown of every post, and a wrong ``action`` or an unknown article a readable refusal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from bot.compose.length import TELEGRAM_MESSAGE, X_POST
from bot.compose.render import Renderer
from bot.config import WebhookSourceConfig, load_config
from bot.ledger import Ledger
from bot.pipeline import Pipeline
from bot.sources.webhook import WebhookReceiver
from tests.integration.test_revisions import EditableChannel
from tests.integration.test_webhook import (
    ARTICLE,
    NOW,
    PIPELINE_CONFIG,
    REPO,
    SECRET,
    Push,
    body_of,
    start,
)

# Published now: the source's max_age would skip the 2025 article before it is posted.
FRESH = {**ARTICLE, "published": datetime.now(UTC).isoformat(timespec="seconds")}


@pytest.fixture
async def wired(tmp_path: Path, database_url: str) -> AsyncIterator[tuple[Push, Pipeline]]:
    """A signing client, and the pipeline behind the listener's webhook source ``cms``."""
    text = PIPELINE_CONFIG.format(templates=REPO / "templates")
    path = tmp_path / "newsbot.yaml"
    path.write_text(text.replace("sqlite:///ledger.db", database_url), encoding="utf-8")
    settings = load_config(path, environ={"CMS_SECRET": SECRET})
    ledger = Ledger.open(settings.database)
    channels = {
        "telegram": EditableChannel("telegram", TELEGRAM_MESSAGE),
        "x": EditableChannel("x", X_POST),
    }
    pipeline = Pipeline(
        settings,
        ledger,
        {},
        dict(channels),
        Renderer(settings.templates, settings.tz),
        holder="t:1",
    )

    async def accept(name: str, articles: object) -> str:
        await pipeline.accept(name, articles)  # type: ignore[arg-type]
        return ARTICLE["id"]  # type: ignore[return-value]

    async def withdraw(name: str, key: str, reason: str | None) -> bool:
        return await pipeline.withdraw(name, key, reason=reason) is not None

    source = settings.sources["cms"]
    assert isinstance(source, WebhookSourceConfig)
    receiver = WebhookReceiver(source, accept, clock=lambda: NOW, withdraw=withdraw)
    listener, _ = await start(receiver)
    try:
        async with aiohttp.ClientSession() as http:
            yield Push(listener, http), pipeline
    finally:
        await listener.stop()
        ledger.close()


async def test_update_then_delete_through_the_listener(wired: tuple[Push, Pipeline]) -> None:
    """A posted article pushed again with ``update`` and a new title gets an edit per post
    (origin webhook); a ``delete`` then queues a delete per post and supersedes the edits."""
    client, pipeline = wired
    assert (await client.send(body_of(FRESH)))[0] == 202
    await pipeline.deliver_due()
    corrected = {
        **FRESH,
        "action": "update",
        "title": "高雄與格丁尼亞再升級！更正：簽署 2 份備忘錄",
    }
    assert (await client.send(body_of(corrected)))[0] == 202
    stored = pipeline.ledger.find_articles("20051")[0]
    assert stored.article.title == "高雄與格丁尼亞再升級！更正：簽署 2 份備忘錄"
    [update] = pipeline.ledger.history(stored.id)
    assert (update.origin, update.changes) == ("webhook", ("title",))
    assert [(a.action, a.state) for a in update.actions] == [("edit", "queued")] * 2
    delete = {"action": "delete", "id": "20051", "reason": "當事人要求撤下"}
    status, answer = await client.send(body_of(delete))
    assert (status, answer) == (202, {"key": "20051", "action": "delete"})
    update, takedown = pipeline.ledger.history(stored.id)
    assert [a.state for a in update.actions] == ["superseded"] * 2
    assert (takedown.kind, takedown.origin, takedown.reason) == (
        "delete",
        "webhook",
        "當事人要求撤下",
    )
    assert [(a.action, a.state) for a in takedown.actions] == [("delete", "queued")] * 2
    assert pipeline.ledger.find_articles("20051")[0].retracted_at is not None


async def test_a_delete_by_url_of_a_queued_article_stops_its_posts(
    wired: tuple[Push, Pipeline],
) -> None:
    """A delete naming only the URL (tracking parameters and all) finds the article; its posts
    not yet sent are skipped as retracted."""
    client, pipeline = wired
    assert (await client.send(body_of(FRESH)))[0] == 202
    status, _ = await client.send(body_of({"action": "delete", "url": ARTICLE["url"]}))
    assert status == 202
    await pipeline.deliver_due()
    deliveries = pipeline.ledger.article_deliveries(pipeline.ledger.find_articles("20051")[0].id)
    assert {str(d.state) for d in deliveries} == {"skipped"}
    assert all(
        (d.reason or "").startswith("retracted: withdrawn by source cms") for d in deliveries
    )


@pytest.mark.parametrize(
    ("document", "status", "message"),
    [
        ({"action": "publish", **ARTICLE}, 400, 'action must be "create", "update" or "delete"'),
        ({"action": 3, **ARTICLE}, 400, "got 3"),
        ({"action": "delete"}, 400, "a delete needs the article's id or url"),
        ({"action": "delete", "id": "99999"}, 404, "no article '99999' of source 'cms'"),
    ],
    ids=["unknown-action", "not-a-string", "delete-without-id", "unknown-article"],
)
async def test_bad_actions_are_refused_readably(
    wired: tuple[Push, Pipeline], document: dict[str, object], status: int, message: str
) -> None:
    """An unknown action, a delete naming nothing, or one of an unknown article: one message."""
    client, _ = wired
    got, answer = await client.send(body_of(document))
    assert got == status and message in str(answer["error"])
