"""Workflow definitions in Linqra's step shape (the Linq Protocol), validated.

A definition is ``{"mode": "sequential" | "dag", "steps": [...], "timeoutSeconds"?}``.
Steps keep Linqra's field names (``step``, ``target``, ``action``, ``intent``,
``params``, ``payload``, ``llmConfig``, ``async``, ``stream``, ``cacheConfig``,
``condition``, ``jump``, ``description``, ``summary``) plus our extensions:
``dependsOn``, ``timeoutSeconds``, ``retry``, ``executor`` and ``headers``.

Sequential mode (the default, Linqra's semantics) runs steps in step-number
order; a step may refer only to earlier steps; ``jump`` moves to another step.
DAG mode runs a step as soon as the steps it refers to (``{{stepN…}}``) and
those in ``dependsOn`` are done, so independent steps run at the same time;
``jump`` is refused there, and cycles are refused at validation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from linqra.errors import ValidationError
from linqra.validation import format_pydantic_error
from linqra.workflows.conditions import ConditionError, check_condition
from linqra.workflows.interpolation import MAX_TEMPLATE_DEPTH, check_templates

__all__ = [
    "MAX_STEPS",
    "CacheConfig",
    "Jump",
    "RetryConfig",
    "Step",
    "WorkflowDefinition",
    "parse_definition",
]

MAX_STEPS = 1000
ExecutorKind = Literal["inline", "task", "io"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class CacheConfig(_Model):
    """``{"enabled": true, "ttl": "86400", "key": "optional"}`` — ttl in seconds (text or number)."""

    enabled: bool = False
    ttl: int = Field(default=300, ge=1, le=30 * 86400)
    key: str | None = Field(default=None, max_length=512)

    @field_validator("ttl", mode="before")
    @classmethod
    def _ttl_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            if not value.strip().isdigit():
                raise ValueError("ttl must be a whole number of seconds")
            return int(value.strip())
        return value


class Jump(_Model):
    """``{"condition": "…", "targetStep": 6}``; ``targetStep`` 0 or null ends the run."""

    condition: str = Field(min_length=1)
    targetStep: int | None = Field(default=None, ge=0)


class RetryConfig(_Model):
    """Per-step retry: exponential backoff with jitter between attempts."""

    maxAttempts: int = Field(default=3, ge=1, le=20)
    initialDelayMs: int = Field(default=200, ge=0, le=60_000)
    maxDelayMs: int = Field(default=10_000, ge=0, le=600_000)
    multiplier: float = Field(default=2.0, ge=1.0, le=10.0)


class Step(_Model):
    step: int = Field(ge=1, le=10_000)
    target: str = Field(min_length=1, max_length=128)
    action: str | None = Field(default=None, max_length=64)
    intent: str | None = Field(default=None, max_length=8192)
    params: dict[str, Any] = Field(default_factory=dict)
    payload: Any = None
    headers: dict[str, str] | None = None
    llmConfig: dict[str, Any] | None = None
    async_: bool = Field(default=False, alias="async")
    stream: bool = False
    cacheConfig: CacheConfig | None = None
    condition: str | None = Field(default=None, max_length=2000)
    jump: Jump | None = None
    description: str | None = Field(default=None, max_length=4000)
    summary: str | None = Field(default=None, max_length=4000)
    dependsOn: list[int] = Field(default_factory=list, max_length=MAX_STEPS)
    timeoutSeconds: float | None = Field(default=None, gt=0, le=86_400)
    retry: RetryConfig | None = None
    executor: ExecutorKind | None = None

    @field_validator("params", "payload", "llmConfig", "headers")
    @classmethod
    def _depth(cls, value: Any) -> Any:
        if _depth(value) > MAX_TEMPLATE_DEPTH:
            raise ValueError(f"nested deeper than {MAX_TEMPLATE_DEPTH} levels")
        return value


class WorkflowDefinition(_Model):
    mode: Literal["sequential", "dag"] = "sequential"
    params: dict[str, Any] = Field(
        default_factory=dict, description="default params; a run's params override them"
    )
    steps: list[Step] = Field(min_length=1, max_length=MAX_STEPS)
    timeoutSeconds: float | None = Field(default=None, gt=0, le=7 * 86_400)
    _dependencies: dict[int, frozenset[int]] | None = PrivateAttr(default=None)

    def step_map(self) -> dict[int, Step]:
        return {s.step: s for s in self.steps}

    def ordered(self) -> list[Step]:
        return sorted(self.steps, key=lambda s: s.step)

    def dependencies(self) -> dict[int, frozenset[int]]:
        """For each step, the steps it waits for (DAG mode) or refers to (sequential).

        Computed once per definition (it is frozen, and parsed definitions are cached per
        version: a run of 1,000 steps no longer scans every template again)."""
        if self._dependencies is None:
            self._dependencies = {
                s.step: frozenset(step_references(s) | set(s.dependsOn)) for s in self.steps
            }
        return self._dependencies

    def to_json(self) -> dict[str, Any]:
        """The stored form: Linqra's field names, defaults left out (the mode always kept)."""
        data = self.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        data["mode"] = self.mode
        return data


def _templated(step: Step) -> list[tuple[str, Any]]:
    """The fields of ``step`` that may hold ``{{…}}`` templates, by name."""
    fields: list[tuple[str, Any]] = [
        ("intent", step.intent),
        ("params", step.params),
        ("payload", step.payload),
        ("headers", step.headers),
        ("condition", step.condition),
    ]
    if step.cacheConfig and step.cacheConfig.key:
        fields.append(("cacheConfig.key", step.cacheConfig.key))
    if step.jump:
        fields.append(("jump.condition", step.jump.condition))
    return fields


