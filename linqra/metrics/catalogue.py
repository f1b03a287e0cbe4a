"""Every metric Linqra records, declared once (docs/observability.md's table is made from it).

Conventions (Prometheus's, checked by :meth:`~linqra.metrics.base.Instrument.problem`): names
start ``linqra_``; counters end ``_total``; a name carries its base unit (``_seconds``,
``_tokens``, ``_nanos``); cost is an integer counter of **nanos** — billionths of the price
catalogue's currency, the budget ledger's own unit, so the counter adds up exactly to what the
ledger was charged. Labels are bounded: statuses, targets, providers and models come from the
configuration and the code, never from a request; ``team`` only where ``metrics.team_labels``
allows it.

On a Ray cluster each name is exported by Ray with a ``ray_`` prefix (``ray_linqra_…``, beside
Ray's own metrics); ``configs/prometheus.yml`` renames them back to these names as it scrapes.
"""

from __future__ import annotations

from linqra.metrics.base import Instrument

__all__ = [
    "AGENT_ACTORS",
    "AGENT_PASSIVATIONS",
    "CATALOGUE",
    "CHAT_CONVERSATIONS",
    "EVENT_CONSUMER_LAG",
    "EVENT_DEAD_LETTERS",
    "EXECUTIONS",
    "EXECUTIONS_STARTED",
    "EXECUTION_DURATION",
    "HTTP_REQUESTS",
    "HTTP_REQUEST_DURATION",
    "KNOWLEDGE_CHUNKS",
    "KNOWLEDGE_DOCUMENTS",
    "KNOWLEDGE_SEARCH_DURATION",
    "LLM_BUDGET_REFUSALS",
    "LLM_CALLS",
    "LLM_CALL_DURATION",
    "LLM_COST",
    "LLM_TIME_TO_FIRST_TOKEN",
    "LLM_TOKENS",
    "QUEUE_DEPTH",
    "QUEUE_OLDEST_AGE",
    "SCHEDULE_FIRES",
    "SCHEDULE_LATENESS",
    "SCHEDULE_MISFIRES",
    "STEPS",
    "STEP_ATTEMPTS",
    "STEP_DURATION",
    "markdown_table",
]

FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Seconds, for work that is usually milliseconds (a step, a search, a consumer's lag)."""
SLOW = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)
"""Seconds, for work that may take minutes (an execution, a model call)."""
LATE = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 300.0, 3600.0)
"""Seconds behind schedule: tens of milliseconds when healthy, minutes after an outage."""

# -- the gateway (deployments/edge.py) ------------------------------------------------------
HTTP_REQUESTS = Instrument(
    "linqra_http_requests_total", "counter",
    "Requests the gateway answered, by route template (`unmatched` for none), method and status",
    "1", ("http_route", "method", "status"),
)  # fmt: skip
HTTP_REQUEST_DURATION = Instrument(
    "linqra_http_request_duration_seconds", "histogram",
    "Time from a request's arrival at the gateway's app to the end of its answer (a stream's "
    "whole life)", "seconds", ("http_route", "method"), FAST,
)  # fmt: skip

# -- workflow executions and steps (linqra/workflows) ---------------------------------------
EXECUTIONS_STARTED = Instrument(
    "linqra_executions_started_total", "counter",
    "Workflow executions a runner started: submitted (new), resumed (by a user), adopted "
    "(an orphan whose runner died)",
    "1", ("reason",), team=True,
)  # fmt: skip
EXECUTIONS = Instrument(
    "linqra_executions_total", "counter",
    "Workflow executions that ended, by terminal status (COMPLETED, FAILED, TIMEOUT, CANCELLED)",
    "1", ("status",), team=True,
)  # fmt: skip
EXECUTION_DURATION = Instrument(
    "linqra_execution_duration_seconds", "histogram",
    "Wall time of an ended execution, from its start to its end", "seconds", ("status",),
    SLOW, team=True,
)  # fmt: skip
STEPS = Instrument(
    "linqra_steps_total", "counter",
    "Workflow steps that ran to an outcome, by target, executor (inline, io, task) and status",
    "1", ("target", "executor", "status"), team=True,
)  # fmt: skip
STEP_DURATION = Instrument(
    "linqra_step_duration_seconds", "histogram",
    "Wall time of a step, all its attempts included", "seconds", ("target", "executor"), FAST,
)  # fmt: skip
STEP_ATTEMPTS = Instrument(
    "linqra_step_attempts_total", "counter",
    "Attempts of the steps counted in linqra_steps_total (retries = attempts - steps)",
    "1", ("target", "executor"),
)  # fmt: skip

# -- queues of durable work (sampled by the supervisor) ------------------------------------
QUEUE_DEPTH = Instrument(
    "linqra_queue_depth", "gauge",
    "Work waiting to be taken, per queue: async_steps (QUEUED async steps), task_executions "
    "(PENDING task executions); sampled, at most 1000 counted",
    "1", ("queue",),
)  # fmt: skip
QUEUE_OLDEST_AGE = Instrument(
    "linqra_queue_oldest_age_seconds", "gauge",
    "How long the oldest waiting item of a queue has waited (0 when empty); sampled",
    "seconds", ("queue",),
)  # fmt: skip

# -- schedules (linqra/scheduling) -------------------------------------------------------------
SCHEDULE_FIRES = Instrument(
    "linqra_schedule_fires_total", "counter",
    "Cron fires handled by the scheduler, by outcome: started (a task execution was created), "
    "skipped (a misfire under SKIP; a disabled, paused or deleted task; a fire already made)",
    "1", ("outcome",),
)  # fmt: skip
SCHEDULE_LATENESS = Instrument(
    "linqra_schedule_lateness_seconds", "histogram",
    "How late the scheduler handled a due fire", "seconds", (), LATE,
)  # fmt: skip
SCHEDULE_MISFIRES = Instrument(
    "linqra_schedule_misfires_total", "counter",
    "Fires found later than agents.misfire_threshold_seconds, by the schedule's misfire policy",
    "1", ("policy",),
)  # fmt: skip

