"""The OpenAI stream read per network read (``linqra.llm.openai.chunk_batches``): events split
across reads, several in one read, CRLF line ends, comments, ``[DONE]`` in the middle of a read
(the rest of the body still read, so the connection can be reused), and malformed chunks."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from linqra.errors import ProviderError
from linqra.llm.openai import _choices, chunk_batches


async def _reads(*parts: bytes, seen: list[bytes] | None = None) -> AsyncIterator[bytes]:
    for part in parts:
        if seen is not None:
            seen.append(part)
        yield part


def _event(content: str) -> bytes:
    return b"data: " + json.dumps({"choices": [{"delta": {"content": content}}]}).encode() + b"\n\n"


async def _batches(*parts: bytes, seen: list[bytes] | None = None) -> list[list[str]]:
    return [
        [c["choices"][0]["delta"]["content"] for c in batch]
        async for batch in chunk_batches(_reads(*parts, seen=seen))
    ]


async def test_each_read_is_one_batch_of_whole_events() -> None:
    one, two, three = _event("a"), _event("b"), _event("c")
    assert await _batches(one + two, three) == [["a", "b"], ["c"]]
    # an event split across reads comes whole with the read that completes it
    assert await _batches(one[:7], one[7:] + two[:3], two[3:]) == [["a"], ["b"]]


async def test_crlf_comments_and_keep_alives() -> None:
    crlf = _event("a").replace(b"\n", b"\r\n")
    assert await _batches(b": keep-alive\n\n", crlf[:-1], crlf[-1:] + _event("b")) == [["a", "b"]]


async def test_done_ends_the_batches_and_the_rest_is_read() -> None:
    seen: list[bytes] = []
    tail = b"data: [DONE]\n\n"
    got = await _batches(_event("a") + tail + b"trailing", b"more", seen=seen)
    assert got == [["a"]]
    assert seen[-1] == b"more"  # read to the end


@pytest.mark.parametrize(
    "chunk",
    [{"choices": [None]}, {"choices": "x"}, {"choices": [{"delta": "text"}]}],
)
def test_malformed_chunks_are_provider_errors(chunk: dict[str, Any]) -> None:
    with pytest.raises(ProviderError, match="malformed"):
        _choices(chunk, "openai")
