"""A channel's correction and takedown policies are checked against what its platform can do,
and a correction template against the sample article, naming the file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.compose.length import X_POST
from bot.compose.render import Renderer
from bot.config import load_config
from bot.errors import ConfigError
from bot.model import Correction, Takedown
from bot.testing.memory import MemoryChannel
from bot.wiring import check_policies

REPO = Path(__file__).resolve().parents[2]

CONFIG = """\
timezone: Asia/Taipei
templates: {templates}
sources:
  newsvision: {{kind: feed, url: "https://news.example.tw/rss.xml"}}
channels:
  x:
    kind: console
    template: {template}
{extra}
"""


class ReplyOnly(MemoryChannel):
    """A platform that can reply to a post but neither edit nor delete it."""

    can_edit = False
    can_reply = True
    can_delete = False
    default_corrections = Correction.REPLY
    default_takedowns = Takedown.OFF


def check(tmp_path: Path, extra: str, template: str = "x.txt.j2") -> None:
    path = tmp_path / "newsbot.yaml"
    text = CONFIG.format(templates=REPO / "templates", extra=extra, template=template)
    path.write_text(text, encoding="utf-8")
    config = load_config(path, environ={})
    check_policies(config, Renderer(config.templates, config.tz), {"x": ReplyOnly("x", X_POST)})


@pytest.mark.parametrize(
    ("extra", "line", "key", "words"),
    [
        ("    corrections: edit", 9, "channels.x.corrections", "can edit a published post"),
        ("    takedowns: delete", 9, "channels.x.takedowns", "can delete a published post"),
        (
            "    corrections: reply\n    correction_template: nowhere.txt.j2",
            10,
            "channels.x.correction_template",
            "nowhere.txt.j2",
        ),
    ],
    ids=["edit", "delete", "missing-template"],
)
def test_a_policy_the_platform_cannot_follow_is_refused(
    tmp_path: Path, extra: str, line: int, key: str, words: str
) -> None:
    """corrections: edit where the platform cannot edit (and the like) is one ConfigError at the
    key that must change."""
    with pytest.raises(ConfigError) as caught:
        check(tmp_path, extra)
    assert caught.value.where == f"{tmp_path / 'newsbot.yaml'}:{line}"
    assert caught.value.key == key and words in caught.value.message


@pytest.mark.parametrize("template", ["x.txt.j2", "telegram.html.j2"])
def test_the_default_reply_renders_the_default_correction_template(
    tmp_path: Path, template: str
) -> None:
    """The platform's default (reply) passes with the default correction template of the
    post's format (plain text, Telegram HTML)."""
    check(tmp_path, "", template)


THREADS = """\
timezone: Asia/Taipei
templates: {templates}
sources:
  newsvision: {{kind: feed, url: "https://news.example.tw/rss.xml"}}
channels:
  threads:
    kind: threads
    access_token: th-not-a-real-token
    template: threads.txt.j2
    corrections: {corrections}
"""


def test_threads_refuses_delete_and_repost_saying_what_it_allows(tmp_path: Path) -> None:
    """Threads cannot repost a sent delivery (its never-twice note needs a delivery being
    sent): `corrections: delete_and_repost` is refused at load, naming the channel, the key
    and the corrections Threads allows; `reply` passes."""
    path = tmp_path / "newsbot.yaml"
    path.write_text(
        THREADS.format(templates=REPO / "templates", corrections="delete_and_repost"),
        encoding="utf-8",
    )
    config = load_config(path, environ={})
    with pytest.raises(ConfigError) as caught:
        check_policies(config, Renderer(config.templates, config.tz), {})
    assert caught.value.key == "channels.threads.corrections"
    assert caught.value.where == f"{path}:10"
    message = caught.value.message
    assert "channel 'threads' (threads) cannot" in message
    assert "it allows corrections: reply | off" in message
    path.write_text(
        THREADS.format(templates=REPO / "templates", corrections="reply"), encoding="utf-8"
    )
    config = load_config(path, environ={})
    check_policies(config, Renderer(config.templates, config.tz), {})
