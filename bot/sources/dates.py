"""Dates as news sites write them, read in the site's time zone.

Taiwanese portals write ``9/15/2025`` (month first, as the seed article does), ``2025-09-15``,
``2025/09/15 14:30``, ``2025年9月15日 下午2:30``, ROC years (``民國114年9月15日``,
``114/09/15``), ISO 8601 in attributes (``<time datetime="2025-09-15T10:30:00+08:00">``), and in
"latest news" lists relative forms: ``3 小時前``, ``15 分鐘前``, ``昨天 14:30``, ``2 天前``.

:func:`read_date` finds the first date in a piece of text (a label such as ``發布日期:`` may
surround it) and says whether a time of day was written. A date without a time reads as the
start of that day in the given zone; a date without a year is taken in the current year, or
the year before when that would put it more than a day in the future. Text is NFKC-normalised
first, so full-width digits and colons read like ASCII ones.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from datetime import timezone as fixed_offset

__all__ = ["DateReading", "parse_date", "read_date"]

_ROC_OFFSET = 1911  # 民國 1 年 is 1912


@dataclass(frozen=True, slots=True)
class DateReading:
    """A date read from text. ``when`` is timezone-aware. ``has_time`` is false when only the
    day was written (``when`` is then the start of that day); ``relative`` is true for forms
    such as ``3 小時前`` that were computed from ``now``."""

    when: datetime
    has_time: bool
    relative: bool = False


def parse_date(text: str, *, timezone: tzinfo, now: datetime) -> datetime | None:
    """The first date in ``text`` as an aware datetime, or ``None`` when there is none."""
    reading = read_date(text, timezone=timezone, now=now)
    return reading.when if reading else None


def read_date(text: str, *, timezone: tzinfo, now: datetime) -> DateReading | None:
    """The first date in ``text``, read in ``timezone``; ``now`` (aware) anchors relative forms
    and dates written without a year."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    clean = unicodedata.normalize("NFKC", text).strip()
    if not clean:
        return None
    context = _Context(timezone, now)
    candidates: list[tuple[int, int, re.Match[str], _Builder]] = []
    for pattern, builder in _PATTERNS:
        for match in pattern.finditer(clean):
            candidates.append((match.start(), -(match.end() - match.start()), match, builder))
    # The leftmost date wins (a "published … updated …" line gives the published one); at the
    # same place, the longest reading (a date with its time beats the bare date).
    for _start, _length, match, builder in sorted(candidates, key=lambda c: (c[0], c[1])):
        reading = builder(match, context)
        if reading is not None:
            return reading
    return None


# --------------------------------------------------------------------------------- the patterns


@dataclass(frozen=True, slots=True)
class _Context:
    zone: tzinfo
    now: datetime

    @property
    def today(self) -> date:
        return self.now.astimezone(self.zone).date()


_Builder = Callable[[re.Match[str], _Context], DateReading | None]

# Words that say which half of the day a 12-hour clock means.
_MORNING = {"上午", "早上", "凌晨", "清晨", "am", "a.m."}
_AFTERNOON = {"下午", "晚上", "傍晚", "夜間", "晚間", "pm", "p.m."}
_NOON = {"中午"}

_PERIOD = r"(?P<period>上午|下午|中午|晚上|晚間|凌晨|清晨|早上|傍晚|夜間)?"
_CLOCK = (
    r"(?:(?P<hour>\d{1,2})\s*(?::|[點点時时])\s*(?P<minute>\d{1,2})?\s*分?"
    r"(?:\s*:\s*(?P<second>\d{1,2})(?:\.\d+)?)?\s*秒?)"
)
_AMPM = r"(?:\s*(?P<ampm>[AaPp]\.?[Mm]\.?)(?![A-Za-z]))?"
# A bare offset only with "+" (Taiwan is +08:00): "10:00-12:00" is a range, not a zone.
_OFFSET = (
    r"(?:\s*(?P<offset>Z(?![A-Za-z])|(?:GMT|UTC)(?:\s*[+-]\d{1,2}(?::?\d{2})?)?"
    r"|\+\d{2}:?\d{2}))?"
)
# A weekday between the date and the time: (一), （星期一）, 星期一, 週一, (Mon).
_WEEKDAY = r"(?:\s*(?:[(（][^)）]{1,9}[)）]|(?:星期|週|周|礼拜|禮拜)[一二三四五六日天]))?"
_TIME = rf"(?:{_WEEKDAY}(?:\s*|T){_PERIOD}\s*{_CLOCK}{_AMPM}{_OFFSET})?"

