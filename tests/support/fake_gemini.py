"""A local server that speaks Gemini's generateContent / streamGenerateContent (SSE) protocol.

Model ``rate-limited`` answers 429 with Retry-After; others echo the last user turn. Every
stream chunk carries usageMetadata (the last one complete), with cached and thinking tokens.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from linqra.testing.fake_embeddings import fake_vector
from tests.support.servers import HttpService

CACHED, THOUGHTS = 4, 7


def fake_gemini_app(requests: list[dict[str, Any]]) -> Starlette:
    async def generate(request: Request) -> Response:
        model, _, method = request.path_params["rest"].partition(":")
        body = await request.json()
        requests.append(
            {
                "model": model,
                "method": method,
                "body": body,
                "api_key": request.headers.get("x-goog-api-key"),
                "query": dict(request.query_params),
            }
        )
        if method == "batchEmbedContents":
            vectors = [
                {
                    "values": fake_vector(
                        " ".join(p.get("text", "") for p in r["content"]["parts"]),
                        int(r.get("outputDimensionality") or 768),
                    )
                }
                for r in body["requests"]
            ]
            return JSONResponse({"embeddings": vectors})
        if model == "malformed":
            return Response(b"{not json", media_type="application/json")
        if model == "rate-limited":
            return JSONResponse(
                {"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}},
                status_code=429,
                headers={"Retry-After": "4"},
            )
        part = body["contents"][-1]["parts"][0]
        answer = part.get("functionResponse")
        last = json.dumps(answer["response"]) if answer else part["text"]
        words = ["Echo:", *last.split()]
        prompt = (
            sum(len(p.get("text", "").split()) for c in body["contents"] for p in c["parts"]) + 6
        )
        tools = body.get("tools") or []
        if tools and not answer:  # call the first declared function with the question
            name = tools[0]["functionDeclarations"][0]["name"]
            call = {"functionCall": {"id": "gem_call_1", "name": name, "args": {"query": last}}}
            usage = {
                "promptTokenCount": prompt,
                "candidatesTokenCount": 9,
                "totalTokenCount": prompt + 9,
            }
            body_out = {
                "candidates": [
                    {
                        "content": {"role": "model", "parts": [call]},
                        "index": 0,
                        "finishReason": "STOP",
                    }
                ],
                "usageMetadata": usage,
                "modelVersion": model,
                "responseId": "gem-fake",
            }
            if method == "generateContent":
                return JSONResponse(body_out)

            async def one() -> Any:
                yield f"data: {json.dumps(body_out)}\r\n\r\n"

            return StreamingResponse(one(), media_type="text/event-stream")

        def response(text: str, done: bool, count: int) -> dict[str, Any]:
            usage = {
                "promptTokenCount": prompt,
                "cachedContentTokenCount": CACHED,
                "candidatesTokenCount": count,
                "thoughtsTokenCount": THOUGHTS if done else 0,
                "totalTokenCount": prompt + count + (THOUGHTS if done else 0),
            }
            candidate: dict[str, Any] = {
                "content": {"role": "model", "parts": [{"text": text}]},
                "index": 0,
            }
            if done:
                candidate["finishReason"] = "STOP"
            return {
                "candidates": [candidate],
                "usageMetadata": usage,
                "modelVersion": model,
                "responseId": "gem-fake",
            }

        if method == "generateContent":
            return JSONResponse(response(" ".join(words), True, len(words)))

        async def events() -> Any:
            for i, word in enumerate(words):
                piece = word if i == 0 else " " + word
                yield f"data: {json.dumps(response(piece, i == len(words) - 1, i + 1))}\r\n\r\n"
                await asyncio.sleep(0.005)

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1beta/models/{rest:path}", generate, methods=["POST"])])


class FakeGemini(HttpService):
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        super().__init__("fake-gemini", app=fake_gemini_app(self.requests))
