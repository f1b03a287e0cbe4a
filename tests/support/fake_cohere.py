"""A local server that speaks Cohere's v2 Chat API (JSON and SSE events) for the real SDK."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from linqra.testing.fake_embeddings import fake_vector, word_count
from tests.support.servers import HttpService


def fake_cohere_app(requests: list[dict[str, Any]]) -> Starlette:
    async def chat(request: Request) -> Response:
        body = await request.json()
        requests.append({"body": body, "auth": request.headers.get("authorization")})
        if body["model"] == "malformed":
            return Response(b"{not json", media_type="application/json")
        if body["model"] == "rate-limited":
            return JSONResponse(
                {"message": "too many requests"}, status_code=429, headers={"Retry-After": "1"}
            )
        last_message = body["messages"][-1]
        last = last_message.get("content", "")
        if isinstance(last, list):
            last = " ".join(str(p.get("text", p)) for p in last)
        words = ["Echo:", *str(last).split()]
        prompt = sum(len(str(m.get("content", "")).split()) for m in body["messages"]) + 3
        usage = {
            "billed_units": {"input_tokens": prompt, "output_tokens": len(words)},
            "tokens": {"input_tokens": prompt + 10, "output_tokens": len(words) + 2},
        }
        if body.get("tools") and last_message["role"] == "user":
            name = body["tools"][0]["function"]["name"]
            call = {
                "id": "co_call_1",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps({"query": last})},
            }
            usage["billed_units"]["output_tokens"] = 9
            if not body.get("stream"):
                return JSONResponse(
                    {
                        "id": "co-fake",
                        "finish_reason": "TOOL_CALL",
                        "message": {
                            "role": "assistant",
                            "tool_plan": "I will call it.",
                            "tool_calls": [call],
                        },
                        "usage": usage,
                    }
                )

            def tool_event(data: dict[str, Any]) -> str:
                return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n"

            async def tool_events() -> Any:
                arguments = call["function"]["arguments"]
                half = len(arguments) // 2
                yield tool_event(
                    {
                        "type": "message-start",
                        "id": "co-fake",
                        "delta": {"message": {"role": "assistant"}},
                    }
                )
                start = {**call, "function": {"name": name, "arguments": arguments[:half]}}
                yield tool_event(
                    {
                        "type": "tool-call-start",
                        "index": 0,
                        "delta": {"message": {"tool_calls": start}},
                    }
                )
                yield tool_event(
                    {
                        "type": "tool-call-delta",
                        "index": 0,
                        "delta": {
                            "message": {"tool_calls": {"function": {"arguments": arguments[half:]}}}
                        },
                    }
                )
                yield tool_event({"type": "tool-call-end", "index": 0})
                yield tool_event(
                    {"type": "message-end", "delta": {"finish_reason": "TOOL_CALL", "usage": usage}}
                )

            return StreamingResponse(tool_events(), media_type="text/event-stream")
        if not body.get("stream"):
            return JSONResponse(
                {
                    "id": "co-fake",
                    "finish_reason": "COMPLETE",
                    "message": {
                        "role": "assistant",
                        "content": [{"type": "text", "text": " ".join(words)}],
                    },
                    "usage": usage,
                }
            )

        def event(data: dict[str, Any]) -> str:
            return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n"

        async def events() -> Any:
            yield event(
                {
                    "type": "message-start",
                    "id": "co-fake",
                    "delta": {"message": {"role": "assistant", "content": []}},
                }
            )
            yield event(
                {
                    "type": "content-start",
                    "index": 0,
                    "delta": {"message": {"content": {"type": "text", "text": ""}}},
                }
            )
            for i, word in enumerate(words):
                piece = word if i == 0 else " " + word
                yield event(
                    {
                        "type": "content-delta",
                        "index": 0,
                        "delta": {"message": {"content": {"text": piece}}},
                    }
                )
                await asyncio.sleep(0.005)
            yield event({"type": "content-end", "index": 0})
            yield event(
                {"type": "message-end", "delta": {"finish_reason": "COMPLETE", "usage": usage}}
            )

        return StreamingResponse(events(), media_type="text/event-stream")

    async def embed(request: Request) -> Response:
        body = await request.json()
        requests.append({"body": body, "auth": request.headers.get("authorization")})
        vectors = [fake_vector(t, 1024) for t in body["texts"]]
        return JSONResponse(
            {
                "id": "co-embed",
                "response_type": "embeddings_by_type",
                "embeddings": {"float": vectors},
                "texts": body["texts"],
                "meta": {"billed_units": {"input_tokens": word_count(body["texts"])}},
            }
        )

    return Starlette(
        routes=[
            Route("/v2/chat", chat, methods=["POST"]),
            Route("/v2/embed", embed, methods=["POST"]),
        ]
    )


class FakeCohere(HttpService):
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        super().__init__("fake-cohere", app=fake_cohere_app(self.requests))
