"""Hostile pushes against the real ``newsbot run`` listener on 127.0.0.1: odd timestamps and
deeply nested bodies are refused with a 4xx (never a 500 or a traceback), and each accepted
push is counted once in ``newsbot_push_requests_total``."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.sources.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, signed_headers
from tests.integration.test_daemon import free_port

REPO = Path(__file__).resolve().parents[2]
SECRET = "cms-hostile-secret-0123456789"

CONFIG = """\
database: sqlite:///ledger.db
templates: {templates}
health:
  listen: 127.0.0.1:{port}
sources:
  cms:
    kind: webhook
    secret: ${{CMS_SECRET}}
channels:
  console:
    kind: console
    template: x.txt.j2
"""


class Running:
    def __init__(self, url: str, log: Path) -> None:
        self.url, self.log = url, log

    def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        request = urllib.request.Request(
            self.url + "/hooks/cms", data=body, headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def metric(self, result: str) -> float:
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as response:
            text = response.read().decode()
        for line in text.splitlines():
            if line.startswith("newsbot_push_requests_total{") and f'result="{result}"' in line:
                return float(line.rsplit(" ", 1)[1])
        return 0.0


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    folder = tmp_path_factory.mktemp("hostile-pushes")
    port = free_port()
    (folder / "newsbot.yaml").write_text(
        CONFIG.format(templates=REPO / "templates", port=port), encoding="utf-8"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSBOT_", "X_"))}
    env |= {"PYTHONPATH": str(REPO), "CMS_SECRET": SECRET}
    log = folder / "newsbot.log"
    with log.open("ab") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "--config", str(folder / "newsbot.yaml"), "run"],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=folder,
        )
    running = Running(f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 30
        while "newsbot running" not in log.read_text(errors="replace"):
            assert process.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, "the daemon did not start"
            time.sleep(0.1)
        yield running
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


ARTICLE = json.dumps(
    {"url": "https://news.example.tw/article/1", "title": "高雄港擴建 第一期完工"},
    ensure_ascii=False,
).encode()


@pytest.mark.parametrize(
    "stamp",
    ["١٧٠٠٠٠٠٠٠٠", "１７００００００００", "²", "9" * 5000],
    ids=["arabic", "wide", "sup", "long"],
)
def test_a_timestamp_in_other_digits_is_401_not_500(daemon: Running, stamp: str) -> None:
    """A timestamp int() would read (or choke on) but that is no ASCII Unix time: 401."""
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: stamp,
        # Signed as a sender would sign those bytes: the refusal must come before the check.
        SIGNATURE_HEADER: "sha256="
        + hmac.new(SECRET.encode(), stamp.encode() + b"." + ARTICLE, hashlib.sha256).hexdigest(),
    }
    status, body = daemon.post(
        ARTICLE, {k: v.encode().decode("latin-1") for k, v in headers.items()}
    )
    assert status == 401 and "Unix seconds" in body
    assert "Traceback" not in daemon.log.read_text(errors="replace")


def test_deeply_nested_json_is_400_not_500(daemon: Running) -> None:
    """A correctly signed body of 100,000 nested arrays: 400 saying why, no traceback."""
    body = b"[" * 100_000 + b"]" * 100_000
    status, answer = daemon.post(body, signed_headers(SECRET, body))
    assert status == 400 and "nested too deeply" in answer
    assert "Traceback" not in daemon.log.read_text(errors="replace")


def test_an_accepted_push_is_counted_once(daemon: Running) -> None:
    """One accepted push adds exactly one to newsbot_push_requests_total{result="accepted"}."""
    before = daemon.metric("accepted")
    status, _ = daemon.post(ARTICLE, signed_headers(SECRET, ARTICLE))
    assert status == 202
    assert daemon.metric("accepted") == before + 1
