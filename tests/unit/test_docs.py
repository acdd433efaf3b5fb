"""docs/architecture.md stays true to the code: every module and test it names exists."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_module_named_in_the_architecture_page_exists() -> None:
    """A module or test file renamed or removed without updating the page fails here."""
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`((?:bot|tests)/[\w/]+(?:\.py)?)", text))
    assert len(named) > 20
    missing = sorted(path for path in named if not (REPO / path).exists())
    assert missing == []


def test_every_function_named_with_its_module_exists() -> None:
    """`bot/x.py:name` references on the page name a definition in that module."""
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    for module, name in re.findall(r"`(bot/[\w/]+\.py):(\w+)", text):
        source = (REPO / module).read_text(encoding="utf-8")
        assert re.search(rf"^(?:async )?def {name}\b|^class {name}\b", source, re.M), (module, name)
