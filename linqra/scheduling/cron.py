"""Quartz cron expressions, evaluated as Quartz 2.3.2 evaluates them, in an IANA time zone.

``seconds minutes hours day-of-month month day-of-week [year]``:

==============  ==========  ====================================
field           values      special characters
==============  ==========  ====================================
seconds         0-59        ``, - * /``
minutes         0-59        ``, - * /``
hours           0-23        ``, - * /``
day-of-month    1-31        ``, - * ? / L W`` (``L``, ``L-3``, ``LW``, ``L-3W``, ``15W``)
month           1-12        ``, - * /`` and ``JAN``-``DEC``
day-of-week     1-7 (SUN=1) ``, - * ? / L #`` and ``SUN``-``SAT`` (``L`` = Saturday, ``6L``, ``6#3``)
year (optional) 1970-2199   ``, - * /`` (a range goes upwards)
==============  ==========  ====================================

The reference is Quartz itself (``tests/test_quartz_differential.py`` runs the same cases through
``org.quartz.CronExpression`` 2.3.2 and compares), including what Quartz does that its manual
does not say:

- exactly one of day-of-month and day-of-week is ``?``;
- ``L``, ``L-n``, ``LW`` and ``L-nW`` stand alone: Quartz refuses them in a list (``1,L``);
- a day-of-month list with ``nW`` in it (``5W,20``) fires on the weekday nearest the *smallest*
  listed day only; ``nW`` for a day the month lacks looks past its end (``31W`` fires on Friday
  30 April when 1 May is a Saturday);
- daylight saving: fire times are searched in local wall time, and a wall time is resolved as
  ``java.util.GregorianCalendar`` resolves it — to the *later* of its instants. A time that
  happens twice (fall back) fires once, at its second, standard-time occurrence, and nothing
  fires during the first pass of the repeated hour; a time in the spring-forward gap moves
  forward by the gap and must then still match (``0 30 2 * * ?`` skips that day in New York).
  Where the gap moves the search depends on the path it took there (Lord Howe's half-hour gap),
  so :meth:`CronExpression.next_after` steps through the fields in Quartz's order.

Bounds: instants from :data:`FIRST_INSTANT` to :data:`LAST_INSTANT` (years 1970-2199, the range
Quartz documents); an ``after`` outside them is a :class:`ValidationError` naming it, and no
fire time lies beyond them. A search takes at most :data:`MAX_SEARCH_STEPS` steps, then reports
no fire time (``0 0 0 31 2,4,6,9,11 ?`` from 1970 takes about 2,300 to find none; Quartz itself
can loop forever on ``L-30W``).

Deliberate differences from Quartz 2.3.2, all refusals (400) of text Quartz accepts but reads
against its own manual: a step after a name (``JAN/2``, ``MON-FRI/2``: Quartz drops the step),
``W`` after a range (``1-5W``: Quartz drops the ``W``), a ``0`` step (``5/0``), a missing start
(``/5``), characters after a value (``15WX``), ``?`` or ``n#k`` inside a list, more than 7
fields, year values outside 1970-2199, and increments of 60 (seconds, minutes) or 24 (hours)
inside a range (``0-59/60``). Quartz 2.3.2 stops firing at the current year + 100; linqra at
2199. ``L-nW`` whose day falls before the month's first day fires nothing that month (Quartz
searches forever).
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from linqra.errors import ValidationError
from linqra.scheduling._cron_search import MAX_YEAR, Clock, DaySpec, search_step

__all__ = [
    "FIRST_INSTANT",
    "LAST_INSTANT",
    "MAX_SEARCH_STEPS",
    "CronExpression",
    "cron_preview",
    "zone",
]

log = logging.getLogger(__name__)

FIELDS = ("seconds", "minutes", "hours", "day-of-month", "month", "day-of-week", "year")
FIRST_INSTANT = datetime(1970, 1, 1, tzinfo=UTC)
LAST_INSTANT = datetime(MAX_YEAR, 12, 31, 23, 59, 59, tzinfo=UTC)
MAX_SEARCH_STEPS = 100_000
_RANGES = {
    "seconds": (0, 59),
    "minutes": (0, 59),
    "hours": (0, 23),
    "day-of-month": (1, 31),
    "month": (1, 12),
    "day-of-week": (1, 7),
    "year": (1970, MAX_YEAR),
}
_MONTHS = {m: i for i, m in enumerate(
    ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], 1
)}  # fmt: skip
_DAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], 1)}
_RANGE_TEXT = "from 1970-01-01T00:00:00Z to 2199-12-31T23:59:59Z"


@cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def zone(name: str, field: str = "timezone") -> ZoneInfo:
    """The IANA zone ``name`` or a 400 naming ``field``."""
    if not isinstance(name, str) or not name or len(name) > 64 or ".." in name:
        raise ValidationError("timezone is an IANA name such as Europe/Paris or UTC", field=field)
    try:
        if name not in _zone_names():
            raise ZoneInfoNotFoundError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValidationError(
            f"unknown timezone {name!r}; use an IANA name such as Europe/Paris or UTC", field=field
        ) from None


def _bounded(when: datetime, field: str = "after") -> datetime:
    """``when`` in UTC, or a 400 naming ``field`` when it lies outside the supported range."""
    try:
        utc = when.astimezone(UTC)
    except (OverflowError, ValueError):
        utc = None
    if utc is None or not FIRST_INSTANT <= utc <= LAST_INSTANT:
        raise ValidationError(f"{field} is an instant {_RANGE_TEXT}", field=field)
    return utc


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


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
        self.years = (
            self._values(parts[6], "year") if len(parts) == 7 else self._values("*", "year")
        )
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
        if not _digits(token):
            raise self._fail(name, f"{token!r} is not a number" + (
                f" or a name ({', '.join(names)})" if names else ""
            ))  # fmt: skip
        value = int(token)
        low, high = _RANGES[name]
        if not low <= value <= high:
            raise self._fail(name, f"{value} is out of range {low}-{high}")
        return value

    def _values(self, text: str, name: str) -> tuple[int, ...]:
        low, high = _RANGES[name]
        out: set[int] = set()
        for item in text.split(","):
            if not item:
                raise self._fail(name, "empty list item")
            base, slash, step_text = item.partition("/")
            step = 1
            if slash:
                if not _digits(step_text) or int(step_text) == 0:
                    raise self._fail(name, f"increment {step_text!r} must be a positive number")
                step = int(step_text)
                if step > high and name != "year":  # as Quartz: below 60, 24, 32, 13, 8
                    raise self._fail(name, f"increment {step} is larger than the field's range")
                if not _digits(base.partition("-")[0] or "0") and base != "*":
                    raise self._fail(name, f"{item!r}: a step follows a number or '*' (1/2)")
            if base == "*":
                start, end = low, high
            elif "-" in base:
                a, _, b = base.partition("-")
                start, end = self._number(a, name), self._number(b, name)
            else:
                start = self._number(base, name)
                end = high if slash else start
            if end < start and name == "year":
                raise self._fail(name, f"{base!r}: a year range goes upwards, e.g. 2026-2028")
            if end < start:  # a range that wraps (FRI-MON, 22-2)
                span = list(range(start, high + 1)) + list(range(low, end + 1))
            else:
                span = list(range(start, end + 1))
            out.update(span[::step])
        return tuple(sorted(out))

    def _dom(self, text: str) -> DaySpec:
        name = "day-of-month"
        if text == "?":
            return DaySpec(any=True)
        if "L" in text:
            match = re.fullmatch(r"L(?:-([0-9]{1,2}))?(W?)", text)
            if match is None:
                raise self._fail(name, f"{text!r}: L, L-n, LW and L-nW stand alone (Quartz "
                                 "refuses them in a list or with other values)")  # fmt: skip
            offset = int(match.group(1) or 0)
            if offset > 30:
                raise self._fail(name, "L-n needs n from 0 to 30")
            return DaySpec(last=True, last_offset=offset, weekday=bool(match.group(2)))
        if "W" not in text:
            return DaySpec(values=self._values(text, name))
        values: set[int] = set()
        for item in text.split(","):
            if item.endswith("W"):
                if not re.fullmatch(r"[0-9]{1,2}W", item):
                    raise self._fail(name, f"{item!r}: W follows one day, e.g. 15W")
                values.add(self._number(item[:-1], name))
            else:
                values.update(self._values(item, name))
        return DaySpec(values=tuple(sorted(values)), weekday=True)

    def _dow(self, text: str) -> DaySpec:
        name = "day-of-week"
        if text == "?":
            return DaySpec(any=True)
        if text == "L":
            return DaySpec(values=(7,))
        if match := re.fullmatch(r"([1-7]|[A-Z]{3})L", text):
            return DaySpec(last_of=self._number(match.group(1), name))
        if match := re.fullmatch(r"([1-7]|[A-Z]{3})#([0-9])", text):
            nth = int(match.group(2))
            if not 1 <= nth <= 5:
                raise self._fail(name, "n#k needs k from 1 to 5")
            return DaySpec(nth=(self._number(match.group(1), name), nth))
        if "L" in text or "#" in text:
            raise self._fail(name, f"{text!r}: nL and n#k stand alone in day-of-week")
        return DaySpec(values=self._values(text, name))

    # -- evaluation (each step of the search: linqra.scheduling._cron_search) ----------
    def next_after(self, after: datetime, tz: ZoneInfo) -> datetime | None:
        """The first fire time strictly after ``after`` (aware), in UTC; ``None`` if none is left
        up to :data:`LAST_INSTANT`. ``after`` outside the supported range is a ValidationError."""
        deadline = _bounded(after) + timedelta(seconds=1)  # Quartz's "afterTime"
        clock = Clock(tz, deadline.replace(microsecond=0))
        for _ in range(MAX_SEARCH_STEPS):
            if clock.year > MAX_YEAR:
                return None
            step = search_step(self, clock, deadline)
            if step == "fire":
                found = clock.instant()
                return found if found <= LAST_INSTANT else None
            if step == "none":
                return None
        log.warning("cron %r: no fire time found in %d steps", self.text, MAX_SEARCH_STEPS)
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
            clock = f"at {self.hours[0]:02d}:{self.minutes[0]:02d}:{self.seconds[0]:02d}"
            said = [s for s in said if not s.startswith(("second ", "minute ", "hour "))]
            return ", ".join([clock, *said]) if said else f"{clock}, every day"
        return ", ".join(said) if said else "every second"


def cron_preview(
    expression: str, timezone: str = "UTC", after: str | None = None, count: int = 5
) -> dict[str, Any]:
    """``{"next": [ISO-8601 UTC instants], "description": …}`` for ``GET /v1/cron/next``.

    ``after`` (default now) is an ISO-8601 instant from 1970-01-01T00:00:00Z to
    2199-12-31T23:59:59Z; one without an offset is a local time in ``timezone``. Any bad argument
    is a ValidationError naming it."""
    cron = CronExpression(expression)
    tz = zone(timezone)
    if after is None:
        start = datetime.now(UTC)
    else:
        try:
            if not isinstance(after, str) or len(after) > 64:
                raise ValueError(after)
            start = datetime.fromisoformat(after.replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError(
                "after is an ISO-8601 instant, e.g. 2026-11-24T09:00:00Z", field="after"
            ) from None
        if start.tzinfo is None:
            start = start.replace(tzinfo=tz)  # a local time in the trigger's zone
    start = _bounded(start)
    if not isinstance(count, int) or not 1 <= count <= 100:
        raise ValidationError("count is from 1 to 100", field="count")
    times = cron.next_times(start, tz, count)
    return {
        "expression": cron.text,
        "timezone": timezone,
        "next": [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in times],
        "description": f"{cron.describe()} ({timezone})",
    }
