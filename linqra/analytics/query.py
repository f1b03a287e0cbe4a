"""What an analytics query may ask, and its bounds: time ranges, buckets, group-bys, sorts, pages.

Every refusal is a :class:`~linqra.errors.ValidationError` (400) naming the parameter at fault,
so the HTTP API and a Python caller see the same errors. The limits are documented in
``docs/analytics.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from linqra.clock import iso, parse_iso, query_instant, utcnow
from linqra.errors import ValidationError
from linqra.store.aggregation import Key

__all__ = [
    "BUCKETS",
    "DEFAULT_RANGE_DAYS",
    "MAX_GROUP_BY",
    "MAX_HOURLY_RANGE_DAYS",
    "MAX_PAGE",
    "MAX_RANGE_DAYS",
    "MAX_TOP",
    "PERCENTILES",
    "Page",
    "TimeRange",
    "bucket_key",
    "bucket_start",
    "parse_group_by",
    "parse_sort",
    "time_range",
]

MAX_RANGE_DAYS = 92
"""The longest range one query covers."""
MAX_HOURLY_RANGE_DAYS = 14
"""The longest range with ``bucket=hour`` (336 buckets a group)."""
DEFAULT_RANGE_DAYS = 7
"""The range when ``from`` is not given: the 7 days before ``to`` (default: now)."""
MAX_GROUP_BY = 3
MAX_PAGE = 100
MAX_OFFSET = 1_000_000
MAX_TOP = 100
BUCKETS = ("hour", "day")
PERCENTILES = (0.5, 0.95, 0.99)


@dataclass(frozen=True, slots=True)
class TimeRange:
    """``[start, end)`` as stored text compares (``iso`` instants)."""

    start: str
    end: str

    def where(self) -> dict[str, str]:
        return {"$gte": self.start, "$lt": self.end}


@dataclass(frozen=True, slots=True)
class Page:
    limit: int = 50
    offset: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_PAGE:
            raise ValidationError(f"limit is 1 to {MAX_PAGE}", field="limit")
        if not 0 <= self.offset <= MAX_OFFSET:
            raise ValidationError(f"offset is 0 to {MAX_OFFSET:,}", field="offset")

    def envelope(self, items: list[Any], total: int) -> dict[str, Any]:
        end = self.offset + self.limit
        return {
            "items": items,
            "total": total,
            "limit": self.limit,
            "offset": self.offset,
            "next_offset": end if end < total else None,
        }


def _moment(text: str) -> datetime:
    return parse_iso(text if "T" in text else f"{text}T00:00:00+00:00")


def time_range(
    start: str | None, end: str | None, bucket: str | None = None, *, now: datetime | None = None
) -> TimeRange:
    """``[from, to)`` from the query's ``from`` and ``to`` (ISO dates or instants with a zone),
    checked against the documented maximum (400 naming ``from`` when it is longer)."""
    check_bucket(bucket)
    begin_text, end_text = query_instant(start, "from"), query_instant(end, "to")
    finish = _moment(end_text) if end_text else (now or utcnow())
    begin = _moment(begin_text) if begin_text else finish - timedelta(days=DEFAULT_RANGE_DAYS)
    if finish <= begin:
        raise ValidationError("to must be after from", field="to")
    longest = MAX_HOURLY_RANGE_DAYS if bucket == "hour" else MAX_RANGE_DAYS
    if finish - begin > timedelta(days=longest):
        days = (finish - begin) / timedelta(days=1)
        what = "with bucket=hour " if bucket == "hour" else ""
        raise ValidationError(
            f"the range from {iso(begin)} to {iso(finish)} is {days:.1f} days; a query "
            f"{what}covers at most {longest} days (ask for several ranges)",
            field="from",
        )
    return TimeRange(iso(begin), iso(finish))


def check_bucket(bucket: str | None) -> None:
    if bucket is not None and bucket not in BUCKETS:
        raise ValidationError(
            f"bucket is one of {', '.join(BUCKETS)}, not {bucket!r}", field="bucket"
        )


def bucket_key(bucket: str | None, field: str) -> Key | None:
    """The group key of a ``bucket`` (``hour``, ``day``) of the instants in ``field``."""
    check_bucket(bucket)
    if bucket == "hour":
        return Key("bucket", field, "hour")
    if bucket == "day":
        return Key("bucket", field, "day")
    return None


def bucket_start(value: Any) -> str | None:
    """A bucket key (``2026-11-24T06`` or ``2026-11-24``) as the instant it starts."""
    if not isinstance(value, str) or len(value) not in (10, 13):
        return None
    return f"{value}:00:00Z" if len(value) == 13 else f"{value}T00:00:00Z"


def parse_group_by(
    text: str | None, dims: Mapping[str, Key], default: Sequence[str]
) -> tuple[Key, ...]:
    """``group_by=a,b`` as keys (400 naming ``group_by`` for an unknown, repeated or extra one)."""
    names = [n.strip() for n in (text or "").split(",") if n.strip()] or list(default)
    if len(names) > MAX_GROUP_BY:
        raise ValidationError(f"group_by takes at most {MAX_GROUP_BY} names", field="group_by")
    if len(set(names)) < len(names):
        raise ValidationError("group_by names a dimension twice", field="group_by")
    for name in names:
        if name not in dims:
            raise ValidationError(
                f"unknown group_by {name[:64]!r}; one of {', '.join(sorted(dims))}",
                field="group_by",
            )
    return tuple(dims[n] for n in names)


def parse_sort(text: str | None, choices: Mapping[str, tuple[str, int] | None]) -> tuple[Any, ...]:
    """``sort`` as an order entry (``None``: by the group keys); 400 naming ``sort`` else."""
    name = text or "key"
    if name not in choices:
        raise ValidationError(
            f"sort is one of {', '.join(choices)}, not {name[:64]!r}", field="sort"
        )
    entry = choices[name]
    return () if entry is None else (entry,)
