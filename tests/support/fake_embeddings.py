"""Deterministic bag-of-words vectors for the fake providers' embedding endpoints."""

from __future__ import annotations

import zlib


def fake_vector(text: str, dimension: int) -> list[float]:
    out = [0.0] * dimension
    for word in text.lower().split():
        out[zlib.crc32(word.strip(".,?!").encode()) % dimension] += 1.0
    return out


def word_count(texts: list[str]) -> int:
    return sum(len(t.split()) for t in texts)