# -- the event bus (linqra/events) ---------------------------------------------------------
EVENT_CONSUMER_LAG = Instrument(
    "linqra_event_consumer_lag_seconds", "histogram",
    "Time from an event's publication to its handling by a consumer group", "seconds",
    ("group",), (*FAST, 300.0, 3600.0),
)  # fmt: skip
EVENT_DEAD_LETTERS = Instrument(
    "linqra_event_dead_letters_total", "counter",
    "Events a consumer group gave up on (stored as dead letters)", "1", ("group",),
)  # fmt: skip

# -- models (linqra/llm) -------------------------------------------------------------------
LLM_CALLS = Instrument(
    "linqra_llm_calls_total", "counter",
    "Model calls by provider, model, operation (chat, embed) and status (ok, error, "
    "cancelled, failed: ended after tokens were produced)",
    "1", ("provider", "model", "operation", "status"), team=True,
)  # fmt: skip
LLM_CALL_DURATION = Instrument(
    "linqra_llm_call_duration_seconds", "histogram",
    "Wall time of a model call to its last token", "seconds",
    ("provider", "model", "operation"), SLOW,
)  # fmt: skip
LLM_TIME_TO_FIRST_TOKEN = Instrument(
    "linqra_llm_time_to_first_token_seconds", "histogram",
    "Time from a streamed call's start to its first text", "seconds", ("provider", "model"),
    FAST,
)  # fmt: skip
LLM_TOKENS = Instrument(
    "linqra_llm_tokens_total", "counter",
    "Tokens billed, by kind: input (uncached prompt), cache_read, cache_write, output, "
    "reasoning (part of output)",
    "tokens", ("provider", "model", "kind"), team=True,
)  # fmt: skip
LLM_COST = Instrument(
    "linqra_llm_cost_nanos_total", "counter",
    "Cost of model calls in nanos (1e-9) of the currency label, as the budget ledger counts it",
    "nanos", ("provider", "model", "currency"), team=True,
)  # fmt: skip
LLM_BUDGET_REFUSALS = Instrument(
    "linqra_llm_budget_refusals_total", "counter",
    "Model calls refused before they started because a budget (team) or a widget key's spend "
    "cap (key) would be exceeded",
    "1", ("budget",), team=True,
)  # fmt: skip

# -- knowledge (linqra/knowledge) ----------------------------------------------------------
KNOWLEDGE_CHUNKS = Instrument(
    "linqra_knowledge_chunks_indexed_total", "counter",
    "Chunks embedded and written to the vector store (chunks/s: rate())", "1",
)  # fmt: skip
KNOWLEDGE_DOCUMENTS = Instrument(
    "linqra_knowledge_documents_total", "counter",
    "Document ingestions that ended, by status (READY, FAILED)", "1", ("status",),
)  # fmt: skip
KNOWLEDGE_SEARCH_DURATION = Instrument(
    "linqra_knowledge_search_duration_seconds", "histogram",
    "Wall time of a knowledge search, the query's embedding included", "seconds", (), FAST,
)  # fmt: skip

# -- agents (actors/agent.py, sampled by the supervisor) -----------------------------------
AGENT_ACTORS = Instrument(
    "linqra_agent_actors", "gauge",
    "Agent actors alive (agents with work); registered agents without one are passivated",
    "1",
)  # fmt: skip
AGENT_PASSIVATIONS = Instrument(
    "linqra_agent_passivations_total", "counter",
    "Agent actors that ended, by reason (idle, deleted, failed)", "1", ("reason",),
)  # fmt: skip

CHAT_CONVERSATIONS = Instrument(
    "linqra_chat_conversations", "gauge",
    "Conversations with a worker in a chat host: a turn in the last chat.idle_seconds", "1",
)  # fmt: skip

CATALOGUE: dict[str, Instrument] = {
    i.name: i
    for i in (
        HTTP_REQUESTS, HTTP_REQUEST_DURATION,
        EXECUTIONS_STARTED, EXECUTIONS, EXECUTION_DURATION, STEPS, STEP_DURATION, STEP_ATTEMPTS,
        QUEUE_DEPTH, QUEUE_OLDEST_AGE, SCHEDULE_FIRES, SCHEDULE_LATENESS, SCHEDULE_MISFIRES,
        EVENT_CONSUMER_LAG, EVENT_DEAD_LETTERS, LLM_CALLS, LLM_CALL_DURATION,
        LLM_TIME_TO_FIRST_TOKEN, LLM_TOKENS, LLM_COST, LLM_BUDGET_REFUSALS, KNOWLEDGE_CHUNKS,
        KNOWLEDGE_DOCUMENTS, KNOWLEDGE_SEARCH_DURATION, AGENT_ACTORS, AGENT_PASSIVATIONS,
        CHAT_CONVERSATIONS,
    )
}  # fmt: skip
"""Every instrument by name."""


def markdown_table() -> str:
    """The catalogue as the Markdown table of docs/observability.md."""
    rows = ["| metric | type | labels | meaning |", "| --- | --- | --- | --- |"]
    for i in CATALOGUE.values():
        labels = ", ".join(f"`{label}`" for label in i.labels)
        if i.team:
            labels = f"{labels}, (`team`)" if labels else "(`team`)"
        rows.append(f"| `{i.name}` | {i.kind} | {labels} | {i.description} |")
    return "\n".join(rows)
