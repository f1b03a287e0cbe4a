"""Step targets: the port every kind of workflow step implements, and its registry.

A :class:`StepTarget` validates its steps at definition time and runs one
:class:`StepCall` (a step with its inputs already interpolated) at run time.
Its ``kind`` says where it runs: ``inline`` in the runner (cheap, pure: no
process hop), ``task`` as a Ray task (CPU-bound), ``io`` as a coroutine in an
async actor pool (HTTP, LLM, vector search). A step's ``executor`` field
overrides the kind.

Later capabilities add targets (``openai``/``gemini``/…, ``milvus``,
``knowledge-hub``, ``agent``, ``workflow``) by registering them; the engine
never names one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from linqra.errors import ValidationError

if TYPE_CHECKING:
    from linqra.config import Settings
    from linqra.launcher import Launcher
    from linqra.system import System
    from linqra.workflows.definition import Step

__all__ = [
    "ExecutorKind",
    "StepCall",
    "StepContext",
    "StepTarget",
    "TargetRegistry",
    "WorkerLost",
]

ExecutorKind = Literal["inline", "task", "io"]


class WorkerLost(Exception):
    """The process running a step died before it answered (its node was lost, it crashed): the
    step may or may not have run. An executor raises it for its runtime's own errors of that
    kind; the engine sends the step to another worker (:func:`linqra.workflows.calls.execute`).
    ``restarting``: the worker is being started again, so the call is tried again once it is."""

    def __init__(self, message: str, *, restarting: bool = False) -> None:
        super().__init__(message)
        self.restarting = restarting

    def __reduce__(self) -> tuple[Any, ...]:  # pickled across Ray with its keyword intact
        return (_worker_lost, (str(self), self.restarting))


def _worker_lost(message: str, restarting: bool) -> WorkerLost:
    return WorkerLost(message, restarting=restarting)


@dataclass(frozen=True, slots=True)
class StepCall:
    """One attempt-able unit of work: a step with its inputs resolved."""

    execution_id: str
    team_id: str
    step: int
    target: str
    action: str | None
    intent: str | None
    params: Mapping[str, Any]
    payload: Any
    headers: Mapping[str, str]
    llm_config: Mapping[str, Any] | None
    stream: bool
    kind: ExecutorKind
    timeout: float
    max_attempts: int
    backoff_initial: float
    backoff_max: float
    backoff_multiplier: float
    executed_by: str | None = None
    """who started the execution (a user id, or ``key:<id>`` for an API or widget key)"""
    trace: str | None = None
    """the step's span as a W3C ``traceparent`` (:mod:`linqra.tracing`), ``None`` untraced"""

    def inputs(self) -> dict[str, Any]:
        """The resolved inputs as recorded in the execution record."""
        out: dict[str, Any] = {"target": self.target}
        for name in ("action", "intent", "payload", "llm_config"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.params:
            out["params"] = dict(self.params)
        if self.headers:
            out["headers"] = {
                k: ("***" if k.lower() in _SECRET_HEADERS else v) for k, v in self.headers.items()
            }
        return out


_SECRET_HEADERS = frozenset(
    {"authorization", "x-api-key", "api-key", "cookie", "proxy-authorization"}
)


@dataclass(frozen=True, slots=True)
class StepContext:
    """What a target may use while it runs: the process's one :class:`~linqra.system.System`
    (its settings, services, HTTP clients and launcher). Built once per process by
    ``System.open``; targets never build services of their own."""

    system: System

    @property
    def settings(self) -> Settings:
        return self.system.settings

    @property
    def launcher(self) -> Launcher:
        return self.system.launcher


class StepTarget(Protocol):
    """What a kind of step does."""

    name: str
    kind: ExecutorKind
    url_intent: bool
    """Whether ``intent`` is a URL: values interpolated into it are URL-encoded."""
    pure: bool
    """No side effect, and the same result from the same inputs (``transform``, ``noop``): run
    inline, its end record may be written together with its neighbours' (the engine's
    write-behind, :class:`~linqra.workflows.step_runs.PureRecords`)."""

    def validate(self, step: Step, field: str) -> None:
        """Raise :class:`ValidationError` (naming ``field``…) if the step is malformed."""

    async def run(self, call: StepCall, ctx: StepContext) -> Any:
        """Do the work once; return JSON-compatible data or raise (``StepError`` for advice)."""


class TargetRegistry:
    """Step targets by name; registered services resolve to the service target."""

    def __init__(
        self, targets: Iterable[StepTarget] = (), *, aliases: Mapping[str, str] | None = None
    ) -> None:
        self._targets: dict[str, StepTarget] = {}
        self._aliases: dict[str, str] = dict(aliases or {})
        self._fallback: Callable[[str], StepTarget | None] | None = None
        for target in targets:
            self.register(target)

    def register(self, target: StepTarget, *aliases: str) -> None:
        self._targets[target.name] = target
        for alias in aliases:
            self._aliases[alias] = target.name

    def set_fallback(self, resolver: Callable[[str], StepTarget | None]) -> None:
        """Resolve names that are not built-in (registered services)."""
        self._fallback = resolver

    def names(self) -> list[str]:
        return sorted({*self._targets, *self._aliases})

    def find(self, name: str) -> StepTarget | None:
        name = self._aliases.get(name, name)
        target = self._targets.get(name)
        if target is None and self._fallback is not None:
            target = self._fallback(name)
        return target

    def get(self, name: str, field: str = "target") -> StepTarget:
        target = self.find(name)
        if target is None:
            raise ValidationError(
                f"unknown step target {name!r}; known: {', '.join(self.names())}"
                " (or a service registered under services: in the config)",
                field=field,
            )
        return target

    def check_step(self, step: Step, field: str) -> None:
        """Definition-time check used by ``parse_definition(known_target=…)``."""
        self.get(step.target, f"{field}.target").validate(step, field)