def step_references(step: Step) -> set[int]:
    refs: set[int] = set()
    for name, value in _templated(step):
        refs |= check_templates(value, name)
    return refs


def _where(step: Step, ref: int) -> str:
    """The path in ``step`` of the first value that refers to step ``ref`` (``params.input``,
    ``payload[0].content``), for a 400 that points at it; ``dependsOn`` when none does."""

    def find(value: Any, path: str) -> str | None:
        if isinstance(value, Mapping):
            items: Any = ((f"{path}.{k}", v) for k, v in value.items())
        elif isinstance(value, list):
            items = ((f"{path}[{i}]", v) for i, v in enumerate(value))
        else:
            return path if isinstance(value, str) and ref in check_templates(value, path) else None
        return next((p for p in (find(v, sub) for sub, v in items) if p is not None), None)

    found = (find(value, name) for name, value in _templated(step))
    return next((path for path in found if path is not None), "dependsOn")


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_TEMPLATE_DEPTH + 1:
        return level
    if isinstance(value, Mapping):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def parse_definition(
    data: Any, *, known_target: Any = None, prefix: str = ""
) -> WorkflowDefinition:
    """Validate ``data`` into a :class:`WorkflowDefinition` or raise a 4xx :class:`ValidationError`.

    ``known_target(step)`` checks each step's target and action (the step-target
    registry does); it raises :class:`ValidationError` naming the field.
    """
    try:
        definition = WorkflowDefinition.model_validate(data)
    except pydantic.ValidationError as exc:
        raise format_pydantic_error(exc, prefix) from None
    validate_graph(definition, prefix=prefix)
    if known_target is not None:
        index = {s.step: i for i, s in enumerate(definition.steps)}
        for step in definition.steps:
            known_target(step, f"{prefix}steps[{index[step.step]}]")
    return definition


def _reference_problem(
    definition: WorkflowDefinition, seen: Mapping[int, int], step: Step, ref: int, origin: str
) -> str | None:
    """What is wrong with ``step``'s reference (or ``dependsOn``) to step ``ref``, if anything."""
    if ref not in seen:
        return f"step {step.step}: {origin} to unknown step{ref}"
    if definition.steps[seen[ref]].async_:
        return (
            f"step {step.step}: {origin} to async step{ref}; an async step's result is not"
            " available to other steps"
        )
    if ref == step.step:
        return f"step {step.step} refers to itself"
    if definition.mode == "sequential" and ref > step.step:
        return (
            f"step {step.step}: {origin} to later step{ref} (sequential mode runs in step order;"
            ' use "mode": "dag" for other orders)'
        )
    return None


def validate_graph(definition: WorkflowDefinition, *, prefix: str = "") -> None:
    """Step numbers, references, conditions, jumps and (in DAG mode) cycles."""
    seen: dict[int, int] = {}
    for i, step in enumerate(definition.steps):
        field = f"{prefix}steps[{i}]"
        if step.step in seen:
            raise ValidationError(f"step number {step.step} is used twice", field=f"{field}.step")
        seen[step.step] = i
    for i, step in enumerate(definition.steps):
        field = f"{prefix}steps[{i}]"
        for cond_field, text in (
            ("condition", step.condition),
            ("jump.condition", step.jump and step.jump.condition),
        ):
            if text:
                try:
                    check_condition(text)
                except (ConditionError, ValueError) as exc:
                    raise ValidationError(
                        f"invalid {cond_field}: {exc}", field=f"{field}.{cond_field}"
                    ) from None
        try:
            refs = step_references(step)
        except ValidationError as exc:
            raise ValidationError(exc.message, field=f"{field}.{exc.field}") from None
        for ref in sorted(refs | set(step.dependsOn)):
            origin = "dependsOn" if ref in step.dependsOn and ref not in refs else "reference"
            problem = _reference_problem(definition, seen, step, ref, origin)
            if problem is not None:
                at = _where(step, ref) if origin == "reference" else "dependsOn"
                raise ValidationError(problem, field=f"{field}.{at}")
        if step.jump is not None:
            if definition.mode == "dag":
                raise ValidationError(
                    "jump is only valid in sequential mode", field=f"{field}.jump"
                )
            target = step.jump.targetStep
            if target not in (None, 0) and target not in seen:
                raise ValidationError(
                    f"jump.targetStep {target} is not a step", field=f"{field}.jump.targetStep"
                )
    if definition.mode == "dag":
        _check_acyclic(definition, prefix)


def _check_acyclic(definition: WorkflowDefinition, prefix: str) -> None:
    deps = definition.dependencies()
    state: dict[int, int] = {}  # 1 visiting, 2 done
    for start in sorted(deps):
        if state.get(start):
            continue
        stack: list[tuple[int, list[int]]] = [(start, sorted(deps[start]))]
        path = [start]
        state[start] = 1
        while stack:
            node, pending = stack[-1]
            if not pending:
                state[node] = 2
                stack.pop()
                path.pop()
                continue
            nxt = pending.pop()
            if state.get(nxt) == 1:
                cycle = [*path[path.index(nxt) :], nxt]
                raise ValidationError(
                    "dependency cycle: " + " -> ".join(f"step{n}" for n in cycle),
                    field=f"{prefix}steps",
                )
            if not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, sorted(deps[nxt])))
