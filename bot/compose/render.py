"""Posts rendered from the editors' templates and fitted to the channel's limit.

Templates run in Jinja2's immutable sandbox with StrictUndefined: feed text is data and can
never run code, and a typo in a template is an error rather than a silently empty post.
``*.html.j2`` templates (Telegram) autoescape; every other template is plain text.

Fitting (:meth:`Renderer.render`): only the excerpt, and once it is empty the title, is ever
shortened; the link never is. Rather than render-and-measure every candidate cut, the template
is rendered once with private-use placeholders for the excerpt and title, which tells the fixed
cost of everything else and how often each appears; the excerpt's budget follows, it is cut
once, and one real measure verifies the result (stepping down a little if the text around the
cut changed the count, e.g. a URL or emoji merging across the seam).
"""

from __future__ import annotations

import functools
import math
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
import regex
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from bot.compose.excerpt import html_to_text, shorten
from bot.compose.length import LengthRule, prefix_weights
from bot.errors import PermanentError, TemplateError
from bot.model import Article, Post

# Private-use code points: never in feed text, untouched by escaping, one code point each.
_EXCERPT_MARK = "\ue000"
_TITLE_MARK = "\ue001"
_ELLIPSIS = "…"
# How many times the cut is stepped down when the verifying measure disagrees.
_MAX_STEPS = 4

_NOT_IN_HASHTAG = regex.compile(r"[^\p{L}\p{N}\p{M}_]+")
_ONLY_DIGITS = regex.compile(r"[\p{N}_]+")


def hashtags(categories: Iterable[str] | str | None) -> str:
    """Categories as ``#tags`` joined by spaces, safe for X and Telegram.

    A hashtag ends at the first punctuation mark or space, so ``國際 交流`` or ``格但斯克・索波特``
    would be cut short: such runs become ``_``. A tag of digits alone is not a hashtag on X and
    is dropped, as are empty and repeated tags.
    """
    if categories is None:
        return ""
    if isinstance(categories, str):
        categories = [categories]
    seen: dict[str, None] = {}
    for category in categories:
        tag = _NOT_IN_HASHTAG.sub("_", str(category)).strip("_")
        if tag and not _ONLY_DIGITS.fullmatch(tag):
            seen.setdefault(tag, None)
    return " ".join(f"#{tag}" for tag in seen)


@functools.lru_cache(maxsize=512)
def _summary_text(summary_html: str) -> str:
    return html_to_text(summary_html)


class TemplateArticle:
    """What a template sees as ``article``: plain values, the summary as plain text."""

    __slots__ = (
        "_summary_html",
        "author",
        "categories",
        "excerpt",
        "image",
        "key",
        "published",
        "source",
        "title",
        "url",
    )

    def __init__(self, article: Article, *, title: str, excerpt: str, source: str) -> None:
        self.key = article.key
        self.title = title
        self.url = article.url
        self.excerpt = excerpt
        self.published = article.published
        self.author = article.author or ""
        self.categories = list(article.categories)
        self.image = article.image
        self.source = source
        self._summary_html = article.summary_html

    @property
    def summary(self) -> str:
        """The article's summary as plain text; computed only when a template asks for it."""
        return _summary_text(self._summary_html)


@dataclass(frozen=True, slots=True)
class _Job:
    """One post being fitted: everything but the title and excerpt is fixed."""

    name: str
    template: jinja2.Template
    article: Article
    source: str
    channel: str
    link: str

    def context(self, title: str, excerpt: str) -> dict[str, Any]:
        view = TemplateArticle(self.article, title=title, excerpt=excerpt, source=self.source)
        return {"article": view, "link": self.link, "channel": self.channel}


