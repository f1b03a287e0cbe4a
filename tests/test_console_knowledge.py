"""The console's knowledge area in a real headless Chromium: a collection created (a refused
name shown on its field), text files uploaded with their progress and followed until indexed,
the collection searched and the upload found with its text, score and source, then deleted."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.support.browser import ARTIFACTS, Console

REMOTE = b"Remote work is allowed two days a week. Ask your manager before changing the days.\n"
TRAVEL = b"Travel is booked through the travel desk. Economy class for flights under six hours.\n"


def test_collection_upload_until_indexed_and_search(console: Console) -> None:
    console.allow(r"status of 400")  # the refused name, on purpose
    page = console.open("/knowledge")
    expect(page.get_by_test_id("empty-state")).to_contain_text("No collections yet")
    page.get_by_role("button", name="New collection").click()
    dialog = page.get_by_role("dialog", name="New collection")
    name = dialog.get_by_label("Name")
    name.fill("bad name!")
    dialog.get_by_role("button", name="Create").click()
    expect(name).to_have_attribute("aria-invalid", "true")
    expect(dialog).to_contain_text("name")

    name.fill("handbook")
    dialog.get_by_label("Description").fill("HR policies")
    dialog.get_by_role("button", name="Create").click()
    page.wait_for_url(re.compile(r"/console/knowledge/[^/]+$"))
    expect(page.get_by_role("heading", name="handbook")).to_be_visible()
    expect(page.get_by_test_id("empty-state")).to_contain_text("No documents yet")

    page.locator("input[type=file]").set_input_files(
        [
            {"name": "remote.txt", "mimeType": "text/plain", "buffer": REMOTE},
            {"name": "travel.txt", "mimeType": "text/plain", "buffer": TRAVEL},
        ]
    )
    page.get_by_role("button", name="Upload").click()
    uploads = page.get_by_test_id("upload")
    expect(uploads).to_have_count(2)
    for upload in uploads.all():
        expect(upload).to_have_attribute("data-state", "uploaded")
        expect(upload.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    documents = page.get_by_test_id("document")
    expect(documents).to_have_count(2)
    for document in documents.all():
        expect(document).to_have_attribute("data-status", "READY")
    expect(uploads.filter(has_text="remote.txt")).to_contain_text("ready")

    collection = page.url.rsplit("/", 1)[1]
    # an empty file is refused at once (the upload says why); a binary one fails its ingestion
    blob = b"\x00\x01\x02 not text \xff\xfe"
    page.locator("input[type=file]").set_input_files(
        [
            {"name": "empty.txt", "mimeType": "text/plain", "buffer": b""},
            {"name": "blob.txt", "mimeType": "text/plain", "buffer": blob},
        ]
    )
    page.get_by_role("button", name="Upload").click()
    with console.api() as http:
        refused = http.post(
            f"/v1/knowledge/collections/{collection}/documents",
            files={"file": ("empty.txt", b"", "text/plain")},
        )
    assert refused.status_code == 400, refused.text
    empty = uploads.filter(has_text="empty.txt")
    expect(empty).to_have_attribute("data-state", "failed")
    expect(empty).to_contain_text(refused.json()["error"]["message"])
    expect(documents).to_have_count(3)
    broken = documents.filter(has_text="blob.txt")
    expect(broken).to_have_attribute("data-status", "FAILED")
    with console.api() as http:
        failed = http.get(
            f"/v1/knowledge/collections/{collection}/documents", params={"status": "FAILED"}
        ).json()["items"]
    assert [d["file_name"] for d in failed] == ["blob.txt"] and failed[0]["error"]
    expect(broken).to_contain_text(failed[0]["error"])

    with console.api() as http:
        listed = http.get(
            f"/v1/knowledge/collections/{collection}/documents", params={"status": "READY"}
        ).json()
    assert sorted((d["file_name"], d["status"]) for d in listed["items"]) == [
        ("remote.txt", "READY"),
        ("travel.txt", "READY"),
    ]
    remote = next(d for d in listed["items"] if d["file_name"] == "remote.txt")

    search = page.get_by_role("region", name="search")
    search.get_by_label("Query").fill("how many days of remote work")
    search.get_by_role("button", name="Search").click()
    hits = page.get_by_test_id("search-hit")
    expect(hits.first).to_be_visible()
    best = hits.first
    expect(best.get_by_test_id("hit-text")).to_contain_text(
        "Remote work is allowed two days a week."
    )
    expect(best.get_by_test_id("hit-source")).to_have_text(remote["title"] or "remote.txt")
    expect(best.get_by_test_id("hit-score")).to_have_text(re.compile(r"^score 0\.\d{3}$"))
    with console.api() as http:
        found = http.post(
            f"/v1/knowledge/collections/{collection}/search",
            json={"query": "how many days of remote work", "top_k": 5},
        ).json()["results"]
    expect(hits).to_have_count(len(found))
    expect(best.get_by_test_id("hit-score")).to_have_text(f"score {found[0]['score']:.3f}")

    assert not console.accessibility()
    page.screenshot(path=str(ARTIFACTS / "knowledge-collection-searched.png"), full_page=True)
    page.get_by_role("button", name="Delete collection").click()
    page.get_by_role("dialog", name="Delete collection").get_by_role(
        "button", name="Delete"
    ).click()
    page.wait_for_url(re.compile(r"/console/knowledge$"))
    expect(page.get_by_test_id("empty-state")).to_contain_text("No collections yet")
    with console.api() as http:
        assert http.get("/v1/knowledge/collections").json()["total"] == 0
