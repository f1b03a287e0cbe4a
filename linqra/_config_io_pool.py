"""The I/O step pool's knobs, a part of ``execution`` (:class:`linqra.config.ExecutionSettings`
extends :class:`IOPoolSettings`), kept here so ``config.py`` stays under the project's module
size.

The pool starts with ``io_pool_size`` actors of ``io_concurrency`` steps each and grows, one
actor at a time, while the steps in flight reach ``io_grow_at`` of what its actors take — up to
``io_pool_max`` actors; an actor it added that has had nothing to do for ``io_idle_seconds`` is
stopped (docs/scaling.md, "Autoscaling"; ``actors/io_batch.py``). ``io_pool_max`` unset is
``io_pool_size``: no growth.
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, Field, model_validator

__all__ = ["IOPoolSettings"]


class IOPoolSettings(BaseModel):
    """The I/O step pool: its size, each actor's concurrency, how it grows and shrinks back."""

    model_config = {"extra": "forbid"}

    io_pool_size: int = Field(default=2, ge=1, le=64, description="async actors that run I/O steps")
    io_concurrency: int = Field(
        default=256, ge=1, description="concurrent I/O steps per pool actor"
    )
    io_pool_max: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="the pool grows to at most this many actors under load (unset: io_pool_size, "
        "no growth)",
    )
    io_grow_at: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="another actor is started when the steps in flight reach this share of "
        "io_concurrency times the actors running or starting",
    )
    io_idle_seconds: float = Field(
        default=30.0, gt=0, description="an actor added under load and idle this long is stopped"
    )

    @model_validator(mode="after")
    def _max_not_below_size(self) -> Self:
        if self.io_pool_max is not None and self.io_pool_max < self.io_pool_size:
            raise ValueError(
                f"io_pool_max ({self.io_pool_max}) must not be below io_pool_size "
                f"({self.io_pool_size})"
            )
        return self

    @property
    def io_pool_limit(self) -> int:
        """The most actors the pool may have: ``io_pool_max``, else ``io_pool_size``."""
        return max(self.io_pool_size, self.io_pool_max or 0)
