"""A text of more than 200,000 tokens in under 1 MB and in one "sentence" (no punctuation, no
line breaks): the tokenizer refuses to encode that much in one call, so the chunker must not."""

from __future__ import annotations

import random
import string

MARKER = "Hypatia taught astronomy in Alexandria"


def endless_sentence(words: int = 120_000, seed: int = 7) -> str:
    """About 2.3 tokens a word of random letters, ``MARKER`` in the middle."""
    rnd = random.Random(seed)
    parts = ["".join(rnd.choices(string.ascii_lowercase, k=6)) for _ in range(words)]
    parts.insert(words // 2, MARKER)
    return " ".join(parts)