_ISO = re.compile(
    r"(?<!\d)(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})"
    r"T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.\d+)?)?"
    r"(?P<offset>Z|[+-]\d{2}(?::?\d{2})?)?(?!\d)"
)
_YMD = re.compile(
    rf"(?<![\d/.-])(?P<year>\d{{4}}|1\d\d)(?P<sep>[-/.])(?P<month>\d{{1,2}})(?P=sep)"
    rf"(?P<day>\d{{1,2}})(?![\d/.-]){_TIME}"
)
_MDY = re.compile(
    rf"(?<![\d/.-])(?P<first>\d{{1,2}})(?P<sep>[/-])(?P<second_>\d{{1,2}})(?P=sep)"
    rf"(?P<year>\d{{4}})(?![\d/.-]){_TIME}"
)
_CJK = re.compile(
    rf"(?P<roc>民國|民国)?\s*(?<!\d)(?P<year>\d{{2,4}})\s*年\s*(?P<month>\d{{1,2}})\s*月\s*"
    rf"(?P<day>\d{{1,2}})\s*[日號号]{_TIME}"
)
_CJK_NO_YEAR = re.compile(
    rf"(?<![\d年])(?P<month>\d{{1,2}})\s*月\s*(?P<day>\d{{1,2}})\s*[日號号]{_TIME}"
)
# 09/15 14:30 in a "latest" list: only with a time, so that a fraction is never a date.
_MD_TIME = re.compile(
    rf"(?<![\d/.-])(?P<month>\d{{1,2}})/(?P<day>\d{{1,2}})(?![\d/.-])\s+{_PERIOD}\s*{_CLOCK}"
    rf"{_AMPM}"
)
_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}
_MONTH_NAME = r"(?P<mname>[A-Za-z]{3,9})\.?"
_NAMED_MDY = re.compile(
    rf"(?<![A-Za-z]){_MONTH_NAME}\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<year>\d{{4}})"
    rf"(?:,?\s*(?:at\s+)?{_CLOCK}{_AMPM}{_OFFSET})?",
)
_NAMED_DMY = re.compile(
    rf"(?<!\d)(?P<day>\d{{1,2}})\s+{_MONTH_NAME},?\s+(?P<year>\d{{4}})"
    rf"(?:,?\s*{_CLOCK}{_AMPM}{_OFFSET})?",
)
_UNITS: dict[str, timedelta] = {
    "秒": timedelta(seconds=1),
    "分鐘": timedelta(minutes=1),
    "分钟": timedelta(minutes=1),
    "分": timedelta(minutes=1),
    "小時": timedelta(hours=1),
    "小时": timedelta(hours=1),
    "鐘頭": timedelta(hours=1),
    "钟头": timedelta(hours=1),
    "天": timedelta(days=1),
    "日": timedelta(days=1),
    "週": timedelta(weeks=1),
    "周": timedelta(weeks=1),
    "星期": timedelta(weeks=1),
    "個月": timedelta(days=30),
    "个月": timedelta(days=30),
    "月": timedelta(days=30),
    "年": timedelta(days=365),
    "second": timedelta(seconds=1),
    "sec": timedelta(seconds=1),
    "minute": timedelta(minutes=1),
    "min": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "hr": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
    "month": timedelta(days=30),
    "year": timedelta(days=365),
}
_AGO = re.compile(
    r"(?P<count>\d+|半|一|兩|两|二|三|四|五|六|七|八|九|十)\s*"
    r"(?P<unit>秒|分鐘|分钟|分|小時|小时|鐘頭|钟头|天|日|週|周|星期|個月|个月|月|年)\s*(?:之)?前"
)
_AGO_EN = re.compile(
    r"(?<![A-Za-z0-9])(?P<count>\d+|an?)\s+(?P<unit>second|sec|minute|min|hour|hr|day|week|"
    r"month|year)s?\s+ago(?![A-Za-z])",
    re.IGNORECASE,
)
_JUST_NOW = re.compile(r"剛剛|剛才|刚刚|刚才|(?<![A-Za-z])just now(?![A-Za-z])", re.IGNORECASE)
_DAY_WORD = re.compile(
    rf"(?P<word>今天|今日|昨天|昨日|前天|(?<![A-Za-z])(?:today|yesterday)(?![A-Za-z]))"
    rf"(?:\s*{_PERIOD}\s*{_CLOCK}{_AMPM})?",
    re.IGNORECASE,
)
_DAYS_BACK = {"今天": 0, "今日": 0, "today": 0, "昨天": 1, "昨日": 1, "yesterday": 1, "前天": 2}
_SMALL_NUMBERS = {
    "一": 1, "兩": 2, "两": 2, "二": 2, "三": 3, "四": 4, "五": 5,
    "六": 6, "七": 7, "八": 8, "九": 9, "十": 10, "a": 1, "an": 1,
}  # fmt: skip


# --------------------------------------------------------------------------------- the builders


def _iso(match: re.Match[str], ctx: _Context) -> DateReading | None:
    return _build(ctx, int(match["year"]), int(match["month"]), int(match["day"]), match)


