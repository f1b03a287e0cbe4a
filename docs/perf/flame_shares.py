"""Shares of a py-spy flame graph (SVG), for docs/perf/ray-profile.md.

    .venv/bin/python docs/perf/flame_shares.py docs/perf/ray-runner-b1.gil.svg [--top 40]
    .venv/bin/python docs/perf/flame_shares.py FILE.svg --buckets runner

Rebuilds each sampled stack from the SVG (``fg:x``/``fg:w`` in samples, ``y`` per depth) and
prints the frames with the most inclusive samples (``--top``) and/or the samples grouped into
buckets (``--buckets``): a stack goes to the bucket of its innermost frame that a bucket's
pattern matches (buckets tried in the order listed; generic frames such as asyncio's only when
nothing further out matches), else ``other``.
"""

from __future__ import annotations

import argparse
import html
import re
from collections import Counter, defaultdict
from pathlib import Path

NODE = re.compile(
    r'<g><title>(?P<t>[^<]*)</title><rect x="[^"]*" y="(?P<y>\d+(?:\.\d+)?)"[^>]*'
    r'fg:x="(?P<x>\d+)" fg:w="(?P<w>\d+)"'
)
BUCKETS: dict[str, list[tuple[str, str]]] = {
    # (bucket, regex over "function (file)"): the innermost matching frame decides
    "runner": [
        ("store: SQLite work in its threads", r"_sqlite_writer|sqlite3|SQLiteStore\._run"),
        ("store: hand-off and API on the loop", r"linqra/store/|\(records\.py\)|jobs\.py"),
        ("ray: task/actor submission (.remote)", r"_remote \(ray/|remote_function\.py|actor\.py"),
        (
            "ray: result back (await ObjectRef, deserialise)",
            r"_raylet|serialization\.py|get_objects",
        ),
        ("engine: step logic", r"\(engine\.py\)|interpolation|linqra/steps/|clock\.py|conditions"),
        ("engine: runs, records, definitions", r"\((runner|step_runs|service|definition)\.py\)"),
        ("engine: runs, records, definitions", r"linqra/runs\.py|pydantic"),
        ("actors/ (runner actor, launcher, executor)", r"actors/"),
        ("asyncio / event loop", r"asyncio/"),
    ],
    "gateway": [
        ("store", r"linqra/store/|\(records\.py\)|sqlite3"),
        ("ray: actor calls to the runner (.remote / await)", r"ray/actor\.py|_raylet|get_actor"),
        ("auth + rate limits", r"deployments/auth\.py|linqra/auth/|ratelimit"),
        (
            "route handler + runs",
            r"deployments/routers/|linqra/runs\.py|\((service|definition)\.py\)",
        ),
        ("JSON response / pydantic", r"json|pydantic|responses\.py"),
        ("middleware: limits, headers, audit", r"deployments/(limits|headers|errors)\.py"),
        ("FastAPI / Starlette", r"fastapi/|starlette/"),
        ("Ray Serve replica machinery", r"ray/serve/"),
        ("uvicorn / HTTP parsing", r"uvicorn/|h11|httptools"),
        ("asyncio / event loop", r"asyncio/|uvloop"),
    ],
}


def stacks(svg: Path) -> Counter[tuple[str, ...]]:
    """Self samples per stack (root first)."""
    nodes = sorted(
        (
            float(m["y"]),
            int(m["x"]),
            int(m["w"]),
            re.sub(r":\d+\)", ")", html.unescape(m["t"]).rsplit(" (", 1)[0]),
        )
        for m in NODE.finditer(svg.read_text())
    )
    by_depth: dict[float, list[tuple[int, int, str, int]]] = defaultdict(list)
    paths: dict[int, tuple[str, ...]] = {}
    depths = sorted({n[0] for n in nodes})
    for i, (y, x, w, name) in enumerate(nodes):
        parent = None
        level = depths.index(y)
        if level:
            for px, pw, _pname, pi in by_depth[depths[level - 1]]:
                if px <= x < px + pw:
                    parent = pi
                    break
        paths[i] = (*(paths[parent] if parent is not None else ()), name)
        by_depth[y].append((x, w, name, i))
    child_w: Counter[int] = Counter()
    for i, (y, x, _w, _name) in enumerate(nodes):
        level = depths.index(y)
        if level:
            for px, pw, _pname, pi in by_depth[depths[level - 1]]:
                if px <= x < px + pw:
                    child_w[pi] += nodes[i][2]
                    break
    out: Counter[tuple[str, ...]] = Counter()
    for i, node in enumerate(nodes):
        own = node[2] - child_w[i]
        if own > 0:
            out[paths[i]] += own
    return out


IDLE = re.compile(
    r"epoll_wait|epoll_pwait|pthread_cond_(timed)?wait|sem_(timed)?wait|PyThread_acquire_lock"
    r"|select \(|poll \(selectors|_queue_SimpleQueue_get|Condition\.wait|uv__io_poll|nanosleep"
    r"|futex|sched_yield|clock_nanosleep|do_futex_wait|__lll_lock_wait"
)


def _idle(stack: tuple[str, ...]) -> bool:
    return any(IDLE.search(f) for f in stack[-3:])


GENERIC = re.compile(r"asyncio/|concurrent/|threading\.py|json/|contextlib|uvloop|\(loop\.c\)")


def _bucket(stack: tuple[str, ...], buckets: list[tuple[str, str]]) -> str:
    """The bucket of the innermost frame that a bucket's pattern matches, looking past generic
    frames (asyncio, threads, futures, json) while an application or Ray frame is further out:
    a store call's future hand-off counts as the store's, not asyncio's."""
    for skip_generic in (True, False):
        for frame in reversed(stack):
            if skip_generic and GENERIC.search(frame):
                continue
            for name, pattern in buckets:
                if re.search(pattern, frame):
                    return name
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("svg", type=Path)
    parser.add_argument("--top", type=int, default=0)
    parser.add_argument("--buckets", choices=sorted(BUCKETS))
    parser.add_argument("--skip", default="", help="regex: drop stacks with a matching frame")
    parser.add_argument(
        "--idle",
        action="store_true",
        help="drop stacks whose innermost frames wait (epoll, condition variables, locks, "
        "queues): py-spy's own idle filter does not work on this VM",
    )
    args = parser.parse_args()
    samples = stacks(args.svg)
    if args.skip:
        samples = Counter(
            {s: n for s, n in samples.items() if not any(re.search(args.skip, f) for f in s)}
        )
    if args.idle:
        samples = Counter({s: n for s, n in samples.items() if not _idle(s)})
    total = sum(samples.values())
    print(f"{args.svg.name}: {total} samples")
    if args.buckets:
        shares: Counter[str] = Counter()
        for stack, n in samples.items():
            name = _bucket(stack, BUCKETS[args.buckets])
            shares[name] += n
        for name, n in shares.most_common():
            print(f"{100 * n / total:5.1f} %  {n:6d}  {name}")
    if args.top:
        inclusive: Counter[str] = Counter()
        for stack, n in samples.items():
            for frame in set(stack):
                inclusive[frame] += n
        for frame, n in inclusive.most_common(args.top):
            print(f"{100 * n / total:5.1f} %  {n:6d}  {frame}")


if __name__ == "__main__":
    main()
