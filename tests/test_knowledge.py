"""The Knowledge Hub on a real Milvus Lite server: collections, ingestion, search, filters, tenancy."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from linqra.errors import Conflict, NotFound, ValidationError
from linqra.knowledge.extract import chunk_pages, detect_type, extract
from linqra.knowledge.filters import compile_filter
from linqra.llm.embeddings import HashingEmbedder
from linqra.system import System
from tests.support.pdf import make_pdf

STOICS = """# The Stoics

Seneca advised Nero and wrote letters on anger, grief and the shortness of life.
Marcus Aurelius kept a private journal in Greek, later called the Meditations.
Epictetus was born a slave in Hierapolis and taught that some things are up to us.

## Later influence

The Stoic idea of the dichotomy of control shaped cognitive behavioural therapy.
"""


@pytest.fixture
async def hub(system: System) -> Any:
    return system.knowledge


async def ingest_text(
    hub: Any, team: str, collection: str, text: str, **kwargs: Any
) -> dict[str, Any]:
    doc, created = await hub.add_document(team, collection, text.encode(), **kwargs)
    assert created and doc["status"] == "PENDING"
    return await hub.ingest(team, doc["id"])


async def test_upload_ingest_search_with_citations(hub: Any) -> None:
    await hub.create_collection(
        "acme", {"name": "library", "metadata_fields": {"era": "string", "year": "int"}}
    )
    md = await ingest_text(
        hub,
        "acme",
        "library",
        STOICS,
        file_name="stoics.md",
        metadata={"era": "ancient", "year": 160},
    )
    assert md["status"] == "READY" and md["chunks_done"] == md["chunks_total"] >= 1
    assert md["title"] == "The Stoics" and md["mime_type"] == "text/markdown"
    pdf = make_pdf(
        [
            "Cicero wrote On Duties for his son.",
            None,
            "The Roman republic fell when Caesar crossed the Rubicon.",
        ],
        title="Romans",
    )
    doc, _ = await hub.add_document(
        "acme", "library", pdf, file_name="romans.pdf", metadata={"era": "republic", "year": -44}
    )
    done = await hub.ingest("acme", doc["id"])
    assert done["status"] == "READY" and done["pages"] == 3 and done["title"] == "Romans"

    hits = await hub.search(
        "acme", "library", query="who taught that some things are up to us?", top_k=3
    )
    best = hits[0]
    assert best["document_id"] == md["id"] and "Epictetus" in best["text"]
    assert best["rank"] == 1 and best["file_name"] == "stoics.md" and 0 < best["score"] <= 1
    assert best["metadata"] == {"era": "ancient", "year": 160}
    roman = await hub.search("acme", "library", query="Caesar crossed the Rubicon", top_k=1)
    assert roman[0]["document_id"] == doc["id"] and roman[0]["page_numbers"] == [1, 2, 3]

    # metadata filters, as text and as JSON: only the matching document comes back
    for flt in ('era == "republic"', {"year": {"$lt": 0}}, "year < 0 and not (era in ['ancient'])"):
        only = await hub.search(
            "acme", "library", query="Stoic letters on anger", top_k=5, filter=flt
        )
        assert {h["document_id"] for h in only} == {doc["id"]}, flt
    assert await hub.search("acme", "library", query="Seneca", top_k=5, min_score=0.99) == []

    # fetch a document with its chunks
    fetched = await hub.get_document("acme", "library", doc["id"], chunks=True)
    assert fetched["progress"] == 1.0 and "Rubicon" in " ".join(
        c["text"] for c in fetched["chunks"]
    )


async def test_same_bytes_twice_is_one_document_and_reindex_converges(hub: Any) -> None:
    await hub.create_collection("acme", {"name": "dupes"})
    first = await ingest_text(hub, "acme", "dupes", "Only once, please.", file_name="a.txt")
    again, created = await hub.add_document(
        "acme", "dupes", b"Only once, please.", file_name="b.txt"
    )
    assert not created and again["id"] == first["id"]
    assert (await hub.list_documents("acme", "dupes"))[1] == 1
    await hub.mark_for_reindex("acme", "dupes", first["id"])
    redone = await hub.ingest("acme", first["id"])
    collection = await hub.get_collection("acme", "dupes")
    assert redone["status"] == "READY" and redone["attempts"] == 2
    assert await hub.vectors.count(collection.vector_collection, "acme") == redone["chunks_total"]


async def test_teams_never_see_each_others_collections_or_vectors(hub: Any) -> None:
    mine = await hub.create_collection("team-a", {"name": "private"})
    await ingest_text(
        hub, "team-a", "private", "The launch code is swordfish.", file_name="secret.txt"
    )
    with pytest.raises(NotFound):
        await hub.get_collection("team-b", mine.id)
    with pytest.raises(NotFound):
        await hub.search("team-b", "private", query="launch code")
    await hub.create_collection("team-b", {"name": "private"})  # same name, another team
    assert await hub.search("team-b", "private", query="launch code swordfish") == []
    # even the physical collection filters by team: team-b's query on team-a's vectors finds nothing
    hits = await hub.vectors.search(
        mine.vector_collection, "team-b", HashingEmbedder().vector("launch code"), top_k=5
    )
    assert hits == []


@pytest.mark.parametrize(
    ("data", "name", "mime", "field", "message"),
    [
        (b"", "a.txt", None, "file", "empty"),
        (b"%PDF-1.4 not really", "a.txt", None, "file", "is a PDF but is labelled"),
        (b"hello", "a.pdf", None, "file", "labelled PDF but is not"),
        (b"hello", "a.docx", None, "file", "cannot tell the type"),
        (b"hello", "a.txt", "application/msword", "mime_type", "unsupported file type"),
        (b"\x00\x01\x02binary", "a.txt", None, "file", "binary"),
        (make_pdf([None, None]), "scan.pdf", None, "file", "no extractable text"),
    ],
)
async def test_bad_files_are_refused_naming_the_problem(
    hub: Any, data: bytes, name: str, mime: str | None, field: str, message: str
) -> None:
    await hub.create_collection("acme", {"name": "strict"})
    with pytest.raises(ValidationError) as err:
        doc, _ = await hub.add_document("acme", "strict", data, file_name=name, mime_type=mime)
        done = await hub.ingest("acme", doc["id"])  # the PDF without text fails at extraction
        assert done["status"] == "FAILED"
        raise ValidationError(done["error"], field="file")
    assert err.value.field == field and message in err.value.message


async def test_over_the_size_limit_and_other_bad_requests(hub: Any, system: System) -> None:
    await hub.create_collection("acme", {"name": "limits", "metadata_fields": {"year": "int"}})
    big = b"a" * (system.settings.knowledge.max_upload_bytes + 1)
    with pytest.raises(ValidationError, match="limit"):
        await hub.add_document("acme", "limits", big, file_name="big.txt")
    with pytest.raises(ValidationError) as err:
        await hub.add_document("acme", "limits", b"x", file_name="a.txt", metadata={"year": "1990"})
    assert err.value.field == "metadata.year"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"query": "x", "top_k": 0}, "top_k"),
        ({"query": "x", "top_k": 101}, "top_k"),
        ({"query": ""}, "query"),
        ({"vector": [0.1, 0.2]}, "vector"),
        ({"query": "x", "embedder": "openai:text-embedding-3-small"}, "embedder"),
        ({"query": "x", "filter": "year >"}, "filter"),
        ({"query": "x", "filter": "colour == 'red'"}, "filter"),
        ({"query": "x", "filter": {"year": "old"}}, "filter"),
        ({"query": "x", "min_score": 2}, "min_score"),
    ]
    for kwargs, field in cases:
        with pytest.raises(ValidationError) as err:
            await hub.search("acme", "limits", **kwargs)
        assert err.value.field == field, kwargs
    with pytest.raises(Conflict):
        await hub.create_collection("acme", {"name": "limits"})
    for body, field in [
        ({"name": "bad name!"}, "name"),
        ({"name": "ok", "metadata_fields": {"text": "string"}}, "metadata_fields.text"),
        ({"name": "ok", "metadata_fields": {"year": "date"}}, "metadata_fields.year"),
        ({"name": "ok", "embedder": "nosuch:model"}, "embedder"),
        ({"name": "ok", "chunk_tokens": 10}, "chunk_tokens"),
    ]:
        with pytest.raises(ValidationError) as err:
            await hub.create_collection("acme", body)
        assert err.value.field == field, body


async def test_a_failed_ingestion_is_marked_failed_and_leaves_no_vectors(hub: Any) -> None:
    collection = await hub.create_collection(
        "acme", {"name": "fragile", "chunk_tokens": 32, "chunk_overlap": 0}
    )
    text = " ".join(f"Sentence number {i} talks about topic {i % 7}." for i in range(400))
    doc, _ = await hub.add_document("acme", "fragile", text.encode(), file_name="long.txt")
    real_upsert = hub.vectors.upsert
    calls = 0

    async def flaky_upsert(name: str, team: str, rows: list[dict[str, Any]]) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:  # the first batch is stored, the second fails: nothing may remain
            raise RuntimeError("disk full")
        await real_upsert(name, team, rows)

    hub.vectors.upsert = flaky_upsert
    try:
        failed = await hub.ingest("acme", doc["id"])
    finally:
        hub.vectors.upsert = real_upsert
    assert failed["status"] == "FAILED" and "disk full" in failed["error"]
    assert failed["chunks_done"] == 64 and failed["chunks_total"] > 64
    assert await hub.vectors.count(collection.vector_collection, "acme") == 0
    hub.vectors._loaded.clear()
    await hub.mark_for_reindex("acme", "fragile", doc["id"])
    assert (await hub.ingest("acme", doc["id"]))["status"] == "READY"


async def test_a_document_over_200k_tokens_in_one_sentence_is_ingested(hub: Any) -> None:
    """The tokenizer refuses 200,000 tokens in one call; such a text (840 KB, ~400k tokens, no
    sentence end) used to be accepted and then FAILED with TokenLimitError."""
    from tests.support.big_text import MARKER, endless_sentence

    await hub.create_collection("acme", {"name": "tome"})
    text = endless_sentence()
    assert len(text.encode()) < 1024 * 1024
    done = await ingest_text(hub, "acme", "tome", text, file_name="tome.txt")
    assert done["status"] == "READY", done["error"]
    assert done["tokens"] > 200_000 and done["chunks_done"] == done["chunks_total"] > 1000
    hits = await hub.search("acme", "tome", query=MARKER, top_k=3)
    assert any(MARKER in hit["text"] for hit in hits)


def test_type_detection_extraction_and_chunking() -> None:
    assert detect_type(b"<html>", "page.htm", None) == "text/html"
    assert detect_type(b"%PDF-1.7", None, None) == "application/pdf"
    assert detect_type(b"# x", "notes.md", "text/x-markdown") == "text/markdown"
    pages, title = extract(
        b"<html><head><title>T</title><style>p{}</style></head><body><p>One.</p><script>x()</script><p>Two &amp; three.</p></body></html>",
        "text/html",
    )
    assert title == "T" and pages[0].text == "One.\n\nTwo & three."
    for text in (
        " ".join(f"w{i}" for i in range(1500)),  # one endless sentence
        " ".join(f"Sentence {i} is here." for i in range(400)),
    ):
        pages, _ = extract(text.encode(), "text/plain")
        chunks = chunk_pages(pages, 100, 20)
        assert all(c.tokens <= 100 for c in chunks) and len(chunks) > 10
        for before, after in itertools.pairwise(chunks):
            tail = before.text.split()[-3:]
            assert after.text.split()[:3] == tail or " ".join(tail) in after.text[:120]
        whole = [set(c.text.replace(".", " ").split()) for c in chunks]
        missing = [
            w for w in set(text.replace(".", " ").split()) if not any(w in ws for ws in whole)
        ]
        assert missing == []  # a word cut at a chunk's end is whole in the next one (overlap)


def test_filter_compilation() -> None:
    fields = {"author": "string", "year": "int", "score": "float", "draft": "bool"}
    assert (
        compile_filter('author == "O\'Neil" and year >= 1900', fields)
        == '(author == "O\'Neil" and year >= 1900)'
    )
    assert (
        compile_filter("not draft == true or score < 0.5", fields)
        == "(not (draft == true) or score < 0.5)"
    )
    assert compile_filter(
        {"author": {"$in": ["a", "b"]}, "$or": [{"year": 1}, {"draft": False}]}, fields
    ) == ('author in ["a", "b"] and ((year == 1) or (draft == false))')
    injected = compile_filter('author == "x\\" or team_id != \\"y"', fields)
    assert (
        injected.startswith("author == ") and "team_id" in injected
    )  # only ever inside a string literal
    for bad in ("year", "year == ", "(year == 1", "year == 'x'", "team_id == 'b'", "year === 1"):
        with pytest.raises(ValidationError):
            compile_filter(bad, fields)


@pytest.mark.parametrize(
    ("embedder", "dimension"),
    [
        ("openai:text-embedding-3-small", 256),
        ("gemini:gemini-embedding-001", 768),
        ("cohere:embed-english-v3.0", None),
    ],
)
async def test_provider_embedders_are_used_priced_and_recorded(
    tmp_path: Any,
    http_service: Any,
    http_service_b: Any,
    fake_openai: Any,
    fake_gemini: Any,
    fake_cohere: Any,
    milvus_uri: str,
    monkeypatch: pytest.MonkeyPatch,
    embedder: str,
    dimension: int | None,
) -> None:
    from linqra.config import LLMProviderConfig
    from tests.conftest import make_settings

    monkeypatch.setenv("LINQRA_TEST_GEMINI_KEY", "g-test")
    monkeypatch.setenv("LINQRA_TEST_COHERE_KEY", "co-test")
    settings = make_settings(tmp_path, http_service, http_service_b, fake_openai, milvus=milvus_uri)
    providers = dict(settings.llm.providers)
    providers["gemini"] = LLMProviderConfig(
        kind="gemini", base_url=fake_gemini.url, api_key_env="LINQRA_TEST_GEMINI_KEY"
    )
    providers["cohere"] = LLMProviderConfig(
        kind="cohere", base_url=fake_cohere.url, api_key_env="LINQRA_TEST_COHERE_KEY"
    )
    settings = settings.model_copy(
        update={"llm": settings.llm.model_copy(update={"providers": providers})}
    )
    system = await System.open(settings)
    try:
        hub = system.knowledge
        body: dict[str, Any] = {"name": "vendor", "embedder": embedder}
        if dimension:
            body["dimension"] = dimension
        collection = await hub.create_collection("acme", body)
        assert collection.embedder == embedder
        doc = await ingest_text(
            hub,
            "acme",
            "vendor",
            "Lighthouses guide ships. Bakeries sell bread.",
            file_name="a.txt",
        )
        assert doc["status"] == "READY", doc["error"]
        hits = await hub.search("acme", "vendor", query="ships lighthouses", top_k=1)
        assert hits and "Lighthouses" in hits[0]["text"]
        records = await system.store.find("llm_usage", "acme")
        by_caller = {r["caller"]["type"]: r for r in records}
        assert len(records) == 2 and set(by_caller) == {"knowledge", "knowledge.search"}
        provider, model = embedder.split(":")
        assert all(r["provider"] == provider and r["model"] == model for r in records)
        assert all(r["cost"] is not None and float(r["cost"]) > 0 for r in records)
        assert by_caller["knowledge.search"]["input_tokens"] >= 2
    finally:
        await system.close()


async def test_a_failing_provider_embedder_fails_the_document_cleanly(
    tmp_path: Any, http_service: Any, http_service_b: Any, fake_openai: Any, milvus_uri: str
) -> None:
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, http_service, http_service_b, fake_openai, milvus=milvus_uri)
    system = await System.open(settings)
    try:
        hub = system.knowledge
        collection = await hub.create_collection(
            "acme", {"name": "down", "embedder": "openai:broken", "dimension": 64}
        )
        doc, _ = await hub.add_document("acme", "down", b"some text to embed", file_name="a.txt")
        failed = await hub.ingest("acme", doc["id"])
        assert failed["status"] == "FAILED" and "embedder down" in failed["error"]
        assert await hub.vectors.count(collection.vector_collection, "acme") == 0
        with pytest.raises(ValidationError) as err:
            await hub.create_collection("acme", {"name": "x", "embedder": "openai:my-own-model"})
        assert err.value.field == "dimension"
    finally:
        await system.close()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\x01\x02binary", "binary"),
        (b"caf\xe9 latin-1", "UTF-8"),
        (b"\xff\xfeabc", "UTF-16"),  # a byte-order mark, then an odd number of bytes
    ],
)
def test_text_that_cannot_be_read_is_refused_at_upload(data: bytes, message: str) -> None:
    """Before anything is stored or ingested: the upload itself is the 400."""
    from linqra.knowledge.extract import detect_type

    with pytest.raises(ValidationError, match=message) as err:
        detect_type(data, "a.txt", None)
    assert err.value.field == "file"
    assert detect_type("café".encode("utf-16"), "a.txt", None) == "text/plain"