def _ymd(match: re.Match[str], ctx: _Context) -> DateReading | None:
    year = int(match["year"])
    if year < 1000:  # 114/09/15: a ROC year
        year += _ROC_OFFSET
    return _build(ctx, year, int(match["month"]), int(match["day"]), match)


def _mdy(match: re.Match[str], ctx: _Context) -> DateReading | None:
    first, second = int(match["first"]), int(match["second_"])
    # Month first, as these sites write it; a first number over 12 can only be a day.
    month, day = (second, first) if first > 12 >= second else (first, second)
    return _build(ctx, int(match["year"]), month, day, match)


def _cjk(match: re.Match[str], ctx: _Context) -> DateReading | None:
    year = int(match["year"])
    if match["roc"] or year < 1000:
        year += _ROC_OFFSET
    return _build(ctx, year, int(match["month"]), int(match["day"]), match)


def _no_year(match: re.Match[str], ctx: _Context) -> DateReading | None:
    month, day = int(match["month"]), int(match["day"])
    this_year = ctx.today.year
    reading = _build(ctx, this_year, month, day, match)
    if reading is not None and reading.when > ctx.now + timedelta(days=1):
        return _build(ctx, this_year - 1, month, day, match)
    return reading


def _named(match: re.Match[str], ctx: _Context) -> DateReading | None:
    month = _MONTHS.get(match["mname"].lower())
    if month is None:
        return None
    return _build(ctx, int(match["year"]), month, int(match["day"]), match)


def _ago(match: re.Match[str], ctx: _Context) -> DateReading | None:
    raw = match["count"]
    unit = _UNITS[match["unit"].lower()]
    if raw == "半":
        delta = unit / 2
    else:
        count = int(raw) if raw.isdigit() else _SMALL_NUMBERS.get(raw.lower())
        if count is None:
            return None
        delta = unit * count
    return DateReading((ctx.now - delta).astimezone(ctx.zone), has_time=True, relative=True)


def _just_now(match: re.Match[str], ctx: _Context) -> DateReading | None:
    return DateReading(ctx.now.astimezone(ctx.zone), has_time=True, relative=True)


def _day_word(match: re.Match[str], ctx: _Context) -> DateReading | None:
    day = ctx.today - timedelta(days=_DAYS_BACK[match["word"].lower()])
    reading = _build(ctx, day.year, day.month, day.day, match)
    if reading is None:
        return None
    return DateReading(reading.when, has_time=reading.has_time, relative=True)


_PATTERNS: tuple[tuple[re.Pattern[str], _Builder], ...] = (
    (_ISO, _iso),
    (_YMD, _ymd),
    (_MDY, _mdy),
    (_CJK, _cjk),
    (_CJK_NO_YEAR, _no_year),
    (_MD_TIME, _no_year),
    (_NAMED_MDY, _named),
    (_NAMED_DMY, _named),
    (_AGO, _ago),
    (_AGO_EN, _ago),
    (_JUST_NOW, _just_now),
    (_DAY_WORD, _day_word),
)


def _build(
    ctx: _Context, year: int, month: int, day: int, match: re.Match[str]
) -> DateReading | None:
    try:
        the_day = date(year, month, day)
    except ValueError:
        return None
    groups = match.groupdict()
    if groups.get("hour") is None:
        return DateReading(datetime.combine(the_day, time(), ctx.zone), has_time=False)
    clock = _clock(groups)
    if clock is None:
        return None
    zone = _offset(groups.get("offset")) or ctx.zone
    return DateReading(datetime.combine(the_day, clock, zone), has_time=True)


def _clock(groups: dict[str, str | None]) -> time | None:
    hour = int(groups["hour"] or 0)
    minute = int(groups.get("minute") or 0)
    second = int(groups.get("second") or 0)
    period = (groups.get("period") or groups.get("ampm") or "").lower().replace(" ", "")
    if period and hour <= 12:
        if period in _MORNING and hour == 12:
            hour = 0  # 上午12:30 / 12:30 AM is half past midnight
        elif period in _AFTERNOON and hour < 12:
            hour += 12
        elif period in _NOON and hour < 11:
            hour += 12  # 中午1點 is one in the afternoon
    if hour > 23 or minute > 59 or second > 59:
        return None
    return time(hour, minute, second)


_OFFSET_PARTS = re.compile(r"^(?:GMT|UTC)?\s*([+-])(\d{1,2})(?::?(\d{2}))?$")


def _offset(raw: str | None) -> tzinfo | None:
    if not raw:
        return None
    raw = raw.strip()
    if raw in ("Z", "GMT", "UTC"):
        return UTC
    parts = _OFFSET_PARTS.match(raw)
    if not parts:
        return None
    hours, minutes = int(parts[2]), int(parts[3] or 0)
    if hours > 14 or minutes > 59:
        return None
    delta = timedelta(hours=hours, minutes=minutes)
    return fixed_offset(-delta if parts[1] == "-" else delta)
