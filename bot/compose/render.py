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

When a template only ever prints the title and the excerpt as they are (``{{ article.title }}``,
at most tested for being empty, never filtered, joined, included or captured: see
:func:`_prints_plainly`), rendering it with the real texts gives exactly the placeholder render
with the placeholders replaced, so the fitter fills the placeholders in instead of running the
template again. Any other template is rendered for real every time.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
import re
import string
import time
import types
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import babel
import babel.dates
import jinja2
import markupsafe
import regex
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from bot.compose.excerpt import DEFAULT_SLACK, CutKind, cut, html_to_text
from bot.compose.length import LengthRule, Platform, prefix_weights, total_weight
from bot.errors import PermanentError, TemplateError
from bot.model import Article, Post

# Private-use code points: never in feed text, untouched by escaping, one code point each.
_EXCERPT_MARK = "\ue000"
_TITLE_MARK = "\ue001"
_ELLIPSIS = "…"
# Code points weighed past the limit when cutting (see _Fitter.fit).
_HEAD_MARGIN = 48
# How many times the cut is stepped down when the verifying measure disagrees.
_MAX_STEPS = 4

_NOT_IN_HASHTAG = regex.compile(r"[^\p{L}\p{N}\p{M}_]+")
_ONLY_DIGITS = regex.compile(r"[\p{N}_]+")


def hashtags(categories: Iterable[str] | str | None) -> str:
    """Categories as ``#tags`` joined by spaces, safe for X and Telegram.

    A hashtag ends at the first punctuation mark or space, so the words of a category are
    written together, as a Chinese reader writes a tag: ``國際 交流`` becomes ``#國際交流``,
    ``格但斯克・索波特`` ``#格但斯克索波特``, ``AI-城市`` ``#AI城市``. A tag of digits alone is
    not a hashtag on X and is dropped, as are empty and repeated tags.
    """
    if categories is None:
        return ""
    if isinstance(categories, str):
        categories = [categories]
    seen: dict[str, None] = {}
    for category in categories:
        tag = _NOT_IN_HASHTAG.sub("", str(category)).strip("_")
        if tag and not _ONLY_DIGITS.fullmatch(tag):
            seen.setdefault(tag, None)
    return " ".join(f"#{tag}" for tag in seen)


# A title that begins with its own bracketed label: 【影音】, 〔快訊〕, ［專題］, [直播].
_LABEL = regex.compile(
    r"\s*(?:【[^】]{1,12}】|〔[^〕]{1,12}〕|［[^］]{1,12}］|\[[^\]]{1,12}\]|〖[^〗]{1,12}〗)"
)


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
        "labelled",
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
        # Read from the article, not the title shown: the fitter's placeholder render must take
        # the same branch as the real one.
        self.labelled = bool(_LABEL.match(article.title))
        self._summary_html = article.summary_html

    @property
    def summary(self) -> str:
        """The article's summary as plain text; computed only when a template asks for it."""
        return _summary_text(self._summary_html)


class _SourceKeepingLoader(jinja2.FileSystemLoader):
    """A FileSystemLoader that remembers the source it last handed out for each name, so the
    template that was compiled is the one :func:`_prints_plainly` reads."""

    def __init__(self, searchpath: Path) -> None:
        super().__init__(searchpath)
        self.sources: dict[str, str] = {}

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        source, filename, uptodate = super().get_source(environment, template)
        self.sources[template] = source
        return source, filename, uptodate


# Nodes through which a printed title or excerpt still reaches the output unchanged; anything
# that captures, filters, includes or re-scopes output makes a template unsuitable.
_TRANSPARENT = (nodes.Template, nodes.Output, nodes.If, nodes.For)
_OPAQUE = (
    nodes.Extends,
    nodes.Include,
    nodes.Import,
    nodes.FromImport,
    nodes.Macro,
    nodes.CallBlock,
    nodes.FilterBlock,
    nodes.AssignBlock,
    nodes.Block,
    nodes.EvalContextModifier,
    nodes.With,
)
_FILLED = ("title", "excerpt")


