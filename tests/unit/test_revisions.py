"""Revisions in, as pure rules: which changes of an article are a revision (the content digest
and the fields changed), and what each published post gets under its channel's policy."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from bot.model import Action, Article, Correction, DeliveryState, RevisionKind, Takedown
from bot.revisions import (
    DeliveryRow,
    Policies,
    changed_fields,
    content_digest,
    plan_actions,
    policy_refusal,
    source_revision,
)

ARTICLE = Article(
    key="nv-20051",
    url="https://news.example.tw/article/20051",
    title="高雄與格丁尼亞再升級！簽署經濟合作備忘錄",
    summary_html=(
        "<p>高雄市副市長羅達生率團，於波蘭時間9月14日簽署備忘錄。</p>\n"
        "<p>雙方將合作 3 項產業 🚢</p>"
    ),
    published=datetime(2025, 9, 16, 10, 0, tzinfo=UTC),
    author="王秉程",
    categories=("地方", "國際交流"),
    image="https://news.example.tw/img/20051.jpg",
)


@pytest.mark.parametrize(
    "change",
    [
        {"title": "  高雄與格丁尼亞再升級！簽署經濟合作備忘錄\n"},
        {
            "summary_html": "<p>\n  高雄市副市長羅達生率團，於波蘭時間9月14日簽署備忘錄。\n</p>"
            "<p>雙方將合作   3 項產業 🚢</p>"
        },
        {"categories": ("國際交流", "地方")},
        {"categories": ("國際交流", "地方", "地方")},
        {"published": datetime(2025, 9, 16, 12, 30, tzinfo=UTC)},
        {"author": " 王秉程 "},
    ],
    ids=["title-whitespace", "html-whitespace", "reordered", "repeated", "updated", "author"],
)
def test_cosmetic_changes_are_no_revision(change: dict[str, object]) -> None:
    """Whitespace, reordered categories and a new updated/published time leave the digest alone."""
    again = dataclasses.replace(ARTICLE, **change)  # type: ignore[arg-type]
    assert content_digest(again) == content_digest(ARTICLE)
    assert changed_fields(ARTICLE, again) == ()


def test_nfd_text_is_the_same_text() -> None:
    """Text in decomposed Unicode (é as e + ◌́) digests as its composed form."""
    composed = dataclasses.replace(ARTICLE, title="Café 高雄 résumé")
    decomposed = dataclasses.replace(ARTICLE, title="Cafe\u0301 高雄 re\u0301sume\u0301")
    assert content_digest(composed) == content_digest(decomposed)


@pytest.mark.parametrize(
    ("change", "fields"),
    [
        ({"title": "高雄與格丁尼亞再升級！簽署經濟與文化合作備忘錄"}, ("title",)),
        ({"summary_html": "<p>更正：於波蘭時間9月15日簽署備忘錄。</p>"}, ("summary",)),
        ({"image": "https://news.example.tw/img/20051-2.jpg"}, ("image",)),
        ({"image": None}, ("image",)),
        ({"url": "https://news.example.tw/article/20051-corrected"}, ("link",)),
        ({"categories": ("地方",)}, ("categories",)),
        (
            {"title": "高雄與格丁尼亞簽約", "summary_html": "<p>新內文</p>"},
            ("title", "summary"),
        ),
    ],
)
def test_content_changes_are_revisions(change: dict[str, object], fields: tuple[str, ...]) -> None:
    """A changed title, summary, image, link or categories changes the digest and is named."""
    again = dataclasses.replace(ARTICLE, **change)  # type: ignore[arg-type]
    assert content_digest(again) != content_digest(ARTICLE)
    assert changed_fields(ARTICLE, again) == fields


def test_title_change_under_an_editors_title_is_no_revision() -> None:
    """The editor's title wins: a new source title alone changes no post."""
    again = dataclasses.replace(ARTICLE, title="來源改了標題")
    kept = source_revision(
        1, before=ARTICLE, after=again, origin="feed", excerpt="", digest="d", title_override="編輯"
    )
    assert kept is None
    both = dataclasses.replace(again, summary_html="<p>新內文</p>")
    revision = source_revision(
        1, before=ARTICLE, after=both, origin="feed", excerpt="", digest="d", title_override="編輯"
    )
    assert revision is not None and revision.changes == ("summary",) and revision.title == "編輯"