class Renderer:
    """Compiles the templates of one folder and renders posts fitted to a length rule."""

    def __init__(self, templates_dir: Path, timezone: ZoneInfo) -> None:
        self.templates_dir = Path(templates_dir)
        self.timezone = timezone
        self._env = self._environment()

    def _environment(self) -> ImmutableSandboxedEnvironment:
        env = ImmutableSandboxedEnvironment(
            loader=jinja2.FileSystemLoader(self.templates_dir),
            undefined=jinja2.StrictUndefined,
            autoescape=_autoescape,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            # The daemon decides when files changed and calls reload(); no stat per render.
            auto_reload=False,
        )
        env.filters["hashtags"] = hashtags
        env.filters["datetime"] = self._datetime
        return env

    def _datetime(self, value: datetime | None, format: str = "%Y-%m-%d %H:%M") -> str:
        """``value`` in the configured timezone; nothing for an article without a date."""
        if value is None:
            return ""
        if value.tzinfo is None:
            # Article refuses naive datetimes; one from elsewhere is taken to be UTC.
            value = value.replace(tzinfo=ZoneInfo("UTC"))
        return value.astimezone(self.timezone).strftime(format)

    def reload(self) -> None:
        """Forget every compiled template; the next use reads the files again."""
        self._env = self._environment()

    def _path(self, name: str) -> str:
        return str(self.templates_dir / name)

    def _template(self, name: str) -> jinja2.Template:
        try:
            return self._env.get_template(name)
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(
                f"template {name!r} does not exist in {self.templates_dir}", where=self._path(name)
            ) from exc
        except jinja2.TemplateSyntaxError as exc:
            where = f"{exc.filename or self._path(name)}:{exc.lineno}"
            raise TemplateError(f"template syntax error: {exc.message}", where=where) from exc

    def check(self, name: str) -> None:
        """Compile ``name``; a missing template or a syntax error raises TemplateError."""
        self._template(name)

    def _run(self, job: _Job, title: str, excerpt: str) -> str:
        try:
            return job.template.render(job.context(title, excerpt)).strip()
        except SecurityError as exc:
            raise TemplateError(
                f"{exc} This is not allowed in a template.", where=self._where(job, exc)
            ) from exc
        except jinja2.TemplateSyntaxError as exc:
            # An {% include %} of a broken template fails only when it runs.
            where = f"{exc.filename or self._path(job.name)}:{exc.lineno}"
            raise TemplateError(f"template syntax error: {exc.message}", where=where) from exc
        except jinja2.TemplateError as exc:
            raise TemplateError(f"cannot render: {exc}", where=self._where(job, exc)) from exc
        except Exception as exc:  # a filter or method failing inside the template
            raise TemplateError(
                f"cannot render: {type(exc).__name__}: {exc}", where=self._where(job, exc)
            ) from exc

    def _where(self, job: _Job, exc: BaseException) -> str:
        """``file:line`` of the innermost template frame in the traceback (Jinja rewrites its
        frames so that they carry the template's file name and line)."""
        filename = job.template.filename or self._path(job.name)
        where = filename
        tb: types.TracebackType | None = exc.__traceback__
        template_files = {filename}
        while tb is not None:
            frame_file = tb.tb_frame.f_code.co_filename
            if frame_file in template_files or frame_file.endswith(".j2"):
                where = f"{frame_file}:{tb.tb_lineno}"
            tb = tb.tb_next
        return where

    def render(
        self,
        name: str,
        *,
        article: Article,
        excerpt: str,
        source: str,
        channel: str,
        link: str,
        rule: LengthRule,
    ) -> Post:
        """The post for ``article`` on ``channel``, within ``rule.limit``.

        Raises TemplateError when the template is broken and PermanentError when even an empty
        excerpt and a shortened title do not fit.
        """
        job = _Job(name, self._template(name), article, source, channel, link)
        text, length = _Fitter(job, rule, self._run).fit(article.title, excerpt)
        return Post(
            channel=channel,
            text=text,
            length=length,
            limit=rule.limit,
            link=link,
            image=article.image,
            article_key=article.key,
            source=source,
        )


def _autoescape(name: str | None) -> bool:
    return name is not None and name.endswith(".html.j2")


