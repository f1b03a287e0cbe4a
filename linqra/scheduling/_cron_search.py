"""The next-fire search of a Quartz cron expression, over its parsed fields.

Parsing, the syntax and Quartz's semantics are :mod:`linqra.scheduling.cron`; this module is the
search that :meth:`~linqra.scheduling.cron.CronExpression.next_after` drives one step at a time.
It walks local wall time as ``java.util.GregorianCalendar`` keeps it (fields set out of range
roll over; a wall time in a daylight-saving gap moves past it, a repeated one resolves to its
later instant) and steps through the fields in Quartz's order — second, minute, hour, day,
month, year — because where a gap moves the search depends on the path it took there.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol
from zoneinfo import ZoneInfo

__all__ = ["MAX_YEAR", "Clock", "CronFields", "DaySpec", "SearchStep", "search_step"]

MAX_YEAR = 2199


@dataclass(frozen=True, slots=True)
class DaySpec:
    """What a day-of-month or day-of-week field asks for."""

    any: bool = False  # "?"
    values: tuple[int, ...] = ()  # ascending
    last: bool = False  # DOM "L", "L-n", "LW", "L-nW"
    last_offset: int = 0  # DOM "L-n"
    weekday: bool = False  # DOM "...W": the weekday nearest the day (the smallest listed one)
    last_of: int | None = None  # DOW "nL"
    nth: tuple[int, int] | None = None  # DOW "n#k"


class CronFields(Protocol):
    """What the search reads of a parsed expression
    (:class:`~linqra.scheduling.cron.CronExpression`): the values each field allows, ascending,
    and what the two day fields ask for."""

    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    month_values: tuple[int, ...]
    years: tuple[int, ...]
    dom: DaySpec
    dow: DaySpec


SearchStep = Literal["fire", "moved", "none"]


# -- wall time as java.util.GregorianCalendar keeps it ------------------------------------------
def _lenient(year: int, month: int, day: int, hour: int, minute: int, second: int) -> datetime:
    """The wall time these fields name, rolling over out-of-range values (day 32, hour 24)."""
    first = datetime(year + (month - 1) // 12, (month - 1) % 12 + 1, 1)
    return first + timedelta(days=day - 1, hours=hour, minutes=minute, seconds=second)


def _instant(wall: datetime, tz: ZoneInfo) -> datetime:
    """The later instant of a wall time (Java's rule): the standard-time one when it happens twice,
    and, in a spring-forward gap, the one read with the offset before the gap (later by the gap)."""
    earlier = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    return max(earlier, wall.replace(tzinfo=tz, fold=1).astimezone(UTC))


def _weekday(year: int, month: int, day: int) -> int:
    """Quartz's day-of-week of a date: SUN=1 … SAT=7 (``day`` may roll over, as in Java)."""
    return (_lenient(year, month, day, 0, 0, 0).weekday() + 1) % 7 + 1


class Clock:
    """The search position: wall-clock fields that may be set out of range, then settled."""

    __slots__ = ("_settled", "day", "hour", "minute", "month", "second", "tz", "year")

    def __init__(self, tz: ZoneInfo, instant: datetime) -> None:
        self.tz = tz
        self._take(instant)

    def _fields(self) -> tuple[int, int, int, int, int, int]:
        return self.year, self.month, self.day, self.hour, self.minute, self.second

    def _take(self, instant: datetime) -> None:
        local = instant.astimezone(self.tz)
        self.year, self.month, self.day = local.year, local.month, local.day
        self.hour, self.minute, self.second = local.hour, local.minute, local.second
        self._settled = self._fields()

    def instant(self) -> datetime:
        wall = _lenient(self.year, self.month, self.day, self.hour, self.minute, self.second)
        return _instant(wall, self.tz)

    def settle(self) -> None:
        """Roll fields over and move a wall time in a gap past it (what Java does on a read)."""
        if self._fields() != self._settled:
            self._take(self.instant())

    def set_hour(self, hour: int) -> None:
        """Quartz's ``setCalendarHour``: an hour lost to a gap becomes the next one."""
        self.hour = hour
        self.settle()
        if self.hour != hour and hour != 24:
            self.hour = hour + 1

    def move(self, day: int, month: int, year: int | None = None) -> None:
        """To midnight of a day (leniently: day 32 of a month is in the next one)."""
        self.second = self.minute = self.hour = 0
        self.day, self.month = day, month
        if year is not None:
            self.year = year


def _at_or_after(values: tuple[int, ...], current: int) -> int | None:
    return next((v for v in values if v >= current), None)


def search_step(cron: CronFields, clock: Clock, deadline: datetime) -> SearchStep:
    """One step of Quartz's search, fields from the second up: ``fire`` when the clock shows a
    fire time; ``moved`` when it was set to the next candidate; ``none`` when none is left."""
    clock.settle()
    second = _at_or_after(cron.seconds, clock.second)
    if second is None:
        clock.second, clock.minute = cron.seconds[0], clock.minute + 1
    else:
        clock.second = second
    clock.settle()
    minute = _at_or_after(cron.minutes, clock.minute)
    if minute != clock.minute:
        next_hour = clock.hour + (minute is None)
        clock.second, clock.minute = 0, cron.minutes[0] if minute is None else minute
        clock.set_hour(next_hour)
        return "moved"
    hour = _at_or_after(cron.hours, clock.hour)
    if hour != clock.hour:
        clock.second = clock.minute = 0
        clock.day += hour is None
        clock.set_hour(cron.hours[0] if hour is None else hour)
        return "moved"
    target = _day_target(cron, clock, deadline)
    if target is not None:
        clock.move(*target)
        return "moved"
    clock.settle()
    if clock.year > MAX_YEAR:
        return "none"
    month = _at_or_after(cron.month_values, clock.month)
    if month is None:
        clock.move(1, cron.month_values[0], clock.year + 1)
        return "moved"
    if month != clock.month:
        clock.move(1, month, clock.year)
        return "moved"
    year = _at_or_after(cron.years, clock.year)
    if year is None:
        return "none"
    if year != clock.year:
        clock.move(1, 1, year)
        return "moved"
    return "fire"


def _day_target(cron: CronFields, clock: Clock, deadline: datetime) -> tuple[int, int] | None:
    """``None`` when the clock's day fires, else the (day, month) to move to — leniently, as
    Quartz does: ``(1, 13)`` is January of the next year, ``(31, 2)`` early March."""
    year, month, day = clock.year, clock.month, clock.day
    length = calendar.monthrange(year, month)[1]
    if not cron.dom.any:
        spec = cron.dom
        if spec.last and not spec.weekday:
            last = length - spec.last_offset
            if day > last:
                return 1, month + 1
            return None if day == last else (last, month)
        if not spec.weekday:
            later = _at_or_after(spec.values, day)
            if later is None or later > length:
                return spec.values[0], month + 1
            return None if later == day else (later, month)
        wanted = length - spec.last_offset if spec.last else spec.values[0]
        passed = (1, month + 1) if spec.last else (spec.values[0], month + 1)
        weekday = _weekday(year, month, wanted)
        if weekday == 7:  # Saturday: the Friday before, or the Monday after the 1st
            wanted += 2 if wanted == 1 else -1
        elif weekday == 1:  # Sunday: the Monday after, or the Friday before the last day
            wanted += -2 if wanted == length else 1
        if wanted < 1:  # L-nW before the month's start: Quartz loops; no fire this month
            return passed
        wall = _lenient(year, month, wanted, clock.hour, clock.minute, clock.second)
        if _instant(wall, clock.tz) < deadline:
            return passed
        return None if wanted == day else (wanted, month)
    spec = cron.dow
    today = _weekday(year, month, day)
    if spec.last_of is not None:
        ahead = (spec.last_of - today) % 7
        if day + ahead > length:
            return 1, month + 1
        while day + ahead + 7 <= length:
            ahead += 7
        return None if ahead == 0 else (day + ahead, month)
    if spec.nth is not None:
        target, nth = spec.nth
        ahead = (target - today) % 7
        weeks = nth - (day + ahead + 6) // 7
        wanted = day + ahead + 7 * weeks
        if weeks < 0 or wanted > length:
            return 1, month + 1
        return None if wanted == day else (wanted, month)
    later = _at_or_after(spec.values, today)
    ahead = ((spec.values[0] if later is None else later) - today) % 7
    if day + ahead > length:
        return 1, month + 1
    return None if ahead == 0 else (day + ahead, month)