POLICIES = {
    "telegram": Policies(Correction.EDIT, Takedown.DELETE),
    "x": Policies(Correction.REPLY, Takedown.DELETE),
    "threads": Policies(Correction.DELETE_AND_REPOST, Takedown.OFF),
    "console": Policies(Correction.OFF, Takedown.OFF),
}


def rows(text: str) -> list[DeliveryRow]:
    """``"telegram:sent x:queued"``: deliveries 1, 2... of those channels in those states."""
    pairs = [word.split(":") for word in text.split()]
    return [DeliveryRow(i + 1, c, DeliveryState(s)) for i, (c, s) in enumerate(pairs)]


def test_a_correction_acts_on_published_posts_per_policy() -> None:
    """Sent, sending and uncertain posts get their channel's action; queued and failed get none;
    a policy off is recorded skipped with its reason."""
    plan = plan_actions(
        RevisionKind.UPDATE,
        rows("telegram:sent x:uncertain threads:sending console:sent telegram:queued x:failed"),
        POLICIES,
    )
    got = [(a.delivery_id, a.action, a.queued) for a in plan.actions]
    assert got == [
        (1, Action.EDIT, True),
        (2, Action.REPLY, True),
        (3, Action.DELETE_AND_REPOST, True),
        (4, Action.EDIT, False),
    ]
    assert plan.actions[3].reason == "corrections are off for channel 'console'"
    assert plan.skip == ()


def test_a_takedown_deletes_posts_and_stops_queued_ones() -> None:
    """A takedown deletes what is published (or records why not) and skips what is queued."""
    plan = plan_actions(
        RevisionKind.DELETE,
        rows("telegram:sent threads:sent gone:sent x:queued"),
        POLICIES,
        reason="當事人要求撤下",
    )
    assert [(a.action, a.queued) for a in plan.actions] == [
        (Action.DELETE, True),
        (Action.DELETE, False),
        (Action.DELETE, False),
    ]
    assert plan.actions[1].reason == "takedowns are off for channel 'threads'"
    assert plan.actions[2].reason == "channel 'gone' is no longer in the config"
    assert plan.skip == (4,) and plan.skip_reason == "retracted: 當事人要求撤下"


def test_a_correction_of_a_retracted_article_acts_on_nothing() -> None:
    """Once withdrawn, an article's later updates are recorded but correct no post."""
    plan = plan_actions(RevisionKind.UPDATE, rows("telegram:sent"), POLICIES, retracted=True)
    assert [a.queued for a in plan.actions] == [False]
    assert "retracted" in (plan.actions[0].reason or "")


def test_policy_refusal_names_the_key() -> None:
    """A policy the platform cannot follow is refused at its key, with what is needed."""
    refused = policy_refusal(
        Policies(Correction.EDIT, Takedown.OFF), can_edit=False, can_reply=True, can_delete=True
    )
    assert refused is not None and refused[0] == "corrections" and "edit" in refused[1]
    refused = policy_refusal(
        Policies(Correction.REPLY, Takedown.DELETE),
        can_edit=False,
        can_reply=True,
        can_delete=False,
    )
    assert refused is not None and refused[0] == "takedowns"
    assert (
        policy_refusal(
            Policies(Correction.OFF, Takedown.OFF),
            can_edit=False,
            can_reply=False,
            can_delete=False,
        )
        is None
    )


def test_a_page_that_could_not_be_read_is_no_correction() -> None:
    """On an enriching source, an image or summary missing this time (the page failed) is not a
    revision; on a plain feed the same removal is one."""
    bare = dataclasses.replace(ARTICLE, image=None, summary_html="")
    common = {"origin": "sitemap", "excerpt": "", "digest": "d", "title_override": None}
    assert source_revision(1, before=ARTICLE, after=bare, enriched=True, **common) is None  # type: ignore[arg-type]
    plain = source_revision(1, before=ARTICLE, after=bare, **common)  # type: ignore[arg-type]
    assert plain is not None and plain.changes == ("summary", "image")
