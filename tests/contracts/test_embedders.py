"""The embedder contract (:class:`linqra.llm.embeddings.Embedder`), run on the offline
``local:hash-512`` and on the OpenAI, Gemini and Cohere embedders against their wire-protocol
fakes. A small server of this module answers each vendor's embedding route wrongly on purpose
(too few vectors, too long ones, 429, 500), so every adapter's checks and error translation run."""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from linqra.errors import ProviderError
from linqra.llm.cohere import CohereProvider
from linqra.llm.embeddings import (
    CohereEmbedder,
    Embedder,
    GeminiEmbedder,
    HashingEmbedder,
    OpenAIEmbedder,
)
from linqra.llm.gemini import GeminiProvider
from linqra.llm.openai import OpenAIProvider
from tests.support.servers import HttpService, free_port

CAT = "The cat sat on the warm mat by the kitchen door."
CAT_AGAIN = "A cat sat on the warm mat near the door."
REVENUE = "Quarterly revenue grew eleven percent in northern markets."


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


class EmbedderContract:
    """Every embedder, the offline one included."""

    expected_name: str
    estimated: bool  # the provider reports no token count

    async def test_name_is_provider_colon_model(self, embedder: Embedder) -> None:
        assert embedder.name == self.expected_name == f"{embedder.provider}:{embedder.model}"

    async def test_one_vector_per_text_in_the_order_given(self, embedder: Embedder) -> None:
        texts = [CAT, REVENUE, CAT_AGAIN]
        together = await embedder.embed(texts, "document")
        alone = [(await embedder.embed([t], "document")).vectors[0] for t in texts]
        assert len(together.vectors) == 3
        for got, want in zip(together.vectors, alone, strict=True):
            assert got == pytest.approx(want, abs=1e-6)

    async def test_vectors_have_the_dimension_and_unit_length(self, embedder: Embedder) -> None:
        result = await embedder.embed([CAT, REVENUE], "query")
        for vector in result.vectors:
            assert len(vector) == embedder.dimension
            assert math.sqrt(sum(v * v for v in vector)) == pytest.approx(1.0, abs=1e-5)

    async def test_a_text_is_nearer_to_one_sharing_its_words_than_to_one_sharing_none(
        self, embedder: Embedder
    ) -> None:
        cat, again, revenue = (await embedder.embed([CAT, CAT_AGAIN, REVENUE], "document")).vectors
        assert _cosine(cat, again) > _cosine(cat, revenue) + 0.2

    async def test_input_tokens_are_billed_and_estimated_only_when_counted_locally(
        self, embedder: Embedder
    ) -> None:
        result = await embedder.embed([CAT, REVENUE], "document")
        assert result.input_tokens > 0 and result.estimated is self.estimated

    async def test_an_empty_list_of_texts_gives_no_vectors(self, embedder: Embedder) -> None:
        result = await embedder.embed([], "document")
        assert result.vectors == [] and result.input_tokens == 0


class ProviderEmbedderContract(EmbedderContract):
    """What only an embedder behind a network provider can show."""

    @pytest.fixture
    def requests(self) -> list[dict[str, Any]]:
        raise NotImplementedError  # the fake's request log

    @pytest.fixture
    def embedder_at(self) -> Callable[[str, str, int], Embedder]:
        raise NotImplementedError  # (server URL, model, dimension) → an embedder

    async def test_an_empty_list_of_texts_calls_no_provider(
        self, embedder: Embedder, requests: list[dict[str, Any]]
    ) -> None:
        before = len(requests)
        await embedder.embed([], "query")
        assert len(requests) == before

    async def test_a_provider_that_cannot_be_reached_is_a_retryable_provider_error(
        self, embedder_at: Callable[[str, str, int], Embedder]
    ) -> None:
        embedder = embedder_at(f"http://127.0.0.1:{free_port()}", "m-1", 8)
        with pytest.raises(ProviderError) as err:
            await embedder.embed([CAT], "document")
        assert err.value.retryable

    @pytest.mark.parametrize(
        ("model", "status", "retry_after"), [("rate-limited", 429, 2.0), ("broken", 500, None)]
    )
    async def test_a_rate_limit_or_a_5xx_is_a_retryable_provider_error(
        self,
        embedder_at: Callable[[str, str, int], Embedder],
        misbehaving: str,
        model: str,
        status: int,
        retry_after: float | None,
    ) -> None:
        with pytest.raises(ProviderError) as err:
            await embedder_at(misbehaving, model, 8).embed([CAT], "document")
        assert err.value.retryable and err.value.upstream_status == status
        assert err.value.retry_after == retry_after

    @pytest.mark.parametrize("model", ["short", "wide"])
    async def test_the_wrong_number_or_dimension_of_vectors_is_a_malformed_response(
        self, embedder_at: Callable[[str, str, int], Embedder], misbehaving: str, model: str
    ) -> None:
        with pytest.raises(ProviderError) as err:
            await embedder_at(misbehaving, model, 8).embed([CAT, REVENUE], "document")
        assert err.value.code == "malformed_response" and not err.value.retryable


