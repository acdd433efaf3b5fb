"""Reading the dates news sites write, in the site's time zone (bot.sources.dates)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from bot.sources.dates import parse_date, read_date

TAIPEI = ZoneInfo("Asia/Taipei")
NOW = datetime(2025, 9, 16, 18, 0, tzinfo=TAIPEI)


def at(*parts: int) -> datetime:
    """A Taipei wall-clock time: at(2025, 9, 15, 14, 30)."""
    year, month, day, *clock = parts
    hour, minute, second = [*clock, 0, 0, 0][:3]
    return datetime(year, month, day, hour, minute, second, tzinfo=TAIPEI)


def read(text: str, now: datetime = NOW) -> datetime | None:
    return parse_date(text, timezone=TAIPEI, now=now)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9/15/2025", at(2025, 9, 15)),
        ("09/05/2025", at(2025, 9, 5)),
        ("發布日期:9/15/2025", at(2025, 9, 15)),
        ("發布日期：9/15/2025", at(2025, 9, 15)),
        ("9/15/2025 14:30", at(2025, 9, 15, 14, 30)),
        ("9-15-2025", at(2025, 9, 15)),
    ],
)
def test_month_first_dates_as_the_seed_writes_them(text: str, expected: datetime) -> None:
    """M/D/YYYY, as in the seed's related-news list, reads month first in the site's zone."""
    assert read(text) == expected


def test_a_first_number_over_twelve_can_only_be_the_day() -> None:
    """15/9/2025 cannot be month 15, so it is 15 September."""
    assert read("15/9/2025") == at(2025, 9, 15)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-09-15", at(2025, 9, 15)),
        ("2025/09/15", at(2025, 9, 15)),
        ("2025/9/15", at(2025, 9, 15)),
        ("2025.09.15", at(2025, 9, 15)),
        ("2025/09/15 14:30", at(2025, 9, 15, 14, 30)),
        ("2025-09-15 14:30:59", at(2025, 9, 15, 14, 30, 59)),
        ("2025/09/15(一) 14:30", at(2025, 9, 15, 14, 30)),
        ("更新時間 2025/09/15 08:05", at(2025, 9, 15, 8, 5)),
    ],
)
def test_year_first_numeric_dates(text: str, expected: datetime) -> None:
    """YYYY-MM-DD, YYYY/MM/DD and YYYY.MM.DD, with an optional time and weekday."""
    assert read(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025年9月15日", at(2025, 9, 15)),
        ("2025 年 9 月 15 日", at(2025, 9, 15)),
        ("2025年9月15日 14:30", at(2025, 9, 15, 14, 30)),
        ("2025年9月15日 下午2:30", at(2025, 9, 15, 14, 30)),
        ("2025年9月15日 上午9:05", at(2025, 9, 15, 9, 5)),
        ("2025年9月15日(星期一) 下午2點30分", at(2025, 9, 15, 14, 30)),
        ("2025年9月15日 晚上8點", at(2025, 9, 15, 20, 0)),
        ("2025年9月15日 中午12:10", at(2025, 9, 15, 12, 10)),
        ("2025年9月15日 凌晨12:30", at(2025, 9, 15, 0, 30)),
        ("2025年9月15日 上午12:30", at(2025, 9, 15, 0, 30)),
        ("2025年9月15日 下午12:30", at(2025, 9, 15, 12, 30)),
        ("2025年9月15日 下午14:30", at(2025, 9, 15, 14, 30)),
        ("2025年9月15號", at(2025, 9, 15)),
    ],
)
def test_chinese_dates_with_half_day_words(text: str, expected: datetime) -> None:
    """2025年9月15日 with 上午/下午/晚上/中午/凌晨 clocks reads as a 24-hour time."""
    assert read(text) == expected


@pytest.mark.parametrize(
    "text", ["民國114年9月15日", "114年9月15日", "114/09/15", "114/9/15 00:00"]
)
def test_roc_years(text: str) -> None:
    """A Republic of China year (民國114 = 2025) is read as such."""
    assert read(text) == at(2025, 9, 15)


def test_full_width_digits_and_colons() -> None:
    """Full-width digits, colon and space read like ASCII ones (NFKC)."""
    assert read("２０２５年９月１５日　下午２：３０") == at(2025, 9, 15, 14, 30)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-09-15T10:30:00+08:00", datetime(2025, 9, 15, 2, 30, tzinfo=UTC)),
        ("2025-09-15T02:30:00Z", datetime(2025, 9, 15, 2, 30, tzinfo=UTC)),
        ("2025-09-15T02:30:00.123Z", datetime(2025, 9, 15, 2, 30, tzinfo=UTC)),
        ("2025-09-15T10:30+0800", datetime(2025, 9, 15, 2, 30, tzinfo=UTC)),
        ("2025-09-15 10:30:00+08:00", datetime(2025, 9, 15, 2, 30, tzinfo=UTC)),
        ("2025-09-14T22:30:00-04:00", datetime(2025, 9, 15, 2, 30, tzinfo=UTC)),
        ("2025-09-15T10:30:00", at(2025, 9, 15, 10, 30)),
    ],
)
def test_iso_8601_keeps_its_offset(text: str, expected: datetime) -> None:
    """An ISO 8601 offset wins over the configured zone; without one the zone applies."""
    assert read(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Sep 15, 2025", at(2025, 9, 15)),
        ("September 15, 2025", at(2025, 9, 15)),
        ("15 Sep 2025", at(2025, 9, 15)),
        ("Mon, 15 Sep 2025 10:30:00 +0800", datetime(2025, 9, 15, 2, 30, tzinfo=UTC)),
        ("15 Sep 2025 02:30:00 GMT", datetime(2025, 9, 15, 2, 30, tzinfo=UTC)),
        ("Sep 15, 2025 2:30 PM", at(2025, 9, 15, 14, 30)),
    ],
)
def test_english_month_names(text: str, expected: datetime) -> None:
    """English month names, including the RFC 2822 form of HTTP headers and RSS."""
    assert read(text) == expected


@pytest.mark.parametrize(
    ("text", "delta"),
    [
        ("3 小時前", timedelta(hours=3)),
        ("15 分鐘前", timedelta(minutes=15)),
        ("15分鐘前", timedelta(minutes=15)),
        ("3分前", timedelta(minutes=3)),
        ("30 秒前", timedelta(seconds=30)),
        ("半小時前", timedelta(minutes=30)),
        ("2 天前", timedelta(days=2)),
        ("1 週前", timedelta(weeks=1)),
        ("一小時前", timedelta(hours=1)),
        ("3 小时前", timedelta(hours=3)),
        ("剛剛", timedelta(0)),
        ("3 hours ago", timedelta(hours=3)),
        ("an hour ago", timedelta(hours=1)),
        ("2 days ago", timedelta(days=2)),
    ],
)
def test_relative_forms_count_back_from_now(text: str, delta: timedelta) -> None:
    """Relative forms such as 3 小時前 are ``now`` minus that much, and say they were relative."""
    reading = read_date(text, timezone=TAIPEI, now=NOW)
    assert reading is not None
    assert reading.when == NOW - delta
    assert reading.relative
    assert reading.has_time


@pytest.mark.parametrize(
    ("text", "expected", "has_time"),
    [
        ("昨天", at(2025, 9, 15), False),
        ("昨天 14:30", at(2025, 9, 15, 14, 30), True),
        ("昨天 下午2:30", at(2025, 9, 15, 14, 30), True),
        ("前天", at(2025, 9, 14), False),
        ("今天 08:10", at(2025, 9, 16, 8, 10), True),
        ("yesterday", at(2025, 9, 15), False),
    ],
)
def test_day_words(text: str, expected: datetime, has_time: bool) -> None:
    """昨天/前天/今天 are days in the site's zone, with their time when one is written."""
    reading = read_date(text, timezone=TAIPEI, now=NOW)
    assert reading is not None
    assert reading.when == expected
    assert reading.has_time is has_time