def _prints_plainly(tree: nodes.Template) -> bool:
    """Whether ``article.title`` and ``article.excerpt`` are only ever printed as they are
    (``{{ article.excerpt }}``) or tested as an ``{% if %}`` condition, and ``article`` is used
    for nothing but attribute lookups. Then the output for any non-empty title and excerpt is
    the placeholder render with the placeholders replaced (escaped when autoescaping)."""
    if any(True for _ in tree.find_all(_OPAQUE)):
        return False
    stack: list[tuple[nodes.Node, list[nodes.Node]]] = [(tree, [])]
    while stack:
        node, ancestors = stack.pop()
        if isinstance(node, nodes.Name) and node.name == "article":
            parent = ancestors[-1] if ancestors else None
            if node.ctx != "load" or not (
                isinstance(parent, nodes.Getattr) and parent.node is node
            ):
                return False
        if (
            isinstance(node, nodes.Getattr)
            and node.attr in _FILLED
            and isinstance(node.node, nodes.Name)
            and node.node.name == "article"
        ):
            parent = ancestors[-1]
            printed = isinstance(parent, nodes.Output)
            tested = isinstance(parent, nodes.If) and parent.test is node
            if not (printed or tested):
                return False
            if not all(isinstance(a, _TRANSPARENT) for a in ancestors):
                return False
        for child in node.iter_child_nodes():
            stack.append((child, [*ancestors, node]))
    return True


@dataclass(frozen=True, slots=True)
class _Job:
    """One post being fitted: everything but the title and excerpt is fixed. ``fillable`` says
    the placeholder render may be filled in instead of rendering again (see the module doc)."""

    name: str
    template: jinja2.Template
    article: Article
    source: str
    channel: str
    link: str
    fillable: bool = False
    escape: bool = False

    def context(self, title: str, excerpt: str) -> dict[str, Any]:
        view = TemplateArticle(self.article, title=title, excerpt=excerpt, source=self.source)
        return {"article": view, "link": self.link, "channel": self.channel}


@dataclass(frozen=True, slots=True)
class ComposedPost:
    """A fitted post and how it was fitted: which boundary the excerpt was cut at (``none``
    when it fitted whole; the title's cut when even an empty excerpt did not fit) and how much
    of the channel's limit is left, in the channel's own measure."""

    post: Post
    cut: CutKind
    budget_left: int
    excerpt: str = ""  # the excerpt as posted (cut, with its ellipsis), "" when none was


_NAMED_STYLES = ("short", "medium", "long", "full")
_YEAR_FIELD = regex.compile(r"('[^']*')|y+")


