"""Linqra on Ray: AI agents, multi-step AI workflows and chat assistants for many teams, on Ray.

This package is the core library: plain async Python that knows nothing of Ray
(a test enforces it). ``actors/`` and ``deployments/`` run it on a Ray cluster.
"""

from linqra.config import Settings, load_settings
from linqra.errors import LinqraError

__all__ = ["LinqraError", "Settings", "__version__", "load_settings"]

__version__ = "0.1.0"