def test_day_words_use_the_sites_day_not_utcs() -> None:
    """At 01:00 in Taipei (still the day before in UTC), 昨天 is the Taipei yesterday."""
    early = datetime(2025, 9, 16, 1, 0, tzinfo=TAIPEI)
    assert read("昨天", now=early.astimezone(UTC)) == at(2025, 9, 15)


def test_a_date_only_reading_says_it_has_no_time() -> None:
    """A bare date is the start of that day in the zone, flagged has_time=False."""
    reading = read_date("9/15/2025", timezone=TAIPEI, now=NOW)
    assert reading is not None
    assert reading.when == at(2025, 9, 15)
    assert not reading.has_time
    assert not reading.relative


def test_the_zone_decides_what_a_date_means() -> None:
    """9/15/2025 in Taipei is 16:00 UTC the day before; in UTC it is midnight."""
    assert read("9/15/2025") == datetime(2025, 9, 14, 16, 0, tzinfo=UTC)
    assert parse_date("9/15/2025", timezone=UTC, now=NOW) == datetime(2025, 9, 15, tzinfo=UTC)


def test_a_date_without_a_year_takes_the_current_one() -> None:
    """9月15日 seen in September 2025 is 2025; 12月31日 would be in the future, so 2024."""
    assert read("9月15日") == at(2025, 9, 15)
    assert read("9月15日 14:30") == at(2025, 9, 15, 14, 30)
    assert read("12月31日") == at(2024, 12, 31)
    assert read("09/15 14:30") == at(2025, 9, 15, 14, 30)


def test_the_leftmost_date_wins() -> None:
    """A "published … updated …" line gives the published date."""
    assert read("發布 9/15/2025 更新 2025-09-16 10:00") == at(2025, 9, 15)


def test_a_time_range_is_not_read_as_an_offset() -> None:
    """A range such as 10:00-12:00 is an event's hours, not a UTC-12 timestamp."""
    assert read("2025-09-15 10:00-12:00") == at(2025, 9, 15, 10, 0)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "A- A A+",
        "相關新聞",
        "2/30/2025",
        "13/13/2025",
        "2025-13-01",
        "2025/09/15 25:00",
        "1/2",
        "第 43 座姊妹市",
        "160週年",
    ],
)
def test_text_without_a_valid_date_reads_as_none(text: str) -> None:
    """Nonsense, impossible days and bare fractions are not dates."""
    assert read(text) is None


def test_now_must_be_aware() -> None:
    """A naive ``now`` is a programming error, reported at once."""
    with pytest.raises(ValueError, match="aware"):
        parse_date("3 小時前", timezone=TAIPEI, now=datetime(2025, 9, 16, 18, 0))


def test_fixed_offset_zones_work_too() -> None:
    """Any tzinfo works as the site's zone, not only ZoneInfo."""
    plus8 = timezone(timedelta(hours=8))
    assert parse_date("2025/09/15 14:30", timezone=plus8, now=NOW) == datetime(
        2025, 9, 15, 14, 30, tzinfo=plus8
    )