class Renderer:
    """Compiles the templates of one folder and renders posts fitted to a length rule.

    ``locale`` (a CLDR name, ``zh_Hant_TW``) is what the ``datetime`` filter writes dates in;
    ``slack`` is the share of the excerpt's budget a sentence or clause end may give away (see
    :mod:`bot.compose.excerpt`)."""

    def __init__(
        self,
        templates_dir: Path,
        timezone: ZoneInfo,
        *,
        locale: str = "zh_Hant_TW",
        slack: float = DEFAULT_SLACK,
    ) -> None:
        self.templates_dir = Path(templates_dir)
        self.timezone = timezone
        self.locale = babel.Locale.parse(locale)
        self.slack = slack
        self._env = self._environment()
        # Babel reads a locale's data from disk on its first date (tens of ms of CPU, more on
        # a busy machine): done here, once, so the first post's render budget never pays it.
        self._datetime(datetime(2000, 1, 3, tzinfo=UTC), "full", roc=True)

    def _environment(self) -> ImmutableSandboxedEnvironment:
        self._loader = _SourceKeepingLoader(self.templates_dir)
        self._fillable: dict[str, bool] = {}
        env = _Sandbox(
            loader=self._loader,
            undefined=jinja2.StrictUndefined,
            autoescape=_autoescape,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            # The daemon decides when files changed and calls reload(); no stat per render.
            auto_reload=False,
        )
        _harden(env)
        env.filters["hashtags"] = hashtags
        env.filters["datetime"] = self._datetime
        return env

    def _datetime(
        self, value: datetime | None, format: str = "%Y-%m-%d %H:%M", roc: bool = False
    ) -> str:
        """``value`` in the configured timezone and locale; nothing for an article without a
        date. ``format`` is a named style (``short``, ``medium``, ``long``, ``full``: the
        locale's own date and time forms), a CLDR pattern (``y年M月d日 ah:mm``, ``EEE`` for
        週一) or, when it holds a ``%``, a strftime format as before. ``roc`` writes the year
        as the Republic of China's (``民國114年``) in a style or pattern."""
        if value is None:
            return ""
        if value.tzinfo is None:
            # Article refuses naive datetimes; one from elsewhere is taken to be UTC.
            value = value.replace(tzinfo=ZoneInfo("UTC"))
        local = value.astimezone(self.timezone)
        if "%" in format:
            return local.strftime(format)
        pattern = self._pattern(format)
        if roc:
            year = local.year - 1911
            shown = f"民國{year}" if year > 0 else f"民國前{1 - year}"
            pattern = _YEAR_FIELD.sub(lambda m: m.group(1) or f"'{shown}'", pattern)
        return babel.dates.format_datetime(local, pattern, tzinfo=self.timezone, locale=self.locale)

    def _pattern(self, format: str) -> str:
        """The CLDR pattern of a named style in the locale (date and time, the time without
        seconds: a teaser says 下午2:30, not 下午2:30:00), or ``format`` itself."""
        if format not in _NAMED_STYLES:
            return format
        date = self.locale.date_formats[format].pattern
        time = self.locale.time_formats["short"].pattern
        glue = str(self.locale.datetime_formats[format])
        return glue.replace("{1}", date).replace("{0}", time)

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

    def _is_fillable(self, name: str) -> bool:
        """Whether the fitter may fill in the placeholder render of ``name`` (cached until
        :meth:`reload`); any doubt, including a parse problem, means no."""
        known = self._fillable.get(name)
        if known is None:
            source = self._loader.sources.get(name)
            try:
                known = source is not None and _prints_plainly(self._env.parse(source))
            except jinja2.TemplateError:
                known = False
            self._fillable[name] = known
        return known

    def check(self, name: str) -> None:
        """Compile ``name``; a missing template or a syntax error raises TemplateError."""
        self._template(name)

    def _run(self, job: _Job, title: str, excerpt: str) -> str:
        try:
            return _bounded_render(job.template, job.context(title, excerpt)).strip()
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
        max_chars: int | None = None,
    ) -> Post:
        """The post for ``article`` on ``channel``, within ``rule.limit`` (:meth:`compose`)."""
        return self.compose(
            name,
            article=article,
            excerpt=excerpt,
            source=source,
            channel=channel,
            link=link,
            rule=rule,
            max_chars=max_chars,
        ).post

    def compose(
        self,
        name: str,
        *,
        article: Article,
        excerpt: str,
        source: str,
        channel: str,
        link: str,
        rule: LengthRule,
        max_chars: int | None = None,
    ) -> ComposedPost:
        """The post for ``article`` on ``channel`` from template ``name``, the excerpt cut to
        what ``rule`` leaves room for (in the rule's own measure) and to at most ``max_chars``
        code points (the editor's ``excerpt_length``), with how it was cut.

        Raises TemplateError when the template is broken and PermanentError when even an empty
        excerpt and a shortened title do not fit.
        """
        template = self._template(name)
        job = _Job(
            name,
            template,
            article,
            source,
            channel,
            link,
            fillable=self._is_fillable(name),
            escape=_autoescape(name),
        )
        token = _budget.set(_Budget(RENDER_SECONDS))
        try:
            fitter = _Fitter(job, rule, self._run, slack=self.slack, max_chars=max_chars)
            text, length = fitter.fit(article.title, excerpt)
        finally:
            _budget.reset(token)
        post = Post(
            channel=channel,
            text=text,
            length=length,
            limit=rule.limit,
            link=link,
            image=article.image,
            article_key=article.key,
            source=source,
            title=article.title,
            summary=excerpt,
        )
        return ComposedPost(post, fitter.kind, rule.limit - length, fitter.excerpt)


