"""Durations of alert rules as people write them: ``30s``, ``5m``, ``1h30m``, ``2d``, ``1w`` (the
Prometheus form, whole seconds) or a number of seconds; ``0`` is none."""

from __future__ import annotations

import math
import re

from linqra.errors import ValidationError

__all__ = ["format_duration", "parse_duration"]

_FORM = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_UNITS = (("w", 604_800), ("d", 86_400), ("h", 3600), ("m", 60), ("s", 1))


def parse_duration(value: object, field: str, *, minimum: int, maximum: int) -> int:
    """``value`` in whole seconds, within ``[minimum, maximum]``; a 400 naming ``field`` else."""
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and len(value) <= 32:
        text = value.strip()
        if text == "0":
            seconds = 0.0
        elif text and (match := _FORM.fullmatch(text)):
            seconds = float(
                sum(int(n) * unit for n, (_, unit) in zip(match.groups(), _UNITS, strict=True) if n)
            )
    if seconds is None or not math.isfinite(seconds) or seconds != int(seconds):
        raise ValidationError(
            f"{field} is a duration such as 30s, 5m, 1h30m or 2d (or whole seconds)", field=field
        )
    if not minimum <= seconds <= maximum:
        raise ValidationError(
            f"{field} is {format_duration(minimum)} to {format_duration(maximum)}, not "
            f"{format_duration(int(seconds)) if seconds >= 0 else value}",
            field=field,
        )
    return int(seconds)


def format_duration(seconds: int) -> str:
    """``5400`` → ``1h30m``; ``0`` → ``0s``."""
    if seconds <= 0:
        return "0s"
    parts = []
    for name, unit in _UNITS[1:]:  # days at most: 31d reads better than 4w3d
        count, seconds = divmod(seconds, unit)
        if count:
            parts.append(f"{count}{name}")
    return "".join(parts)
