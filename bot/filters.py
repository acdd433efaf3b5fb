"""Which articles a source posts: its include/exclude rules by category, keyword or regular
expression. A pattern runs with a time bound, so a pathological expression cannot hang the
daemon; an expression that times out counts as no match and is logged."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import regex

from bot.compose.excerpt import html_to_text
from bot.config import FilterConfig
from bot.model import Article

log = logging.getLogger("newsbot.filters")

MATCH_TIMEOUT = 0.05  # seconds per pattern per article


@dataclass(frozen=True, slots=True)
class _Rule:
    label: str
    pattern: regex.Pattern[str] | None
    word: str

    def matches(self, text: str) -> bool:
        if self.pattern is None:
            return self.word.casefold() in text
        try:
            return self.pattern.search(text, timeout=MATCH_TIMEOUT) is not None
        except TimeoutError:
            log.warning("filter %s took too long and was treated as no match", self.label)
            return False


def _rules(words: tuple[str, ...]) -> tuple[_Rule, ...]:
    rules = []
    for word in words:
        if word.startswith("re:"):
            compiled = regex.compile(word[3:], regex.IGNORECASE | regex.V1)
            rules.append(_Rule(repr(word), compiled, word))
        else:
            rules.append(_Rule(repr(word), None, word))
    return tuple(rules)


class ArticleFilter:
    """Compiled once per config; ``reason(article)`` is ``None`` when the article passes."""

    def __init__(self, config: FilterConfig) -> None:
        self.config = config
        self._include = _rules(config.include)
        self._exclude = _rules(config.exclude)
        self._include_categories = {c.casefold() for c in config.include_categories}
        self._exclude_categories = {c.casefold() for c in config.exclude_categories}

    @property
    def active(self) -> bool:
        return bool(
            self._include or self._exclude or self._include_categories or self._exclude_categories
        )

    def reason(self, article: Article) -> str | None:
        if not self.active:
            return None
        categories = {c.casefold() for c in article.categories}
        if self._exclude_categories & categories:
            hit = sorted(self._exclude_categories & categories)[0]
            return f"filtered: category {hit!r} is excluded"
        if self._include_categories and not self._include_categories & categories:
            wanted = ", ".join(self.config.include_categories)
            return f"filtered: not in the included categories ({wanted})"
        text = f"{article.title}\n{html_to_text(article.summary_html)}".casefold()
        for rule in self._exclude:
            if rule.matches(text):
                return f"filtered: matches exclude rule {rule.label}"
        if self._include and not any(rule.matches(text) for rule in self._include):
            return "filtered: matches none of the include rules"
        return None