# -------------------------------------------------------------------------- sandbox hardening

# Jinja's default globals a teaser has no use for: lipsum generates text (lipsum(10**6) is a
# lot of it), cycler / joiner / namespace are stateful helpers that only widen what a template
# can reach. A template using one fails at `newsbot check` with "'lipsum' is undefined".
_REMOVED_GLOBALS = ("lipsum", "cycler", "joiner", "namespace")
# Jinja's sandbox allows range(100_000); a teaser loops over a few categories at most.
MAX_RANGE = 1000
# `*` and `**` would otherwise build a string, list or number of any size: "x" * 10**9,
# 9 ** (9 ** 9). Results beyond these are refused.
MAX_REPEAT = 10_000
MAX_POWER_BITS = 4096
# Attribute safety answers kept per environment (see _Sandbox.is_safe_attribute): templates
# read a few dozen names; the bound only matters for ``|attr`` with names from the data.
_SAFE_ANSWERS = 4096


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, also refusing: any attribute of a module or that is a module,
    oversized ``*`` repetitions and ``**`` powers (intercepted, so also never constant-folded
    at compile time), ``%`` / ``format`` widths beyond MAX_WIDTH, and any render running past
    its time budget (checked on every call, attribute, operator and loop step)."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._safe: dict[tuple[type, Any, str, bool], bool] = {}

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        # Every {% for %} iterates through _budgeted, so nested loops cannot outlast the budget.
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Filter(
                loop.iter, _BUDGET_FILTER, [], [], None, None, lineno=loop.lineno
            )
        return tree

    def call(
        __self,  # Jinja's own spelling, so no keyword argument of the call can collide
        __context: jinja2.runtime.Context,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        _on_budget()
        _check_padding(__obj, args)
        return super().call(__context, __obj, *args, **kwargs)

    def getattr(self, obj: Any, attribute: str) -> Any:
        _on_budget()
        return super().getattr(obj, attribute)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        _check_format_string(value.__self__)
        return wrapped

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        # Jinja answers from what the object is an instance of and the attribute's name
        # (is_internal_attribute, modifies_known_mutable: isinstance checks, some against slow
        # ABCs), and the module check looks at the value's type: one answer per key, asked for
        # every attribute every render reads (a fifth of a fitted X post's time), so kept.
        # ``__class__`` is in the key as isinstance consults it as well as the type.
        key = (type(obj), obj.__class__, attr, isinstance(value, types.ModuleType))
        known = self._safe.get(key)
        if known is None:
            known = not (key[3] or isinstance(obj, types.ModuleType)) and bool(
                super().is_safe_attribute(obj, attr, value)
            )
            if len(self._safe) < _SAFE_ANSWERS:
                self._safe[key] = known
        return known

    def call_binop(
        self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any
    ) -> Any:
        _on_budget()
        if operator == "**":
            _check_power(left, right)
        elif operator == "*":
            _check_repeat(left, right)
        elif operator == "%" and isinstance(left, str):
            _check_percent_format(left)
        return super().call_binop(context, operator, left, right)


# ------------------------------------------------------------------------------ render budget

#: CPU time one post may take to render, all fitting attempts together, counted on the
#: rendering thread's own clock (:class:`_Budget`). A teaser renders in milliseconds; the budget
#: stops a template that loops a billion times long before the daemon notices anything.
RENDER_SECONDS = 0.5
#: The most text one render may produce: no platform takes a post of more than a few
#: thousand characters.
MAX_OUTPUT = 100_000
#: The widest ``%10s`` / ``{:>10}`` / ``center(10)`` padding a template may ask for.
MAX_WIDTH = 1000

_BUDGET_FILTER = "_newsbot_budgeted"


class _OverBudget(SecurityError):
    """The render ran past RENDER_SECONDS."""


class _Budget:
    """What is left of one post's RENDER_SECONDS, in the CPU time of the thread composing it.

    Wall time would charge the template for time it did not run: waiting for a core on a
    loaded machine or for the GIL held by another thread (the pipeline composes in a worker
    thread). CPU time counts only what the thread did, so a legitimate render is never refused
    for the machine being busy, while a template that loops still stops within its budget.
    The fitter's own work (cutting the excerpt, loading the word segmenter on first use) is
    not the template's and runs :meth:`paused`.

    Reading the thread's CPU clock is a system call, ten times the cost of the monotonic
    clock, and checks run on every loop step, call and attribute lookup. A thread's CPU time
    never advances faster than wall time, so while the wall clock is within ``_wall`` the CPU
    budget cannot be spent either; only past it is the CPU clock read, and ``_wall`` moved on
    by the CPU time still left.
    """

    __slots__ = ("_cpu", "_wall")

    def __init__(self, seconds: float) -> None:
        self._cpu = time.thread_time() + seconds
        self._wall = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() <= self._wall:
            return
        left = self._cpu - time.thread_time()
        if left < 0:
            raise _OverBudget(
                f"the template took more than {RENDER_SECONDS:g} s to render (a loop too large?)."
            )
        self._wall = time.monotonic() + left

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Run the body without charging it to the budget."""
        cpu, wall = time.thread_time(), time.monotonic()
        try:
            yield
        finally:
            self._cpu += time.thread_time() - cpu
            self._wall += time.monotonic() - wall


# The budget of the post being composed in this context; the checks in the sandbox find it
# here, as Jinja gives them no way to reach the renderer.
_budget: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar(
    "newsbot_render_budget", default=None
)


def _on_budget() -> None:
    budget = _budget.get()
    if budget is not None:
        budget.check()


@contextlib.contextmanager
def _outside_budget() -> Iterator[None]:
    """Run the body without charging it to the current render's budget, if there is one."""
    budget = _budget.get()
    if budget is None:
        yield
    else:
        with budget.paused():
            yield


def _budgeted(iterable: Iterable[Any]) -> Iterator[Any]:
    """``iterable``, checking the render budget before each step."""
    for item in iterable:
        _on_budget()
        yield item


def _bounded_render(template: jinja2.Template, context: dict[str, Any]) -> str:
    """``template.render(context)``, refusing output beyond MAX_OUTPUT as it is produced."""
    parts: list[str] = []
    size = 0
    for chunk in template.generate(context):
        size += len(chunk)
        if size > MAX_OUTPUT:
            raise SecurityError(
                f"the template produced more than {MAX_OUTPUT} characters (a loop too large?)."
            )
        parts.append(chunk)
    return "".join(parts)


_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0 +\-]*(\*|\d+)?(?:\.(\*|\d+))?")
_NUMBERS = re.compile(r"\d+")


