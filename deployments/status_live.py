"""The live summary of ``linqra status``: Linqra's metrics read from their Prometheus endpoints.

Where the endpoints are (:func:`discovery_targets`, and ``deployments.status_cli`` for the
order it tries): the nodes of a Ray cluster (each node's metrics export, which carries every
Linqra process's metrics on that node), Ray's service-discovery file, URLs given on the command
line, or ``metrics.port`` of a process without Ray. Each endpoint's Prometheus text is parsed by
``prometheus_client``'s parser (:func:`scrape`); :func:`summarize` turns one scrape, or two,
into the figures the command prints:

* **executions running now** — an estimate from the counters: per process, executions started
  minus executions ended (a runner records both), never below zero, summed;
* **ended executions and model calls over the interval**, with their error rates: two scrapes
  ``interval`` seconds apart, each series' increase (a counter that went down restarted with its
  process: its new value is the increase; a series new in the second scrape counts from 0);
  rate = increase / elapsed seconds; error rate = errors / all;
* **queue depth and the oldest item's age** per queue, and **agent actors live**: gauges the
  supervisor actor samples every ``metrics.sample_seconds``;
* **spend since the processes started**: the cost counter (nanos of its currency). A counter
  restarts at 0 with its process, so this is not "today": today's spend comes from the gateway
  (``GET /v1/analytics/costs``, the store's usage records), see ``deployments.status_cli``.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from linqra.clock import iso
from linqra.metrics.catalogue import (
    AGENT_ACTORS,
    EXECUTIONS,
    EXECUTIONS_STARTED,
    LLM_CALLS,
    LLM_COST,
    QUEUE_DEPTH,
    QUEUE_OLDEST_AGE,
)
from linqra.status import ExecutionStatus

__all__ = [
    "EXECUTION_ERRORS",
    "MODEL_ERRORS",
    "NoEndpoint",
    "Sample",
    "Scrape",
    "discovery_targets",
    "money",
    "render",
    "scrape",
    "summarize",
]

EXECUTION_ERRORS = frozenset({ExecutionStatus.FAILED.value, ExecutionStatus.TIMEOUT.value})
"""Ended executions counted as errors (CANCELLED is a user's choice, not an error)."""
MODEL_ERRORS = frozenset({"error", "failed"})
"""Model calls counted as errors (``failed``: ended after tokens; ``cancelled`` is not one)."""
WANTED = frozenset(
    i.name
    for i in (EXECUTIONS_STARTED, EXECUTIONS, LLM_CALLS, LLM_COST, QUEUE_DEPTH, QUEUE_OLDEST_AGE,
              AGENT_ACTORS)
)  # fmt: skip
DECLARED = {
    i.name: frozenset(i.labels) | {"team"}
    for i in (EXECUTIONS_STARTED, EXECUTIONS, LLM_CALLS, LLM_COST)
}
"""A counter's own labels; the others (Ray's ``WorkerId``, ``NodeAddress``…) name its process."""


class NoEndpoint(Exception):
    """No metrics endpoint was found, or none answered: the message says what to start or set."""


@dataclass(frozen=True, slots=True)
class Sample:
    endpoint: str
    name: str
    """The catalogue's name (Ray's ``ray_`` prefix taken off)."""
    labels: tuple[tuple[str, str], ...]
    value: float

    def label(self, name: str) -> str:
        return dict(self.labels).get(name, "")

    @property
    def process(self) -> tuple[object, ...]:
        """The series' process: its endpoint and the labels its instrument does not declare."""
        own = DECLARED.get(self.name, frozenset())
        return (self.endpoint, tuple(kv for kv in self.labels if kv[0] not in own))


@dataclass
class Scrape:
    """Linqra's samples from every endpoint that answered, read at ``at`` (``time.monotonic``)."""

    endpoints: list[str]
    at: float
    wall: str
    samples: list[Sample] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    def answered(self) -> list[str]:
        return [e for e in self.endpoints if e not in self.errors]

    def of(self, name: str) -> list[Sample]:
        return [s for s in self.samples if s.name == name]

    def of_team(self, team: str) -> Scrape:
        """The same scrape with the per-team counters of ``team`` only (their series carry a
        ``team`` label when ``metrics.team_labels`` is on); gauges are kept whole."""
        kept = [s for s in self.samples if s.name not in DECLARED or s.label("team") == team]
        return Scrape(self.endpoints, self.at, self.wall, kept, self.errors)


# -- finding and reading the endpoints ----------------------------------------------------
def discovery_targets(path: Path) -> list[str]:
    """The ``/metrics`` URLs a Prometheus file-based service-discovery file lists (Ray's
    ``prom_metrics_service_discovery.json``)."""
    try:
        groups = json.loads(path.read_text())
    except FileNotFoundError:
        raise NoEndpoint(
            f"no such file: {path} (Ray writes it in its session directory and links it from "
            "its temp dir, /tmp/ray unless moved, while a cluster runs)"
        ) from None
    except (OSError, ValueError) as exc:
        raise NoEndpoint(f"{path} is not a service-discovery file ({exc})") from None
    targets = [
        str(t)
        for group in (groups if isinstance(groups, list) else [])
        if isinstance(group, dict)
        for t in group.get("targets") or []
    ]
    if not targets:
        raise NoEndpoint(f"{path} lists no targets: is its Ray cluster running?")
    return [f"http://{t}/metrics" for t in targets]


def _normal_name(name: str) -> str:
    # Ray exports Linqra's instruments as ray_linqra_…
    return name[4:] if name.startswith("ray_linqra_") else name


def parse(endpoint: str, text: str) -> list[Sample]:
    """Linqra's samples of one endpoint's Prometheus text (``prometheus_client``'s parser)."""
    from prometheus_client.parser import text_string_to_metric_families

    samples = []
    for family in text_string_to_metric_families(text):
        if not _normal_name(family.name).startswith("linqra_"):
            continue
        for s in family.samples:
            name = _normal_name(s.name)
            if name in WANTED:
                labels = tuple(sorted((str(k), str(v)) for k, v in s.labels.items()))
                samples.append(Sample(endpoint, name, labels, float(s.value)))
    return samples


def scrape(endpoints: Iterable[str], timeout: float = 5.0) -> Scrape:
    """Every endpoint read once (at the same time); one that fails is named in ``errors``."""
    urls = list(dict.fromkeys(endpoints))
    result = Scrape(urls, time.monotonic(), iso())

    def read(url: str) -> tuple[str, str | None, str]:
        try:
            answer = httpx.get(url, timeout=timeout)
            answer.raise_for_status()
            return url, answer.text, ""
        except httpx.HTTPStatusError as exc:
            return url, None, f"HTTP {exc.response.status_code}"
        except httpx.HTTPError as exc:
            return url, None, type(exc).__name__
        except OSError as exc:
            return url, None, type(exc).__name__

    with ThreadPoolExecutor(max_workers=min(16, max(1, len(urls)))) as pool:
        for url, text, error in pool.map(read, urls):
            if text is None:
                result.errors[url] = error
                continue
            try:
                result.samples += parse(url, text)
            except ValueError as exc:  # not Prometheus's text format
                result.errors[url] = f"not Prometheus text ({exc})"
    return result


# -- the figures ------------------------------------------------------------------------------
def _increases(current: Scrape, previous: Scrape, name: str) -> list[tuple[Sample, float]]:
    """Each counter series' increase from ``previous`` to ``current``: a value that went down
    restarted with its process (the new value is the increase); a series ``previous`` lacked
    counts from 0 when its endpoint answered then, else it is left out."""
    before = {(s.endpoint, s.labels): s.value for s in previous.of(name)}
    answered = set(previous.answered())
    out = []
    for s in current.of(name):
        old = before.get((s.endpoint, s.labels))
        if old is None:
            if s.endpoint not in answered:
                continue
            old = 0.0
        out.append((s, s.value - old if s.value >= old else s.value))
    return out


def _by(pairs: Iterable[tuple[Sample, float]], label: str) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for sample, value in pairs:
        totals[sample.label(label)] += value
    return {k: round(v, 9) for k, v in sorted(totals.items())}


def _counts(totals: dict[str, float]) -> dict[str, int]:
    return {k: round(v) for k, v in totals.items()}


def _rate(by_status: dict[str, int], errors: frozenset[str], seconds: float | None) -> Any:
    total = sum(by_status.values())
    failed = sum(n for status, n in by_status.items() if status in errors)
    return {
        "total": total,
        "errors": failed,
        "error_rate": round(failed / total, 4) if total else None,
        "per_second": round(total / seconds, 3) if seconds else None,
        "by_status": {k: n for k, n in by_status.items() if n},
    }


def money(nanos: int) -> str:
    """Nanos of a currency as decimal text with at least 2 decimals: ``0.000012345``."""
    amount = (Decimal(nanos) / Decimal(10**9)).normalize()
    text = f"{amount:f}"
    whole, _, decimals = text.partition(".")
    return f"{whole}.{decimals.ljust(2, '0')}"


def _spend(pairs: Iterable[tuple[Sample, float]]) -> dict[str, Any]:
    by_currency = _by(pairs, "currency")
    return {
        currency or "?": {"nanos": round(n), "amount": money(round(n))}
        for currency, n in by_currency.items()
    }


def _running(scrape: Scrape) -> int:
    started: dict[tuple[object, ...], float] = defaultdict(float)
    for s in scrape.of(EXECUTIONS_STARTED.name):
        started[s.process] += s.value
    for s in scrape.of(EXECUTIONS.name):
        started[s.process] -= s.value
    return round(sum(max(0.0, n) for n in started.values()))


def _gauges(scrape: Scrape) -> tuple[dict[str, Any], int | None]:
    queues: dict[str, dict[str, float]] = {}
    for key, instrument in (("depth", QUEUE_DEPTH), ("oldest_age_seconds", QUEUE_OLDEST_AGE)):
        for s in scrape.of(instrument.name):
            entry = queues.setdefault(s.label("queue"), {})
            entry[key] = max(entry.get(key, 0.0), s.value)  # one supervisor: one series a queue
    for entry in queues.values():
        entry["depth"] = int(entry.get("depth", 0))
    agents = scrape.of(AGENT_ACTORS.name)
    return dict(sorted(queues.items())), int(max(s.value for s in agents)) if agents else None


def summarize(
    current: Scrape, previous: Scrape | None = None, *, team: str | None = None
) -> dict[str, Any]:
    """The live summary of one scrape, with the interval's increases and rates when a
    ``previous`` scrape of the same endpoints is given (see the module); with ``team``, the
    counters of that team only (``metrics.team_labels`` on)."""
    if team is not None:
        current = current.of_team(team)
        previous = previous.of_team(team) if previous is not None else None
    seconds = round(current.at - previous.at, 3) if previous is not None else None
    totals = {n: [(s, s.value) for s in current.of(n)] for n in DECLARED}
    queues, agents = _gauges(current)
    summary: dict[str, Any] = {
        "at": current.wall,
        "endpoints": {"urls": current.endpoints, "answered": current.answered(),
                      "errors": current.errors},
        "interval_seconds": seconds,
        "executions": {
            "running_estimate": _running(current),
            "since_start": _counts(_by(totals[EXECUTIONS.name], "status")),
        },
        "model_calls": {"since_start": _counts(_by(totals[LLM_CALLS.name], "status"))},
        "queues": queues,
        "agent_actors": agents,
        "spend": {"since_start": _spend(totals[LLM_COST.name])},
    }  # fmt: skip
    if previous is not None:
        ended = _counts(_by(_increases(current, previous, EXECUTIONS.name), "status"))
        calls = _counts(_by(_increases(current, previous, LLM_CALLS.name), "status"))
        summary["executions"]["interval"] = _rate(ended, EXECUTION_ERRORS, seconds)
        summary["model_calls"]["interval"] = _rate(calls, MODEL_ERRORS, seconds)
        summary["spend"]["interval"] = _spend(_increases(current, previous, LLM_COST.name))
    return summary


# -- as text --------------------------------------------------------------------------------
def _percent(rate: float | None) -> str:
    return "n/a (none ended)" if rate is None else f"{rate * 100:.1f}%"


def _interval_line(what: str, errors: str, figures: dict[str, Any], seconds: float) -> str:
    return (
        f"last {seconds:g} s: {figures['total']} {what} ({figures['per_second']:g}/s), "
        f"{figures['errors']} {errors}: error rate {_percent(figures['error_rate'])}"
    )


def _amounts(spend: dict[str, Any]) -> str:
    return ", ".join(f"{c} {v['amount']}" for c, v in spend.items()) or "0"


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def render(summary: dict[str, Any], source: str) -> list[str]:
    """The summary as the lines ``linqra status`` prints: a ``live:`` line naming the endpoints,
    then one line a figure, indented under it."""
    pad = " " * 14
    ends = summary["endpoints"]
    lines = [
        f"live:       {len(ends['answered'])} of {len(ends['urls'])} metrics endpoint(s) of "
        f"{source}, read {summary['at'][:19]}Z"
    ]
    lines += [f"  {url} does not answer ({why})" for url, why in ends["errors"].items()]
    seconds = summary["interval_seconds"]
    ex, calls = summary["executions"], summary["model_calls"]
    lines.append(
        f"  executions  {ex['running_estimate']} running now (started - ended per runner "
        "process, all teams)"
    )
    if seconds is not None:
        lines.append(pad + _interval_line("ended", "failed or timed out", ex["interval"], seconds))
        lines.append(
            "  models      " + _interval_line("call(s)", "error(s)", calls["interval"], seconds)
        )
    if summary["queues"]:
        queues = ", ".join(
            f"{q} {v['depth']} waiting (oldest {_age(v.get('oldest_age_seconds', 0))})"
            for q, v in summary["queues"].items()
        )
        lines.append(f"  queues      {queues}")
    else:
        lines.append("  queues      not reported (the supervisor actor samples them, on Ray)")
    agents = summary["agent_actors"]
    lines.append(
        f"  agents      {agents} agent actor(s) live"
        if agents is not None
        else "  agents      not reported (the supervisor actor samples them, on Ray)"
    )
    spend = summary["spend"]
    line = f"  spend       {_amounts(spend['since_start'])} since the processes started"
    if seconds is not None:
        line += f", {_amounts(spend['interval'])} in the last {seconds:g} s"
    lines.append(line)
    if seconds is None:
        lines.append("  (rates: at the next refresh, from the increase since this scrape)")
    else:
        lines.append(
            f"  (rates: the increase between two scrapes {seconds:g} s apart / elapsed time; "
            "counters restart with their process; totals since each process started: --json)"
        )
    return lines
