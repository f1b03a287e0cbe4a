"""Structured logs (issue 16, part 6; docs/observability.md "Logs"): one JSON object a line from
every process, each naming the request, team, execution and trace it is about, none carrying a
secret.

* :func:`bind` sets fields (``request_id``, ``team``, ``execution_id`` …) for the block and every
  task started in it (``contextvars``): the gateway binds the request's, the engine an
  execution's, so a line logged deep in a step target says whose work it was.
* :class:`ContextFields` adds those fields and the current ``trace_id`` (:mod:`linqra.tracing`)
  to each record; :class:`Redact` scrubs secrets from its message and arguments.
* :func:`configure` puts both on the root logger's handlers (and Serve's), once per process.
  A process whose root logger has no handler yet (a plain ``python``/``uvicorn`` process) gets
  one writing JSON lines to stderr (``python-json-logger``); a Ray process keeps Ray's handlers,
  whose JSON encoding (``ray.init(logging_config=ray.LoggingConfig(encoding="JSON"))``, as
  ``linqra up`` starts Ray) writes every extra attribute of a record, ours included.

Redaction is by pattern because no logging library knows our secrets' shapes: bearer tokens and
``Authorization`` values, Linqra's ``lq_`` keys, provider keys (``sk-…``, ``AIza…``), values of
``password``/``secret``/``token``/``api_key`` fields, and credentials in URLs. It is the last
guard, not the first: secrets are kept out of messages where they are made (the audit log and
step records hold none; see docs/security.md).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from linqra import tracing

if TYPE_CHECKING:
    from linqra._config_sections import LoggingSettings

__all__ = [
    "ContextFields",
    "Redact",
    "also",
    "bind",
    "bound",
    "configure",
    "install_filters",
    "ray_logging_config",
    "redact",
]

_FIELDS: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "linqra_log_fields", default=None
)

_SECRET = re.compile(
    r"(?P<auth>(?i:bearer|basic)\s+)[A-Za-z0-9._~+/=-]{8,}"
    r"|(?P<key>\b(?:lq|sk|sk-ant|sk-proj|rk|pk)[-_][A-Za-z0-9_-]{8,})"
    r"|(?P<google>\bAIza[0-9A-Za-z_-]{20,})"
    r"|(?P<field>(?i:password|passwd|secret|token|api[-_]?key|apikey|authorization|x-api-key)"
    r"[\"']?\s*[:=]\s*[\"']?(?:(?i:bearer|basic)\s+)?)[^\s\"'&,;}]{4,}"
    r"|(?P<url>://[^/\s:@]+:)[^@\s/]+@"
)


def _mask(match: re.Match[str]) -> str:
    for prefix in ("auth", "field"):
        if match.group(prefix):
            return f"{match.group(prefix)}***"
    if match.group("url"):
        return f"{match.group('url')}***@"
    return "***"


def redact(text: str) -> str:
    """``text`` with anything shaped like a secret replaced by ``***``."""
    return _SECRET.sub(_mask, text)


@contextlib.contextmanager
def bind(**fields: str | None) -> Iterator[None]:
    """Name ``fields`` on every line logged in the block (and tasks it starts)."""
    token = _FIELDS.set({**(_FIELDS.get() or {}), **{k: v for k, v in fields.items() if v}})
    try:
        yield
    finally:
        _FIELDS.reset(token)


def also(**fields: str | None) -> None:
    """Name ``fields`` on the rest of this context's lines (a request's team, once known; the
    request's :func:`bind` ends them with it)."""
    _FIELDS.set({**(_FIELDS.get() or {}), **{k: v for k, v in fields.items() if v}})


def bound() -> dict[str, str]:
    """The fields bound here (and the current trace id)."""
    fields = dict(_FIELDS.get() or {})
    trace = tracing.trace_id(tracing.traceparent())
    if trace:
        fields["trace_id"] = trace
    return fields


class ContextFields(logging.Filter):
    """Adds the bound fields (:func:`bind`) and the trace id to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in bound().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class Redact(logging.Filter):
    """Scrubs secrets (see the module) from each record's message, arguments and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        # the traceback, scrubbed, where formatters look first (the standard one and Ray's
        # use exc_text when it is set; our JSON one scrubs what it formats itself)
        if record.exc_info and not record.exc_text:
            record.exc_text = _PLAIN.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


_PLAIN = logging.Formatter()


_FILTERS = (ContextFields(), Redact())
_configured: set[int] = set()  # ids of the handlers that have our filters


def configure(settings: LoggingSettings) -> None:
    """Give this process's log handlers the context fields and redaction (see the module);
    idempotent. A process without handlers gets JSON lines (or text) on stderr."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(_stderr_handler(settings))
        root.setLevel(settings.level)
    for logger in (root, logging.getLogger("ray.serve")):
        for handler in logger.handlers:
            install_filters(handler)


def install_filters(handler: logging.Handler) -> None:
    """Give ``handler`` the context fields and redaction (once)."""
    if id(handler) not in _configured:
        for f in _FILTERS:
            handler.addFilter(f)
        _configured.add(id(handler))


def _stderr_handler(settings: LoggingSettings, stream: Any = None) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    if settings.encoding == "json":
        from pythonjsonlogger.json import JsonFormatter

        class Scrubbed(JsonFormatter):
            def formatException(self, ei: Any) -> str:
                return redact(str(super().formatException(ei)))

        formatter: logging.Formatter = Scrubbed(
            "{asctime}{levelname}{name}{message}{process}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler.setFormatter(formatter)
    return handler


def ray_logging_config(settings: LoggingSettings) -> dict[str, Any]:
    """Keyword arguments of ``ray.LoggingConfig`` for these settings (``linqra up`` and the
    tests start Ray with them): every Ray worker's records as JSON lines with their extras."""
    return {
        "encoding": "JSON" if settings.encoding == "json" else "TEXT",
        "log_level": settings.level,
    }