def _too_wide(numbers: Iterable[str]) -> bool:
    return any(len(n) > 4 or int(n) > MAX_WIDTH for n in numbers)


def _width_error(what: str) -> SecurityError:
    return SecurityError(f"{what}: widths and precisions above {MAX_WIDTH} are not allowed.")


def _check_percent_format(text: str) -> None:
    for match in _PERCENT_SPEC.finditer(text):
        if "*" in (match.group(1), match.group(2)):
            raise _width_error(f"the format {match.group(0)!r} takes its width from an argument")
        if _too_wide(n for n in match.groups() if n):
            raise _width_error(f"the format {match.group(0)!r} is too wide")


def _check_format_string(text: str) -> None:
    try:
        fields = list(string.Formatter().parse(text))
    except ValueError:
        return  # str.format itself will say what is wrong
    for _literal, _name, spec, _conversion in fields:
        if spec and ("{" in spec or _too_wide(_NUMBERS.findall(spec))):
            raise _width_error(f"the format spec {spec!r} is too wide or nested")


_PADDING = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})


def _check_padding(obj: Any, args: tuple[Any, ...]) -> None:
    if (
        isinstance(obj, types.BuiltinMethodType)
        and isinstance(obj.__self__, str)
        and obj.__name__ in _PADDING
        and args
        and isinstance(args[0], int)
        and args[0] > MAX_WIDTH
    ):
        raise _width_error(f"{obj.__name__}({args[0]})")