# -- the adapters ------------------------------------------------------------------------------
class TestHashingEmbedder(EmbedderContract):
    expected_name = "local:hash-512"
    estimated = False  # the offline embedder is its own provider: its count is the count

    @pytest.fixture
    def embedder(self) -> Embedder:
        return HashingEmbedder(512)

    async def test_the_same_text_always_gets_the_same_vector(self, embedder: Embedder) -> None:
        first = (await embedder.embed([CAT], "document")).vectors[0]
        assert (await HashingEmbedder(512).embed([CAT], "query")).vectors[0] == first


class TestOpenAIEmbedder(ProviderEmbedderContract):
    expected_name = "openai:text-embedding-3-small"
    estimated = False

    @pytest.fixture
    async def embedder_at(self) -> AsyncIterator[Callable[[str, str, int], Embedder]]:
        providers: list[OpenAIProvider] = []

        def make(url: str, model: str, dimension: int) -> Embedder:
            providers.append(OpenAIProvider("openai", base_url=f"{url}/v1", api_key="k", timeout=5))
            return OpenAIEmbedder(providers[-1], model, dimension)

        yield make
        for provider in providers:
            await provider.aclose()

    @pytest.fixture
    def embedder(
        self, embedder_at: Callable[[str, str, int], Embedder], fake_openai: Any
    ) -> Embedder:
        return embedder_at(fake_openai.url, "text-embedding-3-small", 256)

    @pytest.fixture
    def requests(self, fake_openai: Any) -> list[dict[str, Any]]:
        return fake_openai.requests  # type: ignore[no-any-return]


class TestGeminiEmbedder(ProviderEmbedderContract):
    expected_name = "gemini:gemini-embedding-001"
    estimated = True  # Gemini's embedding API reports no token count

    @pytest.fixture
    async def embedder_at(self) -> AsyncIterator[Callable[[str, str, int], Embedder]]:
        providers: list[GeminiProvider] = []

        def make(url: str, model: str, dimension: int) -> Embedder:
            providers.append(GeminiProvider("gemini", base_url=url, api_key="k", timeout=5))
            return GeminiEmbedder(providers[-1], model, dimension)

        yield make
        for provider in providers:
            await provider.aclose()

    @pytest.fixture
    def embedder(
        self, embedder_at: Callable[[str, str, int], Embedder], fake_gemini: Any
    ) -> Embedder:
        return embedder_at(fake_gemini.url, "gemini-embedding-001", 768)

    @pytest.fixture
    def requests(self, fake_gemini: Any) -> list[dict[str, Any]]:
        return fake_gemini.requests  # type: ignore[no-any-return]

    async def test_kind_is_sent_as_the_task_type(
        self, embedder: Embedder, fake_gemini: Any
    ) -> None:
        await embedder.embed([CAT], "query")
        await embedder.embed([CAT], "document")
        sent = [r["body"]["requests"][0]["taskType"] for r in fake_gemini.requests[-2:]]
        assert sent == ["RETRIEVAL_QUERY", "RETRIEVAL_DOCUMENT"]


