"""Running the real ``newsbot`` command, as an operator would."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    code: int
    out: str
    err: str


class Newsbot:
    """``newsbot --config <file> ...`` in a subprocess, with a controlled environment."""

    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.config = config
        self.env = env

    def __call__(self, *args: str, timeout: float = 60) -> Result:
        done = subprocess.run(
            [sys.executable, "-m", "bot", "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
            cwd=self.config.parent,
            check=False,
        )
        return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def clean_env() -> dict[str, str]:
    """The environment with no newsbot settings or secrets inherited from the shell, and no
    proxy: every server these tests talk to is on 127.0.0.1."""
    return environment()


def environment() -> dict[str, str]:
    """What :func:`clean_env` gives, for fixtures shared by a module's tests."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NEWSBOT_", "TELEGRAM_", "X_"))
        and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
    }
    env["PYTHONPATH"] = str(REPO)
    env["NO_PROXY"] = "127.0.0.1,localhost"
    return env


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    """A copy of the default templates an editor can change in a test."""
    return copy_templates(tmp_path)


def copy_templates(into: Path) -> Path:
    """``into``/templates, a copy of the default templates."""
    folder = into / "templates"
    folder.mkdir()
    for template in (REPO / "templates").iterdir():
        (folder / template.name).write_text(template.read_text(encoding="utf-8"), encoding="utf-8")
    return folder
