"""Quartz cron expressions, with Quartz's semantics, evaluated in an IANA time zone.

``seconds minutes hours day-of-month month day-of-week [year]``:

==============  ==========  ====================================
field           values      special characters
==============  ==========  ====================================
seconds         0-59        ``, - * /``
minutes         0-59        ``, - * /``
hours           0-23        ``, - * /``
day-of-month    1-31        ``, - * ? / L W`` (``L``, ``L-3``, ``15W``, ``LW``)
month           1-12        ``, - * /`` and ``JAN``-``DEC``
day-of-week     1-7 (SUN=1) ``, - * ? / L #`` and ``SUN``-``SAT`` (``L`` = Saturday, ``6L``, ``6#3``)
year (optional) 1970-2099   ``, - * /``
==============  ==========  ====================================

As in Quartz, exactly one of day-of-month and day-of-week is ``?``. Fire times are computed in
local time of the zone and returned in UTC: a local time that does not exist (the spring-forward
gap) is skipped, and a local time that happens twice (the autumn overlap) fires once, at its
first occurrence.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from linqra.errors import ValidationError

__all__ = ["CronExpression", "cron_preview", "zone"]

FIELDS = ("seconds", "minutes", "hours", "day-of-month", "month", "day-of-week", "year")
_RANGES = {
    "seconds": (0, 59),
    "minutes": (0, 59),
    "hours": (0, 23),
    "day-of-month": (1, 31),
    "month": (1, 12),
    "day-of-week": (1, 7),
    "year": (1970, 2099),
}
_MONTHS = {m: i for i, m in enumerate(
    ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], 1
)}  # fmt: skip
_DAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], 1)}
_MAX_YEAR = 2099


def zone(name: str, field: str = "timezone") -> ZoneInfo:
    """The IANA zone ``name`` or a 400 naming ``field``."""
    if not isinstance(name, str) or not name or len(name) > 64 or ".." in name:
        raise ValidationError("timezone is an IANA name such as Europe/Paris or UTC", field=field)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f"unknown timezone {name!r}; use an IANA name such as Europe/Paris or UTC", field=field
        ) from None


@dataclass(frozen=True, slots=True)
class _DaySpec:
    """What a day-of-month or day-of-week field asks for (``None`` fields are unused)."""

    any: bool = False  # "?"
    values: frozenset[int] = frozenset()
    last: bool = False  # DOM "L"
    last_offset: int = 0  # DOM "L-n"
    nearest_weekday: int | None = None  # DOM "nW"
    last_weekday: bool = False  # DOM "LW"
    last_of: int | None = None  # DOW "nL"
    nth: tuple[int, int] | None = None  # DOW "n#k"


class CronExpression:
    def __init__(self, expression: str, field: str = "expression") -> None:
        if not isinstance(expression, str) or len(expression) > 256:
            raise ValidationError(
                "a cron expression is text of at most 256 characters", field=field
            )
        self.text = " ".join(expression.split())
        parts = self.text.upper().split(" ")
        if len(parts) not in (6, 7):
            raise ValidationError(
                f"a Quartz cron expression has 6 or 7 fields (seconds minutes hours day-of-month "
                f"month day-of-week [year]); this one has {len(parts) if self.text else 0}",
                field=field,
            )
        self._field = field
        self.seconds = self._values(parts[0], "seconds")
        self.minutes = self._values(parts[1], "minutes")
        self.hours = self._values(parts[2], "hours")
        self.month_values = self._values(parts[4], "month")
        self.years = self._values(parts[6], "year") if len(parts) == 7 else frozenset(
            range(1970, _MAX_YEAR + 1)
        )  # fmt: skip
        self.dom = self._dom(parts[3])
        self.dow = self._dow(parts[5])
        if self.dom.any == self.dow.any:
            raise ValidationError(
                "day-of-month and day-of-week: exactly one of them must be '?' (Quartz), "
                "e.g. '0 0 12 * * ?' or '0 0 12 ? * MON-FRI'",
                field=f"{field}.day-of-{'month' if not self.dom.any else 'week'}",
            )

    # -- parsing ---------------------------------------------------------------------------
    def _fail(self, name: str, message: str) -> ValidationError:
        return ValidationError(f"{name} field: {message}", field=f"{self._field}.{name}")

    def _number(self, token: str, name: str) -> int:
        names = _MONTHS if name == "month" else _DAYS if name == "day-of-week" else {}
        if token in names:
            return names[token]
        if not token.isdigit():
            raise self._fail(name, f"{token!r} is not a number" + (
                f" or a name ({', '.join(names)})" if names else ""
            ))  # fmt: skip
        value = int(token)
        low, high = _RANGES[name]
        if not low <= value <= high:
            raise self._fail(name, f"{value} is out of range {low}-{high}")
        return value

    def _values(self, text: str, name: str) -> frozenset[int]:
        low, high = _RANGES[name]
        out: set[int] = set()
        for item in text.split(","):
            if not item:
                raise self._fail(name, "empty list item")
            base, slash, step_text = item.partition("/")
            step = 1
            if slash:
                if not step_text.isdigit() or int(step_text) == 0:
                    raise self._fail(name, f"increment {step_text!r} must be a positive number")
                step = int(step_text)
                if step > high - low + 1 and name != "year":
                    raise self._fail(name, f"increment {step} is larger than the field's range")
            if base == "*":
                start, end = low, high
            elif "-" in base:
                a, _, b = base.partition("-")
                start, end = self._number(a, name), self._number(b, name)
            else:
                start = self._number(base, name)
                end = high if slash else start
            if end < start:  # a range that wraps (FRI-MON, 22-2)
                span = list(range(start, high + 1)) + list(range(low, end + 1))
            else:
                span = list(range(start, end + 1))
            out.update(span[::step])
        return frozenset(out)

    def _dom(self, text: str) -> _DaySpec:
        name = "day-of-month"
        if text == "?":
            return _DaySpec(any=True)
        if text == "L":
            return _DaySpec(last=True)
        if text == "LW":
            return _DaySpec(last_weekday=True)
        if match := re.fullmatch(r"L-(\d{1,2})", text):
            offset = int(match.group(1))
            if offset > 30:
                raise self._fail(name, "L-n needs n from 0 to 30")
            return _DaySpec(last=True, last_offset=offset)
        if match := re.fullmatch(r"(\d{1,2})W", text):
            return _DaySpec(nearest_weekday=self._number(match.group(1), name))
        if "L" in text or "W" in text:
            raise self._fail(name, f"{text!r}: L, L-n, nW and LW stand alone in day-of-month")
        return _DaySpec(values=self._values(text, name))

    def _dow(self, text: str) -> _DaySpec:
        name = "day-of-week"
        if text == "?":
            return _DaySpec(any=True)
        if text == "L":
            return _DaySpec(values=frozenset({7}))
        if match := re.fullmatch(r"([1-7]|[A-Z]{3})L", text):
            return _DaySpec(last_of=self._number(match.group(1), name))
        if match := re.fullmatch(r"([1-7]|[A-Z]{3})#(\d)", text):
            nth = int(match.group(2))
            if not 1 <= nth <= 5:
                raise self._fail(name, "n#k needs k from 1 to 5")
            return _DaySpec(nth=(self._number(match.group(1), name), nth))
        if "L" in text.replace("JUL", "") or "#" in text:
            raise self._fail(name, f"{text!r}: nL and n#k stand alone in day-of-week")
        return _DaySpec(values=self._values(text, name))

    # -- matching ----------------------------------------------------------------------------
    def _days(self, year: int, month: int) -> list[int]:
        """The days of ``month`` that fire, ascending."""
        length = calendar.monthrange(year, month)[1]

        def weekday(day: int) -> int:  # Quartz: SUN=1 … SAT=7
            return (calendar.weekday(year, month, day) + 1) % 7 + 1

        if not self.dom.any:
            spec = self.dom
            if spec.last:
                day = length - spec.last_offset
                return [day] if day >= 1 else []
            if spec.last_weekday:
                day = length
                while weekday(day) in (1, 7):
                    day -= 1
                return [day]
            if spec.nearest_weekday is not None:
                day = spec.nearest_weekday
                if day > length:
                    return []
                if weekday(day) == 7:  # Saturday → Friday, unless that leaves the month
                    day = day - 1 if day > 1 else day + 2
                elif weekday(day) == 1:  # Sunday → Monday, unless that leaves the month
                    day = day + 1 if day < length else day - 2
                return [day]
            return sorted(d for d in spec.values if d <= length)
        spec = self.dow
        if spec.last_of is not None:
            day = length
            while weekday(day) != spec.last_of:
                day -= 1
            return [day]
        if spec.nth is not None:
            target, nth = spec.nth
            first = next(d for d in range(1, 8) if weekday(d) == target)
            day = first + 7 * (nth - 1)
            return [day] if day <= length else []
        return [d for d in range(1, length + 1) if weekday(d) in spec.values]

    def _next_local(self, start: datetime) -> datetime | None:
        """The first naive local time ≥ ``start`` (whole seconds) that matches."""
        t = start.replace(microsecond=0)
        seconds, minutes, hours = sorted(self.seconds), sorted(self.minutes), sorted(self.hours)
        for _ in range(100_000):
            if t.year > _MAX_YEAR:
                return None
            if t.year not in self.years:
                later = [y for y in self.years if y > t.year]
                if not later:
                    return None
                t = datetime(min(later), 1, 1)
                continue
            if t.month not in self.month_values:
                later_months = [m for m in self.month_values if m > t.month]
                t = (
                    datetime(t.year, min(later_months), 1)
                    if later_months
                    else datetime(t.year + 1, 1, 1)
                )
                continue
            days = [d for d in self._days(t.year, t.month) if d >= t.day]
            if not days:
                t = datetime(t.year + (t.month == 12), t.month % 12 + 1, 1)
                continue
            if days[0] != t.day:
                t = datetime(t.year, t.month, days[0])
                continue
            hour = next((h for h in hours if h >= t.hour), None)
            if hour is None:
                t = datetime(t.year, t.month, t.day) + timedelta(days=1)
                continue
            if hour != t.hour:
                t = t.replace(hour=hour, minute=0, second=0)
                continue
            minute = next((m for m in minutes if m >= t.minute), None)
            if minute is None:
                t = t.replace(minute=0, second=0) + timedelta(hours=1)
                continue
            if minute != t.minute:
                t = t.replace(minute=minute, second=0)
                continue
            second = next((s for s in seconds if s >= t.second), None)
            if second is None:
                t = t.replace(second=0) + timedelta(minutes=1)
                continue
            return t.replace(second=second)
        return None

    def next_after(self, after: datetime, tz: ZoneInfo) -> datetime | None:
        """The first fire time strictly after ``after`` (aware), in UTC; ``None`` if none is left."""
        after = after.astimezone(UTC)
        local = after.astimezone(tz).replace(tzinfo=None, fold=0)
        candidate = self._next_local(local + timedelta(seconds=1))
        while candidate is not None:
            aware = candidate.replace(tzinfo=tz, fold=0)
            instant = aware.astimezone(UTC)
            exists = instant.astimezone(tz).replace(tzinfo=None) == candidate
            if exists and instant > after:  # a gap time does not exist; an overlap fires once
                return instant
            candidate = self._next_local(candidate + timedelta(seconds=1))
        return None

    def next_times(self, after: datetime, tz: ZoneInfo, count: int) -> list[datetime]:
        out: list[datetime] = []
        current = after
        while len(out) < count:
            nxt = self.next_after(current, tz)
            if nxt is None:
                break
            out.append(nxt)
            current = nxt
        return out

    def describe(self) -> str:
        parts = self.text.split(" ")
        names = ["second", "minute", "hour", "day-of-month", "month", "day-of-week", "year"]
        said = [
            f"{name} {value}"
            for name, value in zip(names, parts, strict=False)
            if value not in ("*", "?")
        ]
        if len(self.seconds) == 1 and len(self.minutes) == 1 and len(self.hours) == 1:
            clock = f"at {min(self.hours):02d}:{min(self.minutes):02d}:{min(self.seconds):02d}"
            said = [s for s in said if not s.startswith(("second ", "minute ", "hour "))]
            return ", ".join([clock, *said]) if said else f"{clock}, every day"
        return ", ".join(said) if said else "every second"


def cron_preview(
    expression: str, timezone: str = "UTC", after: str | None = None, count: int = 5
) -> dict[str, Any]:
    """``{"next": [ISO-8601 UTC instants], "description": …}`` for ``GET /v1/cron/next``."""
    cron = CronExpression(expression)
    tz = zone(timezone)
    if after is None:
        start = datetime.now(UTC)
    else:
        try:
            start = datetime.fromisoformat(after.replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError(
                "after is an ISO-8601 instant, e.g. 2026-11-24T09:00:00Z", field="after"
            ) from None
        if start.tzinfo is None:
            start = start.replace(tzinfo=tz)  # a local time in the trigger's zone
    if not 1 <= count <= 100:
        raise ValidationError("count is from 1 to 100", field="count")
    times = cron.next_times(start, tz, count)
    return {
        "expression": cron.text,
        "timezone": timezone,
        "next": [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in times],
        "description": f"{cron.describe()} ({timezone})",
    }
