"""A local server that speaks OpenAI's chat-completions HTTP and SSE protocol, for the real SDK.

The model name picks a behaviour: ``rate-limited`` (429 + Retry-After), ``broken`` (500),
``delay-N`` (answer after N ms), ``slow-N[-W]`` (W more words, default 400, one every N ms: the
request's entry records ``stream.sent`` words and, when the client closes it early,
``stream.closed_at`` — ``time.monotonic()`` — so a test sees the upstream stream stop),
``malformed`` (a body that is not JSON), ``cut`` (a stream that stops mid-way), anything else
answers ``Echo: <last user message>``. Requests are kept in ``requests`` for assertions.
A request that offers tools gets a call of the first tool with the question as its query.
Embeddings are :func:`~linqra.testing.fake_embeddings.fake_vector` (floats or base64, as asked).

Serving it needs uvicorn (the ``test`` extra); see :class:`~linqra.testing.servers.AppServer`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from linqra.testing.fake_embeddings import fake_vector, word_count
from linqra.testing.servers import AppServer

__all__ = ["FakeOpenAI", "fake_openai_app"]


def _usage(prompt: int, completion: int, cached: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def fake_openai_app(requests: list[dict[str, Any]]) -> Starlette:
    """The ASGI app; every request body (and its Authorization header) is appended to ``requests``."""

    async def completions(request: Request) -> Response:
        body = await request.json()
        entry: dict[str, Any] = {"body": body, "auth": request.headers.get("authorization")}
        requests.append(entry)
        model = body["model"]
        if model == "rate-limited":
            return JSONResponse(
                {"error": {"message": "slow down", "type": "rate_limit"}},
                status_code=429,
                headers={"Retry-After": "2"},
            )
        if model == "broken":
            return JSONResponse({"error": {"message": "upstream exploded"}}, status_code=500)
        if model.startswith("delay-"):  # delay-50: answer after 50 ms, like a fast real model
            await asyncio.sleep(int(model.split("-", 1)[1]) / 1000)
        if model == "malformed":
            return Response(b"{not json", media_type="application/json")
        last = body["messages"][-1]
        question = (
            last["content"]
            if last["role"] == "tool"
            else next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), "")
        )
        words = ["Echo:", *question.split()]
        pause = 0.005
        if model.startswith("slow-"):  # slow-20-100: 100 more words, one every 20 ms
            ms, _, count = model.removeprefix("slow-").partition("-")
            pause = int(ms) / 1000
            words += [f"w{i}" for i in range(int(count or 400))]
            entry["stream"] = {"sent": 0, "closed_at": None}
        prompt = sum(len((m.get("content") or "").split()) + 4 for m in body["messages"])
        cached = 3 if prompt > 3 else 0
        created = int(time.time())
        call = None
        if body.get("tools") and last["role"] == "user":  # call the first tool with the question
            name = body["tools"][0]["function"]["name"]
            call = {"id": "call_fake_1", "name": name, "arguments": json.dumps({"query": question})}
            words = []
        if not body.get("stream") and call is not None:
            return JSONResponse(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {
                                "role": "assistant",
                                "content": None,
                                "tool_calls": [
                                    {
                                        "id": call["id"],
                                        "type": "function",
                                        "function": {
                                            "name": call["name"],
                                            "arguments": call["arguments"],
                                        },
                                    }
                                ],
                            },
                            "finish_reason": "tool_calls",
                        }
                    ],
                    "usage": _usage(prompt, 9, cached),
                }
            )
        if not body.get("stream"):
            return JSONResponse(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": " ".join(words)},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": _usage(prompt, len(words), cached),
                }
            )

        async def events() -> Any:
            base = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
            }
            yield f"data: {json.dumps({**base, 'choices': [{'index': 0, 'delta': {'role': 'assistant', 'content': ''}, 'finish_reason': None}]})}\n\n"
            for i, word in enumerate(words):
                if model == "cut" and i == 2:
                    raise RuntimeError("connection dropped mid-stream")
                piece = word if i == 0 else " " + word
                yield f"data: {json.dumps({**base, 'choices': [{'index': 0, 'delta': {'content': piece}, 'finish_reason': None}]})}\n\n"
                if "stream" in entry:
                    entry["stream"]["sent"] = i + 1
                try:
                    await asyncio.sleep(pause)
                except asyncio.CancelledError:  # the client closed the stream
                    if "stream" in entry:
                        entry["stream"]["closed_at"] = time.monotonic()
                    raise
            if call is not None:  # the arguments arrive in two pieces, as real servers send them
                half = len(call["arguments"]) // 2
                first = {
                    "index": 0,
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": call["arguments"][:half]},
                }
                rest = {"index": 0, "function": {"arguments": call["arguments"][half:]}}
                for piece in (first, rest):
                    yield f"data: {json.dumps({**base, 'choices': [{'index': 0, 'delta': {'tool_calls': [piece]}, 'finish_reason': None}]})}\n\n"
            finish = "tool_calls" if call is not None else "stop"
            yield f"data: {json.dumps({**base, 'choices': [{'index': 0, 'delta': {}, 'finish_reason': finish}]})}\n\n"
            if (body.get("stream_options") or {}).get("include_usage"):
                yield f"data: {json.dumps({**base, 'choices': [], 'usage': _usage(prompt, len(words) or 9, cached)})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    async def embeddings(request: Request) -> Response:
        body = await request.json()
        requests.append({"body": body, "auth": request.headers.get("authorization")})
        if body["model"] == "broken":
            return JSONResponse({"error": {"message": "embedder down"}}, status_code=500)
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        dimension = int(body.get("dimensions") or 1536)
        data = []
        for i, text in enumerate(texts):
            vector = fake_vector(text, dimension)
            if body.get("encoding_format") == "base64":  # what the SDK asks for by default
                encoded: Any = base64.b64encode(struct.pack(f"<{dimension}f", *vector)).decode()
            else:
                encoded = vector
            data.append({"object": "embedding", "index": i, "embedding": encoded})
        tokens = word_count(texts)
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def models(request: Request) -> JSONResponse:
        return JSONResponse(
            {"object": "list", "data": [{"id": "gpt-4o", "object": "model", "owned_by": "fake"}]}
        )

    return Starlette(
        routes=[
            Route("/v1/chat/completions", completions, methods=["POST"]),
            Route("/v1/models", models),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
        ]
    )


class FakeOpenAI(AppServer):
    """The fake on a free local port (a context manager); ``base_url`` is what the SDK takes."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        super().__init__(fake_openai_app(self.requests))
        self.base_url = f"{self.url}/v1"
