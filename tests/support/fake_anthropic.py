"""A local server that speaks Anthropic's Messages API (JSON and SSE events) for the real SDK.

Model ``rate-limited`` answers 429 with Retry-After, ``overloaded`` 529; others echo the last
user message. Usage includes cache reads and writes, as Anthropic reports them.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support.servers import HttpService

CACHE_READ, CACHE_WRITE = 5, 2


def fake_anthropic_app(requests: list[dict[str, Any]]) -> Starlette:
    async def messages(request: Request) -> Response:
        body = await request.json()
        requests.append(
            {
                "body": body,
                "api_key": request.headers.get("x-api-key")
                or request.headers.get("authorization", "").removeprefix("Bearer "),
                "version": request.headers.get("anthropic-version"),
            }
        )
        model = body["model"]
        if model == "rate-limited":
            return JSONResponse(
                {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}},
                status_code=429,
                headers={"retry-after": "3"},
            )
        if model == "malformed":
            return Response(b"{not json", media_type="application/json")
        if model == "overloaded":
            return JSONResponse(
                {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}},
                status_code=529,
            )
        question = body["messages"][-1]["content"]
        if isinstance(question, list):  # tool_result blocks: echo their content
            question = " ".join(str(b.get("content", "")) for b in question)
        words = ["Echo:", *str(question).split()]
        prompt = sum(len(str(m["content"]).split()) for m in body["messages"]) + len(
            str(body.get("system", "")).split()
        )
        call = None
        if body.get("tools") and isinstance(body["messages"][-1]["content"], str):
            call = {
                "type": "tool_use",
                "id": "toolu_fake_1",
                "name": body["tools"][0]["name"],
                "input": {"query": question},
            }
            words = []
        usage = {
            "input_tokens": prompt,
            "output_tokens": len(words) or 9,
            "cache_creation_input_tokens": CACHE_WRITE,
            "cache_read_input_tokens": CACHE_READ,
        }
        message = {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [call] if call else [{"type": "text", "text": " ".join(words)}],
            "stop_reason": "tool_use" if call else "end_turn",
            "stop_sequence": None,
            "usage": usage,
        }
        if not body.get("stream"):
            return JSONResponse(message)

        def event(name: str, data: dict[str, Any]) -> str:
            return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n"

        async def events() -> Any:
            start = {
                **message,
                "content": [],
                "stop_reason": None,
                "usage": {**usage, "output_tokens": 1},
            }
            yield event("message_start", {"message": start})
            if call is not None:
                arguments = json.dumps(call["input"])
                yield event(
                    "content_block_start",
                    {"index": 0, "content_block": {**call, "input": {}}},
                )
                for piece in (arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]):
                    yield event(
                        "content_block_delta",
                        {"index": 0, "delta": {"type": "input_json_delta", "partial_json": piece}},
                    )
                yield event("content_block_stop", {"index": 0})
                yield event(
                    "message_delta",
                    {
                        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                        "usage": {"output_tokens": 9},
                    },
                )
                yield event("message_stop", {})
                return
            yield event(
                "content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}
            )
            for i, word in enumerate(words):
                yield event(
                    "content_block_delta",
                    {
                        "index": 0,
                        "delta": {"type": "text_delta", "text": word if i == 0 else " " + word},
                    },
                )
                await asyncio.sleep(0.005)
            yield event("content_block_stop", {"index": 0})
            yield event(
                "message_delta",
                {
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": len(words)},
                },
            )
            yield event("message_stop", {})

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/messages", messages, methods=["POST"])])


class FakeAnthropic(HttpService):
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        super().__init__("fake-anthropic", app=fake_anthropic_app(self.requests))