class _Fitter:
    """Finds the longest excerpt (then title) with which one post fits its rule."""

    def __init__(self, job: _Job, rule: LengthRule, run: Callable[[_Job, str, str], str]) -> None:
        self.job = job
        self.rule = rule
        self.run = run
        self.measures = 0
        self.mark_weight = prefix_weights(_EXCERPT_MARK, rule.platform)[-1]
        self.ellipsis_weight = prefix_weights(_ELLIPSIS, rule.platform)[-1]

    def measure(self, text: str) -> int:
        self.measures += 1
        return self.rule.measure(text)

    def fit(self, title: str, excerpt: str) -> tuple[str, int]:
        limit = self.rule.limit
        title_weight = prefix_weights(title, self.rule.platform)[-1]
        excerpt_w = prefix_weights(excerpt, self.rule.platform)

        # Learn the cost of everything but excerpt and title, and how often each appears.
        probe = self.run(self.job, _TITLE_MARK, _EXCERPT_MARK)
        n_excerpt, n_title = probe.count(_EXCERPT_MARK), probe.count(_TITLE_MARK)
        fixed = self.measure(probe) - (n_excerpt + n_title) * self.mark_weight
        predicted = fixed + n_excerpt * excerpt_w[-1] + n_title * title_weight
        if predicted <= limit or (n_excerpt == 0 and excerpt):
            # Fits as is, or the template transforms the excerpt and the probe cannot tell.
            text = self.run(self.job, title, excerpt)
            length = self.measure(text)
            if length <= limit:
                return text, length

        if excerpt:
            if n_excerpt:
                budget = (limit - fixed - n_title * title_weight) // n_excerpt
                found = self._step_down(excerpt, excerpt_w, budget, lambda cut: (title, cut))
            else:
                found = self._search(excerpt, excerpt_w, lambda cut: (title, cut))
            if found is not None:
                return found

        # Even without an excerpt the post is too long: the title is all that is left to cut.
        probe = self.run(self.job, _TITLE_MARK, "")
        n_title = probe.count(_TITLE_MARK)
        fixed = self.measure(probe) - n_title * self.mark_weight
        title_w = prefix_weights(title, self.rule.platform)
        if n_title:
            found = self._step_down(title, title_w, (limit - fixed) // n_title, lambda c: (c, ""))
        else:
            found = self._search(title, title_w, lambda cut: (cut, ""))
        if found is not None:
            return found
        text = self.run(self.job, "", "")
        raise PermanentError(
            f"the post from template {self.job.name} is {self.measure(text)} long, over the "
            f"limit of {limit}, even with the excerpt and title shortened"
        )

    def _try(
        self, text: str, weights: list[int], budget: int, place: Callable[[str], tuple[str, str]]
    ) -> tuple[str, str, int]:
        cut = shorten(text, budget, weights, _ELLIPSIS, ellipsis_weight=self.ellipsis_weight)
        rendered = self.run(self.job, *place(cut))
        return cut, rendered, self.measure(rendered)

    def _step_down(
        self, text: str, weights: list[int], budget: int, place: Callable[[str], tuple[str, str]]
    ) -> tuple[str, int] | None:
        """Cut to ``budget``; if the real measure disagrees, lower the budget by the overshoot."""
        limit = self.rule.limit
        for _ in range(_MAX_STEPS):
            if budget <= 0:
                return None
            cut, rendered, length = self._try(text, weights, budget, place)
            if length <= limit:
                return rendered, length
            if not cut:
                return None
            kept = prefix_weights(cut, self.rule.platform)[-1]
            budget = min(budget, kept) - max(1, math.ceil(length - limit))
        return None

    def _search(
        self, text: str, weights: list[int], place: Callable[[str], tuple[str, str]]
    ) -> tuple[str, int] | None:
        """Binary search on the budget with real measures, for templates that transform the
        text so that the placeholder cannot be seen (``|upper``, ``|truncate``...)."""
        limit = self.rule.limit
        low, high = 1, weights[-1]
        best: tuple[str, int] | None = None
        while low <= high:
            mid = (low + high) // 2
            cut, rendered, length = self._try(text, weights, mid, place)
            if length <= limit and cut:
                best = (rendered, length)
                low = mid + 1
            else:
                high = mid - 1
        return best