def _checked_format(value: Any, *args: Any, **kwargs: Any) -> str:
    """Jinja's ``format`` filter with the widths checked."""
    _check_percent_format(str(value))
    return str(jinja2.filters.do_format(value, *args, **kwargs))


def _checked_center(value: str, width: int = 80) -> str:
    if width > MAX_WIDTH:
        raise _width_error(f"center({width})")
    return str(jinja2.filters.do_center(value, width))


def _checked_indent(value: str, width: int | str = 4, *args: Any, **kwargs: Any) -> str:
    size = len(width) if isinstance(width, str) else width
    if size > MAX_WIDTH:
        raise _width_error(f"indent({size})")
    return str(jinja2.filters.do_indent(value, width, *args, **kwargs))


def _check_power(base: Any, exponent: Any) -> None:
    if (
        isinstance(base, int)
        and isinstance(exponent, int)
        and abs(base) > 1
        and abs(base).bit_length() * exponent > MAX_POWER_BITS
    ):
        raise SecurityError(
            f"the power {base} ** {exponent} is too large for a template "
            f"(more than {MAX_POWER_BITS} bits)."
        )


def _check_repeat(left: Any, right: Any) -> None:
    for sequence, times in ((left, right), (right, left)):
        if (
            isinstance(sequence, str | bytes | list | tuple)
            and isinstance(times, int)
            and len(sequence) * times > MAX_REPEAT
        ):
            raise SecurityError(
                f"repeating a sequence of {len(sequence)} {times} times is too much for "
                f"a template (more than {MAX_REPEAT} items)."
            )


def _small_range(*args: int) -> range:
    """``range`` limited to MAX_RANGE items."""
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise SecurityError(
            f"range() of {len(numbers)} numbers is too long for a template (at most {MAX_RANGE})."
        )
    return numbers


def _harden(env: jinja2.Environment) -> None:
    for name in _REMOVED_GLOBALS:
        env.globals.pop(name, None)
    env.globals["range"] = _small_range
    env.filters[_BUDGET_FILTER] = _budgeted
    env.filters["format"] = _checked_format
    env.filters["center"] = _checked_center
    env.filters["indent"] = _checked_indent


def _autoescape(name: str | None) -> bool:
    return name is not None and name.endswith(".html.j2")


@functools.cache
def _fixed_weights(platform: Platform) -> tuple[int, int]:
    """What a placeholder and the ellipsis weigh on ``platform``."""
    return total_weight(_EXCERPT_MARK, platform), total_weight(_ELLIPSIS, platform)


