"""Quartz cron expressions: fields, special characters, time zones, daylight-saving changes and
the supported range of instants (tests/test_quartz_differential.py compares with Quartz itself)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from linqra.errors import ValidationError
from linqra.scheduling import cron
from linqra.scheduling.cron import CronExpression, cron_preview, zone


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
        (  # the weekday nearest the day before the last
            "0 0 10 L-1W * ?",
            "2026-01-01T00:00:00+00:00",
            ["2026-01-30T10:00:00Z", "2026-02-27T10:00:00Z", "2026-03-30T10:00:00Z"],
        ),
        (  # a W list: Quartz takes the weekday nearest the smallest listed day, and only it
            "0 0 10 5W,20 * ?",
            "2026-01-01T00:00:00+00:00",
            [
                "2026-01-05T10:00:00Z",
                "2026-02-05T10:00:00Z",
                "2026-03-05T10:00:00Z",
                "2026-04-06T10:00:00Z",
            ],
        ),
        (
            "0 0 10 20,5W * ?",
            "2026-03-10T00:00:00+00:00",
            ["2026-04-06T10:00:00Z", "2026-05-05T10:00:00Z"],
        ),
        (  # 3 is the smallest: the 3rd, or the nearest weekday (Friday 2 January)
            "0 0 10 5W,3 * ?",
            "2026-01-01T00:00:00+00:00",
            ["2026-01-02T10:00:00Z", "2026-02-03T10:00:00Z"],
        ),
        (  # April has no 31st: Quartz looks past it (1 May 2027 is a Saturday → Friday 30 April)
            "0 0 10 31W * ?",
            "2027-04-01T00:00:00+00:00",
            ["2027-04-30T10:00:00Z", "2027-05-31T10:00:00Z", "2027-07-30T10:00:00Z"],
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
    assert fires("0 0 9 ? * MON", "Asia/Kolkata", "2026-11-24T00:00:00+00:00", 1) == [
        "2026-11-30T03:30:00Z"
    ]


def test_a_repeated_local_time_fires_once_at_its_second_occurrence() -> None:
    # 01:30 happens twice in New York on 2026-11-01 (EDT 05:30Z, then EST 06:30Z): Quartz fires
    # the second, standard-time one
    assert fires("0 30 1 * * ?", "America/New_York", "2026-10-31T12:00:00+00:00", 2) == [
        "2026-11-01T06:30:00Z", "2026-11-02T06:30:00Z",
    ]  # fmt: skip
    # asked during the first pass, after 01:30 EDT: the wall clock has passed 01:30, so next day
    assert fires("0 30 1 * * ?", "America/New_York", "2026-11-01T05:40:00+00:00", 1) == [
        "2026-11-02T06:30:00Z"
    ]


def test_minute_triggers_run_through_the_repeated_hour_once_as_quartz_does() -> None:
    # Paris falls back at 03:00 CEST (01:00Z) to 02:00 CET: 02:00 and 02:30 fire once each, in
    # standard time, and nothing fires during the first pass (00:00Z-01:00Z)
    assert fires("0 0/30 * * * ?", "Europe/Paris", "2026-10-24T23:45:00+00:00", 6) == [
        "2026-10-25T01:00:00Z", "2026-10-25T01:30:00Z", "2026-10-25T02:00:00Z",
        "2026-10-25T02:30:00Z", "2026-10-25T03:00:00Z", "2026-10-25T03:30:00Z",
    ]  # fmt: skip
    # asked from inside the first pass (02:10 CEST): the next is 02:30 CET
    assert fires("0 0/30 * * * ?", "Europe/Paris", "2026-10-25T00:10:00+00:00", 2) == [
        "2026-10-25T01:30:00Z", "2026-10-25T02:00:00Z",
    ]  # fmt: skip


def test_a_half_hour_gap_moves_the_search_as_quartz_does() -> None:
    # Lord Howe springs from 02:00 to 02:30 (15:30Z on 2026-10-03). Quartz reaches 02:10, which
    # does not exist, reads it as 02:40 and goes on from there: 02:35 is not fired that night
    assert fires("0 10,35 * * * ?", "Australia/Lord_Howe", "2026-10-03T14:50:00+00:00", 3) == [
        "2026-10-03T15:05:00Z", "2026-10-03T16:10:00Z", "2026-10-03T16:35:00Z",
    ]  # fmt: skip


def test_no_fire_left_ends_the_list() -> None:
    assert fires("0 0 0 1 1 ? 2027", "UTC", "2026-06-01T00:00:00+00:00", 5) == [
        "2027-01-01T00:00:00Z"
    ]
    assert fires("0 0 0 30 FEB ?", "UTC", "2026-06-01T00:00:00+00:00", 1) == []
    # the last fire time of the supported range, and none after it
    assert cron_preview("* * * * * ?", after="2199-12-31T23:59:58Z", count=3)["next"] == [
        "2199-12-31T23:59:59Z"
    ]
    # 23:59:59 on 2199-12-31 in New York is 2200-01-01T04:59:59Z, outside the range
    assert (
        cron_preview("59 59 23 31 12 ? 2199", "America/New_York", "2199-12-31T00:00:00Z")["next"]
        == []
    )


@pytest.mark.parametrize(
    ("after", "timezone"),
    [
        ("9999-12-31T23:59:59Z", "UTC"),
        ("9999-12-31T23:59:59", "Pacific/Kiritimati"),
        ("0001-01-01T00:00:00+01:00", "UTC"),
        ("0001-01-01T00:00:00", "Asia/Tokyo"),
        ("1969-12-31T23:59:59Z", "UTC"),
        ("2200-01-01T00:00:00Z", "UTC"),
        ("2026-01-01T00:00:00+25:00", "UTC"),
        ("2026-01-01T00:00:00Z" + " " * 60, "UTC"),
    ],
)
def test_after_outside_the_supported_range_is_a_400_naming_after(after: str, timezone: str) -> None:
    with pytest.raises(ValidationError) as err:
        cron_preview("0 0 12 * * ?", timezone, after)
    assert err.value.field == "after"
    with pytest.raises(ValidationError) as err:  # the scheduler's entry point refuses it too
        CronExpression("0 0 12 * * ?").next_after(datetime(9999, 12, 31, tzinfo=UTC), zone("UTC"))
    assert err.value.field == "after"


def test_a_search_for_the_next_fire_time_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    # Quartz 2.3.2 loops forever on this one from late January 2027 (February's L-30 is the 29th
    # of January); linqra fires nothing in February and goes on
    assert fires("0 0 12 L-30W * ?", "UTC", "2027-01-30T00:00:00+00:00", 3) == [
        "2027-03-01T12:00:00Z", "2027-05-03T12:00:00Z", "2027-07-01T12:00:00Z",
    ]  # fmt: skip
    # the longest searches end: a fifth Monday in February, 1970 to 2199
    assert fires("0 0 0 ? 2 2#5", "UTC", "1970-01-01T00:00:00+00:00", 100)[-1] == (
        "2196-02-29T00:00:00Z"
    )
    assert fires("0 0 0 30 2 ?", "Pacific/Kiritimati", "1970-01-01T00:00:00+00:00", 1) == []
    # past MAX_SEARCH_STEPS a search gives up: no fire time, no error
    monkeypatch.setattr(cron, "MAX_SEARCH_STEPS", 20)
    assert fires("0 0 0 ? 2 2#5", "UTC", "1970-01-01T00:00:00+00:00", 1) == []


_TOKENS = ["*", "?", "L", "W", "#", "/", "-", ",", "0", "1", "5", "7", "15", "31", "60", "2026",
           "2300", "JAN", "MON", "LW", "L-3", "\u00b2", "\u0663", "\u017f", " "]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    expression=st.lists(st.sampled_from(_TOKENS), max_size=16).map("".join)
    | st.lists(
        st.lists(st.sampled_from(_TOKENS), min_size=1, max_size=3).map("".join),
        min_size=6,
        max_size=7,
    ).map(" ".join),
    timezone=st.sampled_from(["UTC", "Europe/Paris", "Australia/Lord_Howe", "America", "x/../y"])
    | st.text(max_size=8),
    after=st.none()
    | st.datetimes(timezones=st.sampled_from([None, UTC, zone("Pacific/Kiritimati")])).map(
        lambda d: d.isoformat()
    )
    | st.text(max_size=30),
    count=st.integers(min_value=-5, max_value=200),
)
def test_any_input_gives_fire_times_or_a_400_naming_the_field(
    expression: str, timezone: str, after: str | None, count: int
) -> None:
    try:
        out = cron_preview(expression, timezone, after, count)
    except ValidationError as err:
        assert err.field is not None
        assert err.field.split(".")[0] in ("expression", "timezone", "after", "count")
    else:
        assert len(out["next"]) <= count and out["next"] == sorted(out["next"])


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
        ("0 0 12 1,L * ?", "expression.day-of-month", "stand alone (Quartz refuses them"),
        ("0 0 12 LW,15 * ?", "expression.day-of-month", "stand alone"),
        ("0 0 12 1,15,L * ?", "expression.day-of-month", "stand alone"),
        ("0 0 12 L-1W,5 * ?", "expression.day-of-month", "stand alone"),
        ("0 0 12 1-5W * ?", "expression.day-of-month", "W follows one day"),
        ("0 0 12 15WX * ?", "expression.day-of-month", "is not a number"),
        ("0 0 12 * * ? 2028-2026", "expression.year", "a year range goes upwards"),
        ("0 0 12 * * ? 2200", "expression.year", "out of range 1970-2199"),
        ("0 0 12 ? JAN/2 *", "expression.month", "a step follows a number or '*'"),
        ("0 0 12 ? * MON-FRI/2", "expression.day-of-week", "a step follows a number or '*'"),
        ("0/60 0 12 * * ?", "expression.seconds", "larger than the field's range"),
        ("0 0 */24 * * ?", "expression.hours", "larger than the field's range"),
        ("\u00b2 0 12 * * ?", "expression.seconds", "not a number"),
        ("0 0 12 L-\u0663 * ?", "expression.day-of-month", "stand alone"),
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
    for name in ("America", "Etc", "posix", "zone.tab", "UTC\x00"):  # a folder, a data file
        with pytest.raises(ValidationError) as err:
            zone(name)
        assert err.value.field == "timezone"
    assert zone("UTC").key == "UTC" and datetime(2026, 1, 1, tzinfo=UTC)


def test_cron_preview_over_http(client: TestClient) -> None:
    api = client
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
    far = {"expression": "0 0 1 * * ?", "after": "9999-12-31T23:59:59Z"}
    bad = api.get("/v1/cron/next", params=far)
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "after"
    bad = api.get("/v1/cron/next", params={"expression": "0 0 12 * * ? 2028-2026"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "expression.year"
    w_list = {"expression": "0 0 12 5W,20 * ?", "after": "2026-01-01T00:00:00Z", "count": 2}
    assert api.get("/v1/cron/next", params=w_list).json()["next"] == [
        "2026-01-05T12:00:00Z", "2026-02-05T12:00:00Z",
    ]  # fmt: skip
