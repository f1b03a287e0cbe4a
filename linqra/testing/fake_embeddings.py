"""Deterministic bag-of-words vectors for the fake providers' embedding endpoints."""

from __future__ import annotations

import zlib

__all__ = ["fake_vector", "word_count"]


def fake_vector(text: str, dimension: int) -> list[float]:
    """One count per word, at a position hashed from the word: similar texts, similar vectors."""
    out = [0.0] * dimension
    for word in text.lower().split():
        out[zlib.crc32(word.strip(".,?!").encode()) % dimension] += 1.0
    return out


def word_count(texts: list[str]) -> int:
    """The "tokens" a fake provider bills for ``texts``."""
    return sum(len(t.split()) for t in texts)
