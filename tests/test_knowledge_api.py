"""The Knowledge Hub over HTTP: uploads, ingestion, search and the ingest CLI through the app in
process; ingestion on the Ray cluster (a 400k-token upload, a document left PENDING by a dead
gateway) through the Serve gateway."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.support.http import TeamClient, until
from tests.support.pdf import make_pdf

TEAM = {"X-Team-Id": "team-kh"}
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def kh(client: TestClient) -> TeamClient:
    """The app in process, as team ``team-kh``."""
    return TeamClient(client, "team-kh")


@pytest.fixture
def kh_cluster(gateway_url: str) -> Any:
    """The Serve gateway on the Ray cluster, as team ``team-kh``."""
    with httpx.Client(base_url=gateway_url, headers=TEAM, timeout=60) as http:
        yield http


def wait_ready(client: Any, collection: str, doc_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = client.get(f"/v1/knowledge/collections/{collection}/documents/{doc_id}").json()
        if doc["status"] in ("READY", "FAILED"):
            return doc
        time.sleep(0.2)
    raise AssertionError(f"document {doc_id} still {doc['status']} after {timeout}s")


def test_collection_upload_ingest_search_delete(kh: TeamClient) -> None:
    created = kh.post(
        "/v1/knowledge/collections",
        json={"name": "handbook", "description": "HR", "metadata_fields": {"dept": "string"}},
    )
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    assert created.json()["embedder"] == "local:hash-512" and created.json()["dimension"] == 512
    assert kh.post("/v1/knowledge/collections", json={"name": "handbook"}).status_code == 409
    bad = kh.post("/v1/knowledge/collections", json={"name": "x", "metadata_fields": {"y": "date"}})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "metadata_fields.y"

    files = {
        "leave.md": (
            b"# Leave policy\n\nEmployees get 25 days of paid leave a year. Unused days expire in March.",
            "text/markdown",
        ),
        "security.html": (
            b"<html><title>Security</title><body><p>Badges must be worn at all times.</p><script>evil()</script></body></html>",
            "text/html",
        ),
        "expenses.pdf": (
            make_pdf(
                [
                    "Travel is booked through the portal.",
                    "Meals are reimbursed up to 40 euros a day.",
                ]
            ),
            "application/pdf",
        ),
    }
    ids = {}
    for name, (data, mime) in files.items():
        response = kh.post(
            f"/v1/knowledge/collections/{cid}/documents",
            files={"file": (name, data, mime)},
            data={"metadata": json.dumps({"dept": "hr" if name != "security.html" else "it"})},
        )
        assert response.status_code == 202, response.text
        assert response.json()["status"] in ("PENDING", "PROCESSING", "READY")
        ids[name] = response.json()["id"]
    raw = kh.post(
        f"/v1/knowledge/collections/{cid}/documents",
        json={
            "title": "Remote work",
            "text": "Remote work is allowed two days a week.",
            "metadata": {"dept": "hr"},
        },
    )
    assert raw.status_code == 202
    ids["remote"] = raw.json()["id"]
    docs = {name: wait_ready(kh, cid, doc_id) for name, doc_id in ids.items()}
    assert all(d["status"] == "READY" for d in docs.values()), docs
    assert docs["security.html"]["title"] == "Security" and docs["expenses.pdf"]["pages"] == 2

    again = kh.post(
        f"/v1/knowledge/collections/{cid}/documents",
        files={"file": ("copy.md", files["leave.md"][0], "text/markdown")},
    )
    assert (
        again.status_code == 200
        and again.json()["duplicate"]
        and again.json()["id"] == ids["leave.md"]
    )

    hits = kh.post(
        f"/v1/knowledge/collections/{cid}/search",
        json={"query": "how much are meals reimbursed", "top_k": 2},
    ).json()["results"]
    assert (
        hits[0]["document_id"] == ids["expenses.pdf"] and hits[0]["page_numbers"] == [2]
    ) or hits[0]["page_numbers"] == [1, 2]
    assert set(hits[0]) >= {
        "document_id",
        "title",
        "file_name",
        "page_numbers",
        "rank",
        "score",
        "text",
    }
    it_only = kh.post(
        f"/v1/knowledge/collections/{cid}/search",
        json={"query": "badges leave meals", "top_k": 10, "filter": "dept == 'it'"},
    ).json()["results"]
    assert {h["document_id"] for h in it_only} == {ids["security.html"]}
    by_name = kh.post(
        "/v1/knowledge/collections/handbook/search", json={"query": "paid leave days"}
    ).json()["results"]
    assert by_name[0]["document_id"] == ids["leave.md"]

    listing = kh.get(
        f"/v1/knowledge/collections/{cid}/documents", params={"status": "READY", "limit": 2}
    ).json()
    assert listing["total"] == 4 and len(listing["items"]) == 2 and listing["next_offset"] == 2
    stats = kh.get(f"/v1/knowledge/collections/{cid}").json()
    assert stats["documents"]["READY"] == 4
    chunks = kh.get(
        f"/v1/knowledge/collections/{cid}/documents/{ids['leave.md']}", params={"chunks": "true"}
    ).json()["chunks"]
    assert "25 days" in chunks[0]["text"]

    assert (
        kh.post(f"/v1/knowledge/collections/{cid}/documents/{ids['remote']}/reindex").status_code
        == 202
    )
    assert wait_ready(kh, cid, ids["remote"])["attempts"] == 2
    assert (
        kh.delete(f"/v1/knowledge/collections/{cid}/documents/{ids['leave.md']}").status_code == 204
    )
    after = kh.post(
        f"/v1/knowledge/collections/{cid}/search", json={"query": "paid leave days", "top_k": 10}
    ).json()["results"]
    assert ids["leave.md"] not in {h["document_id"] for h in after}
    assert kh.delete(f"/v1/knowledge/collections/{cid}").status_code == 204
    assert kh.get(f"/v1/knowledge/collections/{cid}").status_code == 404


def test_bad_uploads_and_searches_are_4xx_naming_the_problem(kh: TeamClient) -> None:
    cid = kh.post("/v1/knowledge/collections", json={"name": "strict-api"}).json()["id"]
    url = f"/v1/knowledge/collections/{cid}/documents"
    cases = [
        ({"files": {"file": ("a.pdf", b"not a pdf", "application/pdf")}}, 400, "file"),
        ({"files": {"file": ("a.txt", b"", "text/plain")}}, 400, "file"),
        (
            {"files": {"file": ("a.exe", b"MZ\x00\x00", "application/x-msdownload")}},
            400,
            "mime_type",
        ),
        ({"files": {"nofile": ("a.txt", b"x", "text/plain")}}, 400, "file"),
        (
            {"files": {"file": ("a.txt", b"x", "text/plain")}, "data": {"metadata": "{oops"}},
            400,
            "metadata",
        ),
        ({"json": {"title": "t"}}, 400, "text"),
        ({"json": {"title": "t", "text": "x", "mime_type": "application/pdf"}}, 400, "mime_type"),
        ({"content": b"plain", "headers": {"Content-Type": "text/plain"}}, 400, "content-type"),
    ]
    for kwargs, status, field in cases:
        response = kh.post(url, **kwargs)
        assert response.status_code == status and response.json()["error"]["field"] == field, (
            kwargs,
            response.text,
        )
    too_big = kh.post(
        url, files={"file": ("big.txt", b"a" * (20 * 1024 * 1024 + 70_000), "text/plain")}
    )
    assert too_big.status_code == 413
    refused = too_big.json()["error"]  # refused from Content-Length, before the body is read
    assert refused["field"] == "file"
    assert refused["message"].endswith(
        f"the limit is {20 * 1024 * 1024} bytes for the file (knowledge.max_upload_bytes)"
        " and 64 KiB for the form around it"
    )
    as_json = kh.post(url, json={"title": "t", "text": "a" * (20 * 1024 * 1024 + 70_000)})
    assert as_json.status_code == 413
    refused = as_json.json()["error"]  # a JSON upload: its body is at fault, not a form's file
    assert refused["field"] == "body"
    assert refused["message"].endswith(
        f"the limit is {20 * 1024 * 1024 + 64 * 1024} bytes (knowledge.max_upload_bytes + 64 KiB)"
    )
    # just over the limit, within what the body check allows for the form's own bytes: the
    # file's size is checked once read, and is the same 413
    just_over = kh.post(
        url, files={"file": ("big.txt", b"a" * (20 * 1024 * 1024 + 1), "text/plain")}
    )
    assert just_over.status_code == 413, just_over.text
    assert just_over.json()["error"]["field"] == "file"
    assert (
        kh.post(
            "/v1/knowledge/collections/nope/documents", json={"title": "t", "text": "x"}
        ).status_code
        == 404
    )
    search = f"/v1/knowledge/collections/{cid}/search"
    for body, field in [
        ({"query": "x", "top_k": 0}, "top_k"),
        ({"query": "x", "filter": "size > "}, "filter"),
        ({"query": "x", "filter": "colour == 'red'"}, "filter"),
        ({"vector": [0.5, 0.5]}, "vector"),
        ({"query": "x", "embedder": "openai:text-embedding-3-small"}, "embedder"),
    ]:
        response = kh.post(search, json=body)
        assert response.status_code == 400 and response.json()["error"]["field"] == field, (
            body,
            response.text,
        )
    # another team sees nothing of it
    other = TeamClient(kh.client, "team-other-kh")
    assert other.get(f"/v1/knowledge/collections/{cid}").status_code == 404
    assert other.post(search, json={"query": "x"}).status_code == 404
    assert other.get("/v1/knowledge/collections").json()["total"] == 0


@pytest.mark.ray
def test_an_upload_over_200k_tokens_is_ingested_on_the_cluster(kh_cluster: httpx.Client) -> None:
    """Under 1 MB, one endless sentence of ~400k tokens: 202, then READY (it used to FAIL with
    the tokenizer's TokenLimitError after the 202). On Ray: the ingestion runs in a cluster
    worker (tests/test_knowledge.py has the same document in process)."""
    kh = kh_cluster
    from tests.support.big_text import MARKER, endless_sentence

    cid = kh.post("/v1/knowledge/collections", json={"name": "tome-api"}).json()["id"]
    data = endless_sentence().encode()
    response = kh.post(
        f"/v1/knowledge/collections/{cid}/documents",
        files={"file": ("tome.txt", data, "text/plain")},
    )
    assert response.status_code == 202, response.text
    doc = wait_ready(kh, cid, response.json()["id"], timeout=180)
    assert doc["status"] == "READY", doc["error"]
    assert doc["tokens"] > 200_000 and doc["chunks_done"] == doc["chunks_total"]
    hits = kh.post(
        f"/v1/knowledge/collections/{cid}/search", json={"query": MARKER, "top_k": 3}
    ).json()["results"]
    assert any(MARKER in hit["text"] for hit in hits)


def test_failed_ingestion_is_recorded(kh: TeamClient) -> None:
    cid = kh.post("/v1/knowledge/collections", json={"name": "scans"}).json()["id"]
    response = kh.post(
        f"/v1/knowledge/collections/{cid}/documents",
        files={"file": ("scan.pdf", make_pdf([None]), "application/pdf")},
    )
    assert response.status_code == 202
    doc = wait_ready(kh, cid, response.json()["id"])
    assert doc["status"] == "FAILED" and "no extractable text" in doc["error"]
    hits = kh.post(
        f"/v1/knowledge/collections/{cid}/search", json={"query": "anything", "top_k": 5}
    ).json()["results"]
    assert hits == []


def test_linqra_milvus_search_intent(kh: TeamClient) -> None:
    cid = kh.post("/v1/knowledge/collections", json={"name": "intent"}).json()["id"]
    doc = kh.post(
        f"/v1/knowledge/collections/{cid}/documents",
        json={"title": "t", "text": "The harbour opens at dawn."},
    ).json()
    wait_ready(kh, cid, doc["id"])
    out = kh.post(
        "/api/milvus/collections/intent/search",
        json={"text": "when does the harbour open", "nResults": 1},
    ).json()
    assert out["results"][0]["text"] == "The harbour opens at dawn."


@pytest.mark.ray
def test_a_stale_pending_document_is_picked_up_by_the_reaper(
    ray_cluster: Any, ray_settings: Any, kh_cluster: httpx.Client
) -> None:
    """A document left PENDING (its gateway died before starting ingestion) still gets ingested
    by the cluster's reaper (the supervisor actor)."""
    import asyncio

    import ray

    from linqra.system import System

    kh = kh_cluster

    cid = kh.post("/v1/knowledge/collections", json={"name": "orphans"}).json()["id"]

    async def orphan() -> str:
        system = await System.open(ray_settings)
        try:
            doc, _ = await system.knowledge.add_document(
                "team-kh", cid, b"Left behind by a crash.", file_name="o.txt"
            )
            return str(doc["id"])
        finally:
            await system.close()

    doc_id = asyncio.run(orphan())
    supervisor = ray.get_actor("linqra-supervisor", namespace=ray_settings.ray.namespace)
    assert (
        kh.get(f"/v1/knowledge/collections/{cid}/documents/{doc_id}").json()["status"] == "PENDING"
    )
    # the supervisor's reaper re-submits it once its heartbeat is stale (2 s in the test settings)
    assert wait_ready(kh, cid, doc_id, timeout=30)["status"] == "READY"
    until(lambda: doc_id not in ray.get(supervisor.ingesting.remote()), 10)


def test_linqra_ingest_cli_with_progress(live_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "one.md").write_text(
        "# One\n\n" + " ".join(f"Fact {i} about lighthouses." for i in range(300))
    )
    (folder / "two.txt").write_text("Lighthouse keepers trimmed the wicks every night.")
    (folder / "skip.bin").write_bytes(b"\x00\x01")
    (tmp_path / "scan.pdf").write_bytes(make_pdf([None]))
    out = subprocess.run(
        [sys.executable, "-m", "deployments.cli", "ingest", "lighthouses", str(folder), str(tmp_path / "scan.pdf"),
         "--team", "team-kh", "--url", live_url, "--create", "--metadata", "source=cli"],
        capture_output=True, text=True, timeout=180, cwd=ROOT, env=dict(os.environ),
    )  # fmt: skip
    assert out.returncode == 1, out.stdout + out.stderr  # the scanned PDF fails, and says so
    assert "scan.pdf: FAILED: the PDF has no extractable text" in out.stdout
    assert "2 of 3 file(s) ingested into lighthouses" in out.stdout
    with httpx.Client(base_url=live_url, headers=TEAM) as kh:
        docs = kh.get("/v1/knowledge/collections/lighthouses/documents").json()["items"]
    assert sorted((d["file_name"], d["status"]) for d in docs) == [
        ("one.md", "READY"),
        ("scan.pdf", "FAILED"),
        ("two.txt", "READY"),
    ]
    assert all(d["metadata"] == {"source": "cli"} for d in docs)