class _Fitter:
    """Finds the longest excerpt (then title) with which one post fits its rule."""

    def __init__(
        self,
        job: _Job,
        rule: LengthRule,
        run: Callable[[_Job, str, str], str],
        *,
        slack: float = DEFAULT_SLACK,
        max_chars: int | None = None,
    ) -> None:
        self.job = job
        self.rule = rule
        self.run = run
        self.slack = slack
        self.max_chars = max_chars
        self.kind: CutKind = "none"
        self.excerpt = ""
        self._last_excerpt = ""
        self.measures = 0
        self.mark_weight, self.ellipsis_weight = _fixed_weights(rule.platform)
        # The placeholder render, once made, when the template may be filled in (see _Job).
        self.probe: str | None = None

    def measure(self, text: str) -> int:
        self.measures += 1
        return self.rule.measure(text)

    def render(self, title: str, excerpt: str) -> str:
        """The post with this title and excerpt: the placeholder render filled in when that is
        exact (a fillable template, both texts non-empty), else the template run again."""
        if self.probe is not None and title and excerpt:
            if self.job.escape:
                title, excerpt = str(markupsafe.escape(title)), str(markupsafe.escape(excerpt))
            if _EXCERPT_MARK in title:
                # One pass, so a placeholder character inside the title is not replaced again.
                return self.probe.translate({ord(_TITLE_MARK): title, ord(_EXCERPT_MARK): excerpt})
            return self.probe.replace(_TITLE_MARK, title).replace(_EXCERPT_MARK, excerpt)
        return self.run(self.job, title, excerpt)

    def fit(self, title: str, excerpt: str) -> tuple[str, int]:
        limit = self.rule.limit
        platform = self.rule.platform
        title_weight = total_weight(title, platform)

        # Learn the cost of everything but excerpt and title, and how often each appears.
        probe = self.run(self.job, _TITLE_MARK, _EXCERPT_MARK)
        if self.job.fillable:
            self.probe = probe
        n_excerpt, n_title = probe.count(_EXCERPT_MARK), probe.count(_TITLE_MARK)
        fixed = self.measure(probe) - (n_excerpt + n_title) * self.mark_weight
        # Every code point but those inside a URL or emoji weighs at least 1, so a cut never
        # reaches past the room the template leaves: only that head is weighed position by
        # position (the whole text when the head does not outweigh the room).
        room = max(0, limit - fixed)
        head = excerpt[: room + _HEAD_MARGIN]
        excerpt_w = prefix_weights(head, platform)
        if head != excerpt and excerpt_w[-1] <= room:
            head, excerpt_w = excerpt, prefix_weights(excerpt, platform)
        # A head shorter than the excerpt outweighs the room: the excerpt cannot fit whole.
        excerpt_weight = excerpt_w[-1] if head == excerpt else limit + 1
        predicted = fixed + n_excerpt * excerpt_weight + n_title * title_weight
        too_long = self.max_chars is not None and len(excerpt) > self.max_chars
        if not too_long and (predicted <= limit or (n_excerpt == 0 and excerpt)):
            # Fits as is, or the template transforms the excerpt and the probe cannot tell.
            text = self.render(title, excerpt)
            length = self.measure(text)
            if length <= limit:
                self.excerpt = excerpt
                return text, length

        if excerpt:
            if head != excerpt and self.max_chars is not None and self.max_chars >= len(head):
                self.max_chars = None  # the limit binds before the editor's bound
            excerpt = head
            if n_excerpt:
                budget = (limit - fixed - n_title * title_weight) // n_excerpt
                found = self._step_down(excerpt, excerpt_w, budget, lambda cut: (title, cut))
            else:
                found = self._search(excerpt, excerpt_w, lambda cut: (title, cut))
            if found is not None:
                self.excerpt = self._last_excerpt
                return found

        self.max_chars = None  # the editor's bound is on the excerpt, not the title
        self.excerpt = ""
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
        platform = self.rule.platform
        with _outside_budget():
            found = cut(
                text,
                budget,
                weights,
                _ELLIPSIS,
                ellipsis_weight=self.ellipsis_weight,
                weigh=lambda s: total_weight(s, platform),
                slack=self.slack,
                max_chars=self.max_chars,
            )
        self.kind = found.kind
        self._last_excerpt = found.text
        rendered = self.render(*place(found.text))
        return found.text, rendered, self.measure(rendered)

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
            kept = total_weight(cut, self.rule.platform)
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
        kind, kept = self.kind, ""
        while low <= high:
            mid = (low + high) // 2
            cut, rendered, length = self._try(text, weights, mid, place)
            if length <= limit and cut:
                best, kind, kept = (rendered, length), self.kind, cut
                low = mid + 1
            else:
                high = mid - 1
        self.kind, self._last_excerpt = kind, kept
        return best
