"""Lengths as each platform counts them. (Skeleton: the compose work fills this in.)"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


def x_weighted_length(text: str) -> int:
    """X's weighted length (twitter-text v3)."""
    raise NotImplementedError


def telegram_length(html: str) -> int:
    """Code points of the text once Telegram's HTML is parsed."""
    raise NotImplementedError


@dataclass(frozen=True, slots=True)
class LengthRule:
    """How one kind of post is measured, and its limit."""

    platform: Literal["telegram", "x"]
    limit: int

    def measure(self, text: str) -> int:
        return telegram_length(text) if self.platform == "telegram" else x_weighted_length(text)


TELEGRAM_MESSAGE = LengthRule("telegram", 4096)
TELEGRAM_CAPTION = LengthRule("telegram", 1024)
X_POST = LengthRule("x", 280)
