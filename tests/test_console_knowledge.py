"""The console's knowledge area in a real headless Chromium: a collection created (a refused
name shown on its field), text files dragged and dropped on the drop zone (a real ``drop`` event
carrying a DataTransfer) and chosen through its file input, uploaded with their progress and
followed until indexed, a file of a type the API does not take refused before it is sent, the
collection searched and the upload found with its text, score and source, then deleted."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.support.browser import ARTIFACTS, Console

DROP_FILES = """files => {
    const data = new DataTransfer();
    for (const f of files) data.items.add(new File([f.text], f.name, {type: f.type}));
    return data;
}"""

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

    # a real drag and drop: the files in a DataTransfer built in the page, dragged over the zone
    # (which says it takes them), then dropped; each is uploaded at once, without another click
    dropzone = page.get_by_role("button", name="Drop files here to upload, or click to choose them")
    expect(dropzone).to_have_accessible_description(re.compile("txt, md, html or pdf"))
    dragged = page.evaluate_handle(
        DROP_FILES,
        [
            {"name": "remote.txt", "type": "text/plain", "text": REMOTE.decode()},
            {"name": "travel.txt", "type": "text/plain", "text": TRAVEL.decode()},
        ],
    )
    dropzone.dispatch_event("dragenter", {"dataTransfer": dragged})
    expect(dropzone).to_have_attribute("data-accept", "true")
    expect(dropzone).to_contain_text("Drop to upload")
    dropzone.dispatch_event("drop", {"dataTransfer": dragged})
    expect(dropzone).not_to_have_attribute("data-accept", "true")
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
    # through the zone's file chooser: an empty file and a binary one are refused by the API at
    # once (each upload says why), a PDF without a readable body fails its ingestion, an image is
    # not sent at all
    blob = b"\x00\x01\x02 not text \xff\xfe"
    pdf = b"%PDF-1.4\nnot really a pdf\n"
    dropzone.locator("input[type=file]").set_input_files(
        [
            {"name": "empty.txt", "mimeType": "text/plain", "buffer": b""},
            {"name": "blob.txt", "mimeType": "text/plain", "buffer": blob},
            {"name": "broken.pdf", "mimeType": "application/pdf", "buffer": pdf},
            {"name": "photo.png", "mimeType": "image/png", "buffer": b"\x89PNG\r\n\x1a\n"},
        ]
    )
    expect(uploads).to_have_count(6)
    photo = uploads.filter(has_text="photo.png")
    expect(photo).to_have_attribute("data-state", "failed")
    expect(photo).to_contain_text("File type must be")
    for name, content in (("empty.txt", b""), ("blob.txt", blob)):
        with console.api() as http:
            refused = http.post(
                f"/v1/knowledge/collections/{collection}/documents",
                files={"file": (name, content, "text/plain")},
            )
        assert refused.status_code == 400, refused.text
        shown = uploads.filter(has_text=name)
        expect(shown).to_have_attribute("data-state", "failed")
        expect(shown).to_contain_text(refused.json()["error"]["message"])
    expect(documents).to_have_count(3)
    broken = documents.filter(has_text="broken.pdf")
    expect(broken).to_have_attribute("data-status", "FAILED")
    with console.api() as http:
        failed = http.get(
            f"/v1/knowledge/collections/{collection}/documents", params={"status": "FAILED"}
        ).json()["items"]
    assert [d["file_name"] for d in failed] == ["broken.pdf"] and failed[0]["error"]
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
