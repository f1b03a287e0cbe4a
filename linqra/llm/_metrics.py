"""What :class:`~linqra.llm.service.LLMService` records of each model call (the instruments are
declared in :mod:`linqra.metrics.catalogue`): the call by status, its duration, its tokens by
kind and its exact cost in nanos, the time to a stream's first token, budget refusals."""

from __future__ import annotations

import time

from linqra.errors import BudgetExceeded
from linqra.llm.budgets import to_nanos
from linqra.llm.pricing import Cost
from linqra.llm.types import Usage
from linqra.metrics import Metrics
from linqra.metrics.catalogue import (
    LLM_BUDGET_REFUSALS,
    LLM_CALL_DURATION,
    LLM_CALLS,
    LLM_COST,
    LLM_TIME_TO_FIRST_TOKEN,
    LLM_TOKENS,
)

__all__ = ["LLMMetrics"]

TOKEN_KINDS = (
    ("input", "input_tokens"),
    ("cache_read", "cache_read_tokens"),
    ("cache_write", "cache_write_tokens"),
    ("output", "output_tokens"),
    ("reasoning", "reasoning_tokens"),
)


class LLMMetrics:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def call(
        self,
        team_id: str,
        provider: str,
        model: str,
        *,
        operation: str,
        status: str,
        started: float,
        usage: Usage | None = None,
        cost: Cost | None = None,
    ) -> None:
        """One call that ended (``started``: its ``time.perf_counter()``)."""
        m = self.metrics
        if not m.enabled:
            return
        m.add(LLM_CALLS, team=team_id, provider=provider, model=model, operation=operation,
              status=status)  # fmt: skip
        m.observe(LLM_CALL_DURATION, time.perf_counter() - started, provider=provider,
                  model=model, operation=operation)  # fmt: skip
        if usage is not None:
            for kind, attr in TOKEN_KINDS:
                m.add(LLM_TOKENS, getattr(usage, attr), team=team_id, provider=provider,
                      model=model, kind=kind)  # fmt: skip
        if cost is not None:
            m.add(LLM_COST, to_nanos(cost.amount), team=team_id, provider=provider, model=model,
                  currency=cost.currency)  # fmt: skip

    def first_token(self, provider: str, model: str, started: float) -> None:
        if self.metrics.enabled:
            self.metrics.observe(LLM_TIME_TO_FIRST_TOKEN, time.perf_counter() - started,
                                 provider=provider, model=model)  # fmt: skip

    def refused(self, team_id: str, exc: BudgetExceeded) -> None:
        budget = "key" if exc.field == "spend_cap" else "team"
        self.metrics.add(LLM_BUDGET_REFUSALS, team=team_id, budget=budget)
