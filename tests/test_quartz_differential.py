"""linqra's cron evaluation against Quartz itself (``org.quartz.CronExpression`` 2.3.2).

``tests/support/quartz/QuartzNext.java`` is compiled once per session against the Debian
package's jar (``scripts/ensure-quartz.sh``, run by ``make install-test``) and answers a whole
batch of cases in one JVM: every expression below in four time zones (including Lord Howe's
half-hour daylight saving), after instants around each zone's daylight-saving changes, month
ends and a leap day. Accepting or refusing an expression and every fire time must agree.
"""

from __future__ import annotations

import glob
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from linqra.errors import ValidationError
from linqra.scheduling.cron import CronExpression, zone

SOURCE = Path(__file__).parent / "support" / "quartz" / "QuartzNext.java"
COUNT = 6  # fire times asked for per case
# a short-lived JVM: the quick compiler only, one GC thread (halves the CPU time on 2 cores)
QUICK_JVM = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xshare:auto")

EXPRESSIONS = [
    # every second/minute/hour, lists, steps and wrapping ranges, through DST changes
    "*/20 * * * * ?",
    "0 0/30 * * * ?",
    "0 10,35 * * * ?",
    "30 */7 1-3 * * ?",
    "15,45 59 * * * ?",
    "0 0 22-2/2 * * ?",
    "0 0 * * * ?",
    # daily times that fall in a gap or happen twice
    "0 30 2 * * ?",
    "0 30 1 * * ?",
    "0 45 2 * * ?",
    "0 0 0 * * ?",
    "0 15 10 ? * MON-FRI",
    # day-of-month: L, L-n, W and the lists Quartz accepts or refuses
    "0 0 12 L * ?",
    "0 0 2 L-2 * ?",
    "0 0 12 LW * ?",
    "0 30 2 L-1W * ?",
    "0 0 12 L-3W * ?",
    "0 0 12 15W * ?",
    "0 0 1 1W * ?",
    "0 0 12 31W * ?",
    "0 0 12 30W * ?",
    "0 0 12 5W,20 * ?",
    "0 0 12 20,5W * ?",
    "0 0 12 5W,3 * ?",
    "0 0 12 1,L * ?",
    "0 0 12 LW,15 * ?",
    "0 0 12 1,15,L * ?",
    "0 0 0 29,30,31 * ?",
    "0 30 2 29 2 ?",
    # day-of-week: names, nL, n#k, L
    "0 0 12 ? * 6L",
    "0 0 12 ? * FRI#3",
    "0 0 2 ? * SUN",
    "0 0 12 ? * L",
    "0 0 12 ? * 2#5",
    # years
    "0 0 0 1 1 ? 2027/2",
    "0 0 12 29 2 ? 2028-2032",
    "0 0 12 * * ? 2028-2026",
    # refused by both
    "0 0 12 * * *",
    "0 0 12 ? * ?",
    "60 0 12 * * ?",
    "0 0 12 ? * MON#6",
    "0 0 12 L-31 * ?",
    "0 0 12 32W * ?",
    "0/60 0 12 * * ?",
]
# each zone's spring-forward and fall-back changes (UTC has none: two month ends instead)
CHANGES = {
    "Europe/Paris": ("2026-03-29T01:00:00", "2026-10-25T01:00:00"),
    "America/New_York": ("2026-03-08T07:00:00", "2026-11-01T06:00:00"),
    "Australia/Lord_Howe": ("2026-10-03T15:30:00", "2027-04-03T15:00:00"),
}
MONTH_ENDS = ("2028-02-28T13:00:00", "2026-12-31T22:00:00")  # a leap day ahead; a year end


def _instant(text: str, minutes: int = 0) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC) + timedelta(minutes=minutes)


def _afters(tz: str) -> list[datetime]:
    """Before and just after the spring change, before and inside the fall-back overlap."""
    if tz == "UTC":
        return [_instant(t) for t in MONTH_ENDS]
    spring, fall = CHANGES[tz]
    return [_instant(spring, -150), _instant(spring, 25), _instant(fall, -150),
            _instant(fall, -20), _instant(MONTH_ENDS[len(tz) % 2])]  # fmt: skip


ZONES = [*CHANGES, "UTC"]
CASES = [(e, tz, after) for e in EXPRESSIONS for tz in ZONES for after in _afters(tz)]


def _quartz_jar() -> str:
    jars = sorted(glob.glob("/usr/share/java/quartz2*.jar"))
    assert jars, "Quartz 2.3.2 is not installed: run scripts/ensure-quartz.sh (make install-test)"
    return jars[0]


@pytest.fixture(scope="session")
def quartz_next(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """The command that runs QuartzNext, compiled once for the session."""
    javac, java = shutil.which("javac"), shutil.which("java")
    assert javac and java, "a JDK is needed: run scripts/ensure-quartz.sh (make install-test)"
    classes = tmp_path_factory.mktemp("quartz")
    classpath = _quartz_jar()
    subprocess.run(
        [javac, *(f"-J{flag}" for flag in QUICK_JVM), "-d", str(classes), "-cp", classpath,
         str(SOURCE)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    yield [java, *QUICK_JVM, "-cp", f"{classes}:{classpath}", "QuartzNext"]


def _by_quartz(command: list[str]) -> list[tuple[str, list[datetime] | str]]:
    lines = "".join(
        f"{e}\t{tz}\t{int(after.timestamp() * 1000)}\t{COUNT}\n" for e, tz, after in CASES
    )
    done = subprocess.run(command, input=lines, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out: list[tuple[str, list[datetime] | str]] = []
    for line in done.stdout.splitlines():
        kind, _, rest = line.partition("\t")
        if kind == "OK":
            stamps = [int(ms) for ms in rest.split(",") if ms]
            out.append((kind, [datetime.fromtimestamp(ms / 1000, UTC) for ms in stamps]))
        else:
            out.append((kind, rest))
    assert len(out) == len(CASES), done.stderr
    return out


def _by_linqra(expression: str, tz: str, after: datetime) -> tuple[str, list[datetime] | str]:
    try:
        cron = CronExpression(expression)
    except ValidationError as err:
        return "ERR", err.message
    return "OK", cron.next_times(after, zone(tz), COUNT)


def _iso(value: datetime | list[datetime] | str) -> str:
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%dT%H:%M:%SZ}"
    return value if isinstance(value, str) else " ".join(map(_iso, value))


def test_linqra_fires_when_quartz_fires(quartz_next: list[str]) -> None:
    assert len(CASES) >= 300
    differences = []
    kinds = set()
    for (expression, tz, after), (kind, quartz) in zip(CASES, _by_quartz(quartz_next), strict=True):
        assert kind != "TIMEOUT", f"Quartz did not answer {expression!r} in {tz} after {after}"
        ours, linqra = _by_linqra(expression, tz, after)
        kinds.add(kind)
        if ours != kind or (kind == "OK" and linqra != quartz):
            differences.append(f"{expression!r} {tz} after {_iso(after)}: "
                               f"Quartz {kind} {_iso(quartz)}, linqra {ours} {_iso(linqra)}")  # fmt: skip
    assert not differences, "\n".join(differences[:20])
    assert kinds == {"OK", "ERR"}  # both kinds of answer were compared
