"""Quartz cron expressions: fields, special characters, time zones and daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from linqra.errors import ValidationError
from linqra.scheduling.cron import CronExpression, zone


def fires(expression: str, tz: str, after: str, count: int = 4) -> list[str]:
    times = CronExpression(expression).next_times(datetime.fromisoformat(after), zone(tz), count)
    return [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in times]


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        (
            "0 0 12 * * ?",
            "2026-11-24T12:00:00+00:00",
            ["2026-11-25T12:00:00Z", "2026-11-26T12:00:00Z"],
        ),
        (
            "*/20 * * * * ?",
            "2026-01-01T00:00:00+00:00",
            ["2026-01-01T00:00:20Z", "2026-01-01T00:00:40Z"],
        ),
        (
            "0 15 10 ? * MON-FRI",
            "2026-11-27T11:00:00+00:00",
            ["2026-11-30T10:15:00Z", "2026-12-01T10:15:00Z"],
        ),
        (
            "0 0 10 L * ?",
            "2026-01-31T10:00:00+00:00",
            ["2026-02-28T10:00:00Z", "2026-03-31T10:00:00Z"],
        ),
        (
            "0 0 10 L-2 * ?",
            "2026-01-01T00:00:00+00:00",
            ["2026-01-29T10:00:00Z", "2026-02-26T10:00:00Z"],
        ),
        (
            "0 0 10 15W * ?",
            "2026-02-01T00:00:00+00:00",
            ["2026-02-16T10:00:00Z", "2026-03-16T10:00:00Z"],
        ),
        (
            "0 0 10 1W * ?",
            "2026-08-01T00:00:00+00:00",
            ["2026-08-03T10:00:00Z", "2026-09-01T10:00:00Z"],
        ),
        (
            "0 0 10 LW * ?",
            "2026-01-01T00:00:00+00:00",
            ["2026-01-30T10:00:00Z", "2026-02-27T10:00:00Z"],
        ),
        (
            "0 0 10 ? * 6L",
            "2026-01-01T00:00:00+00:00",
            ["2026-01-30T10:00:00Z", "2026-02-27T10:00:00Z"],
        ),
        (
            "0 0 10 ? * FRI#3",
            "2026-01-01T00:00:00+00:00",
            ["2026-01-16T10:00:00Z", "2026-02-20T10:00:00Z"],
        ),
        (
            "0 0 10 ? * L",
            "2026-11-24T00:00:00+00:00",
            ["2026-11-28T10:00:00Z", "2026-12-05T10:00:00Z"],
        ),
        (
            "0 0 0 29 FEB ?",
            "2026-01-01T00:00:00+00:00",
            ["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"],
        ),
        (
            "0 0 0 1 1 ? 2027/2",
            "2026-01-01T00:00:00+00:00",
            ["2027-01-01T00:00:00Z", "2029-01-01T00:00:00Z"],
        ),
        (
            "0 0 22-2/2 * * ?",
            "2026-01-01T00:00:00+00:00",
            ["2026-01-01T02:00:00Z", "2026-01-01T22:00:00Z"],
        ),
        (
            "0 0 12 ? JAN,JUL SUN",
            "2026-01-01T00:00:00+00:00",
            ["2026-01-04T12:00:00Z", "2026-01-11T12:00:00Z"],
        ),
    ],
)
def test_quartz_semantics(expression: str, after: str, expected: list[str]) -> None:
    assert fires(expression, "UTC", after, len(expected)) == expected


def test_time_zones_and_daylight_saving() -> None:
    # 02:30 does not exist in New York on 2026-03-08 (spring forward): that day is skipped
    assert fires("0 30 2 * * ?", "America/New_York", "2026-03-07T00:00:00+00:00", 3) == [
        "2026-03-07T07:30:00Z", "2026-03-09T06:30:00Z", "2026-03-10T06:30:00Z",
    ]  # fmt: skip
    # 01:30 happens twice on 2026-11-01 (fall back): it fires once, at the first
    assert fires("0 30 1 * * ?", "America/New_York", "2026-10-31T12:00:00+00:00", 2) == [
        "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z",
    ]  # fmt: skip
    # asked from inside the repeated hour (its second pass), the next fire is the next day
    assert fires("0 30 1 * * ?", "America/New_York", "2026-11-01T06:10:00+00:00", 1) == [
        "2026-11-02T06:30:00Z"
    ]
    # every 30 minutes across the overlap: the repeated hour fires once
    overlap = fires("0 0/30 * * * ?", "Europe/Paris", "2026-10-24T23:45:00+00:00", 6)
    assert overlap == [
        "2026-10-25T00:00:00Z", "2026-10-25T00:30:00Z", "2026-10-25T02:00:00Z",
        "2026-10-25T02:30:00Z", "2026-10-25T03:00:00Z", "2026-10-25T03:30:00Z",
    ]  # fmt: skip
    assert fires("0 0 9 ? * MON", "Asia/Kolkata", "2026-11-24T00:00:00+00:00", 1) == [
        "2026-11-30T03:30:00Z"
    ]


def test_no_fire_left_ends_the_list() -> None:
    assert fires("0 0 0 1 1 ? 2027", "UTC", "2026-06-01T00:00:00+00:00", 5) == [
        "2027-01-01T00:00:00Z"
    ]
    assert fires("0 0 0 30 FEB ?", "UTC", "2026-06-01T00:00:00+00:00", 1) == []


@pytest.mark.parametrize(
    ("expression", "field", "words"),
    [
        ("0 0 12 * *", "expression", "6 or 7 fields"),
        ("60 0 12 * * ?", "expression.seconds", "out of range 0-59"),
        ("0 61 12 * * ?", "expression.minutes", "out of range"),
        ("0 0 24 * * ?", "expression.hours", "out of range 0-23"),
        ("0 0 12 32 * ?", "expression.day-of-month", "out of range 1-31"),
        ("0 0 12 * 13 ?", "expression.month", "out of range 1-12"),
        ("0 0 12 * FOO ?", "expression.month", "not a number or a name"),
        ("0 0 12 ? * 8", "expression.day-of-week", "out of range 1-7"),
        ("0 0 12 ? * MON#6", "expression.day-of-week", "k from 1 to 5"),
        ("0 0 12 * * * 1969", "expression.year", "out of range"),
        ("0 0 12 * * *", "expression.day-of-month", "exactly one of them must be '?'"),
        ("0 0 12 ? * ?", "expression.day-of-week", "exactly one of them must be '?'"),
        ("0 0/0 12 * * ?", "expression.minutes", "positive"),
        ("0 0 12 L,3 * ?", "expression.day-of-month", "stand alone"),
        ("0 0 12 ,1 * ?", "expression.day-of-month", "empty list item"),
    ],
)
def test_invalid_expressions_name_the_field(expression: str, field: str, words: str) -> None:
    with pytest.raises(ValidationError) as err:
        CronExpression(expression)
    assert err.value.field == field and words in err.value.message


def test_unknown_time_zone() -> None:
    with pytest.raises(ValidationError) as err:
        zone("Mars/Olympus")
    assert err.value.field == "timezone" and "unknown timezone" in err.value.message
    assert zone("UTC").key == "UTC" and datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.ray
def test_cron_preview_over_http(api: Any) -> None:
    out = api.get(
        "/v1/cron/next",
        params={"expression": "0 30 2 * * ?", "timezone": "America/New_York",
                "after": "2026-03-07T00:00:00Z", "count": 3},
    ).json()  # fmt: skip
    assert out["next"] == ["2026-03-07T07:30:00Z", "2026-03-09T06:30:00Z", "2026-03-10T06:30:00Z"]
    assert "02:30:00" in out["description"] and "America/New_York" in out["description"]
    bad = api.get("/v1/cron/next", params={"expression": "0 0 25 * * ?"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "expression.hours"
    bad = api.get("/v1/cron/next", params={"expression": "0 0 1 * * ?", "timezone": "Nowhere/City"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "timezone"
    bad = api.get("/v1/cron/next", params={"expression": "0 0 1 * * ?", "after": "yesterday"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "after"
