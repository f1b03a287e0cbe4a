"""Alert rules per team, evaluated against what Linqra records, firing through a signed webhook,
the team's event bus topic or Alertmanager (issue 16, part 4).

* :class:`~linqra.alerts.rules.AlertRules` — rules, their state, history, deliveries, dry runs;
* :class:`~linqra.alerts.evaluator.AlertEvaluator` — ``tick(now)`` evaluates every enabled rule
  of every team and sends the notifications (``actors/alerts.py`` runs it on a cluster);
* :data:`~linqra.alerts.signals.SIGNALS` — what a rule can watch, computed in the store;
* :class:`~linqra.alerts.secrets.AlertSecrets` — the named keys that sign webhook calls.

The HTTP API is ``deployments/routers/alerts.py``; ``docs/alerts.md`` documents both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from linqra.alerts.channels import verify
from linqra.alerts.evaluator import AlertEvaluator, TickReport
from linqra.alerts.rules import INDEXES, AlertRules
from linqra.alerts.secrets import AlertSecrets
from linqra.alerts.signals import SIGNALS

if TYPE_CHECKING:
    from linqra.system import System

__all__ = [
    "INDEXES",
    "SIGNALS",
    "AlertEvaluator",
    "AlertRules",
    "AlertSecrets",
    "TickReport",
    "rules_of",
    "verify",
]


def rules_of(system: System) -> AlertRules:
    """The alert rules service over a process's system (its store, keyring and settings)."""
    return AlertRules(
        system.store, AlertSecrets(system.store, system.secrets.keyring), system.settings.alerts
    )
