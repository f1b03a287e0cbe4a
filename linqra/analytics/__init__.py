"""Execution and cost analytics, computed in the store: rates, latency percentiles, trends,
result distributions, timelines and the slowest or costliest runs of a team (issue 16, part 3).

:class:`~linqra.analytics.service.AnalyticsService` is the entry point; the HTTP API is
``deployments/routers/analytics.py`` and ``docs/analytics.md`` documents both.
"""

from linqra.analytics.service import INDEXES, AnalyticsService

__all__ = ["INDEXES", "AnalyticsService"]