class TestCohereEmbedder(ProviderEmbedderContract):
    expected_name = "cohere:embed-english-v3.0"
    estimated = False

    @pytest.fixture
    async def embedder_at(self) -> AsyncIterator[Callable[[str, str, int], Embedder]]:
        providers: list[CohereProvider] = []

        def make(url: str, model: str, dimension: int) -> Embedder:
            providers.append(CohereProvider("cohere", base_url=url, api_key="k", timeout=5))
            return CohereEmbedder(providers[-1], model, dimension)

        yield make
        for provider in providers:
            await provider.aclose()

    @pytest.fixture
    def embedder(
        self, embedder_at: Callable[[str, str, int], Embedder], fake_cohere: Any
    ) -> Embedder:
        return embedder_at(fake_cohere.url, "embed-english-v3.0", 1024)  # the fake's size

    @pytest.fixture
    def requests(self, fake_cohere: Any) -> list[dict[str, Any]]:
        return fake_cohere.requests  # type: ignore[no-any-return]

    async def test_kind_is_sent_as_the_input_type(
        self, embedder: Embedder, fake_cohere: Any
    ) -> None:
        await embedder.embed([CAT], "query")
        await embedder.embed([CAT], "document")
        sent = [r["body"]["input_type"] for r in fake_cohere.requests[-2:]]
        assert sent == ["search_query", "search_document"]


# -- a server that answers every vendor's embedding route wrongly, by model name ----------------
def _misbehaving_app() -> Starlette:
    """``short``: one vector too few; ``wide``: vectors of 9 floats (the embedders ask for 8);
    ``rate-limited``: 429 with Retry-After 2; ``broken``: 500."""

    def vectors(model: str, count: int) -> list[list[float]]:
        if model == "short":
            return [[1.0] * 8 for _ in range(count - 1)]
        return [[1.0] * 9 for _ in range(count)]

    def failure(model: str, body: dict[str, Any]) -> Response | None:
        if model == "rate-limited":
            return JSONResponse(body | {"message": "slow down"}, 429, {"Retry-After": "2"})
        if model == "broken":
            return JSONResponse(body | {"message": "exploded"}, 500)
        return None

    async def openai(request: Request) -> Response:
        body = await request.json()
        texts = body["input"]
        failed = failure(body["model"], {"error": {"message": "no", "type": "x"}})
        if failed is not None:
            return failed
        data = []
        for i, vector in enumerate(vectors(body["model"], len(texts))):
            encoded: Any = vector
            if body.get("encoding_format") == "base64":
                encoded = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": encoded})
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            }
        )

    async def gemini(request: Request) -> Response:
        model = request.path_params["rest"].partition(":")[0]
        body = await request.json()
        status = {"rate-limited": (429, "RESOURCE_EXHAUSTED"), "broken": (500, "INTERNAL")}
        code, name = status.get(model, (0, ""))
        failed = failure(model, {"error": {"code": code, "message": "no", "status": name}})
        if failed is not None:
            return failed
        out = [{"values": v} for v in vectors(model, len(body["requests"]))]
        return JSONResponse({"embeddings": out})

    async def cohere(request: Request) -> Response:
        body = await request.json()
        failed = failure(body["model"], {})
        if failed is not None:
            return failed
        return JSONResponse(
            {
                "id": "bad",
                "response_type": "embeddings_by_type",
                "embeddings": {"float": vectors(body["model"], len(body["texts"]))},
                "texts": body["texts"],
                "meta": {"billed_units": {"input_tokens": 1}},
            }
        )

    return Starlette(
        routes=[
            Route("/v1/embeddings", openai, methods=["POST"]),
            Route("/v1beta/models/{rest:path}", gemini, methods=["POST"]),
            Route("/v2/embed", cohere, methods=["POST"]),
        ]
    )


@pytest.fixture(scope="module")
def misbehaving() -> Iterator[str]:
    with HttpService("misbehaving-embeddings", app=_misbehaving_app()) as server:
        yield server.url
