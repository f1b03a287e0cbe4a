"""``linqra ingest``: files (txt, md, html, pdf; folders too) to a Knowledge Hub collection
through the gateway's HTTP API, with a progress bar while the cluster ingests them.

Remote commands sign in with ``$LINQRA_API_KEY`` (or an OIDC access token in
``$LINQRA_TOKEN``); in header mode ``--team``/``$LINQRA_TEAM`` is enough. (A module of its own
so that ``deployments/cli.py`` stays small.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from linqra.config import load_settings
from linqra.status import DOCUMENT_TERMINAL, DocumentStatus

__all__ = ["add_ingest_command", "cmd_ingest", "credentials", "parse_params"]


def _say(text: str) -> None:
    print(text, flush=True)


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs (``--param``, ``--metadata``); a value is JSON when it parses."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--param needs KEY=VALUE, got {pair!r}")
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


def add_ingest_command(sub: Any) -> None:
    """Add ``ingest`` to the ``linqra`` command's subparsers."""
    ingest = sub.add_parser(
        "ingest",
        help="upload files (txt, md, html, pdf; folders too) to a Knowledge Hub collection",
    )
    ingest.add_argument("collection", help="collection name or id")
    ingest.add_argument("paths", nargs="+", metavar="PATH")
    ingest.add_argument("--team", help="team id (default: $LINQRA_TEAM)")
    ingest.add_argument(
        "--url", help="gateway URL (default: from the config, http://127.0.0.1:8000)"
    )
    ingest.add_argument("--create", action="store_true", help="create the collection if missing")
    ingest.add_argument("--metadata", action="append", default=[], metavar="KEY=VALUE")
    ingest.add_argument("--no-wait", action="store_true", help="upload and return at once")
    ingest.add_argument("--timeout", type=float, default=3600.0)
    ingest.set_defaults(func=cmd_ingest)


_SUFFIXES = (".txt", ".text", ".md", ".markdown", ".html", ".htm", ".pdf", ".csv", ".log")


def _files(paths: list[str]) -> list[Path]:
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _SUFFIXES
            )
        elif path.is_file():
            found.append(path)
        else:
            raise SystemExit(f"linqra ingest: no such file or directory: {raw}")
    return found


def credentials(team: str | None) -> dict[str, str]:
    """The headers a remote command signs in with: ``$LINQRA_API_KEY`` (a team API key) or
    ``$LINQRA_TOKEN`` (an OIDC access token) when set, and the team (``--team`` or
    ``$LINQRA_TEAM``) as ``X-Team-Id`` — all header mode needs."""
    headers = {"X-Team-Id": team} if team else {}
    secret = os.environ.get("LINQRA_API_KEY") or os.environ.get("LINQRA_TOKEN")
    if secret:
        headers["Authorization"] = f"Bearer {secret}"
    return headers


def _api(
    method: str,
    url: str,
    team: str | None,
    body: bytes | None = None,
    content_type: str | None = None,
) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, method=method, headers=credentials(team))
    if content_type:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"null")
        except ValueError:
            return exc.code, {"error": {"message": exc.reason}}


def _multipart(path: Path, metadata: dict[str, Any]) -> tuple[bytes, str]:
    import mimetypes
    import uuid

    boundary = uuid.uuid4().hex
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if path.suffix.lower() in (".md", ".markdown"):
        mime = "text/markdown"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
        f"Content-Type: {mime}\r\n\r\n".encode()
        + path.read_bytes()
        + b"\r\n",
        f'--{boundary}\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n'.encode()
        + json.dumps(metadata).encode()
        + b"\r\n",
        f"--{boundary}--\r\n".encode(),
    ]
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _bar(done: int, total: int, width: int = 30) -> str:
    filled = int(width * done / total) if total else width
    return "[" + "#" * filled + "." * (width - filled) + "]"


def cmd_ingest(args: argparse.Namespace) -> int:
    """Upload files to a Knowledge Hub collection through the gateway and show ingestion progress."""
    team = args.team or os.environ.get("LINQRA_TEAM")
    if not team and not (os.environ.get("LINQRA_API_KEY") or os.environ.get("LINQRA_TOKEN")):
        _say("linqra ingest: give --team TEAM (or set LINQRA_TEAM, or LINQRA_API_KEY)")
        return 2
    settings = load_settings()
    base = (args.url or f"http://{settings.http.host}:{settings.http.port}").rstrip("/")
    files = _files(args.paths)
    if not files:
        _say("linqra ingest: no .txt, .md, .html or .pdf files found")
        return 2
    collection = urllib.parse.quote(args.collection, safe="")
    status, found = _api("GET", f"{base}/v1/knowledge/collections/{collection}", team)
    if status == 404 and args.create:
        status, found = _api(
            "POST", f"{base}/v1/knowledge/collections", team,
            json.dumps({"name": args.collection}).encode(), "application/json",
        )  # fmt: skip
    if status >= 400:
        message = (found or {}).get("error", {}).get("message", status)
        hint = " (use --create to make it)" if status == 404 else ""
        _say(f"collection {args.collection}: {message}{hint}")
        return 1
    collection = found["id"]
    metadata = parse_params(args.metadata)
    docs: dict[str, str] = {}
    refused = failed = 0
    for path in files:
        body, content_type = _multipart(path, metadata)
        status, doc = _api(
            "POST",
            f"{base}/v1/knowledge/collections/{collection}/documents",
            team,
            body,
            content_type,
        )
        if status >= 400:
            refused += 1
            _say(f"  {path}: refused: {doc.get('error', {}).get('message', status)}")
            continue
        docs[doc["id"]] = str(path)
        if doc.get("duplicate"):
            _say(f"  {path}: already in the collection ({doc['id']}, {doc['status']})")
    if args.no_wait:
        _say(f"uploaded {len(docs)} file(s) to {found['name']}; ingestion continues in the cluster")
        return 1 if refused else 0
    pending = dict(docs)
    progress: dict[str, tuple[int, int]] = {}
    deadline = time.monotonic() + args.timeout
    interactive = sys.stdout.isatty()
    while pending and time.monotonic() < deadline:
        for doc_id in list(pending):
            _, doc = _api(
                "GET", f"{base}/v1/knowledge/collections/{collection}/documents/{doc_id}", team
            )
            progress[doc_id] = (doc.get("chunks_done") or 0, doc.get("chunks_total") or 0)
            if doc.get("status") in DOCUMENT_TERMINAL:
                name = pending.pop(doc_id)
                if doc["status"] == DocumentStatus.FAILED:
                    failed += 1
                    _say(f"\r  {name}: FAILED: {doc.get('error')}" + " " * 20)
                elif not interactive:
                    _say(f"  {name}: READY ({doc.get('chunks_total')} chunks)")
        done = sum(d for d, _ in progress.values())
        total = sum(t for _, t in progress.values())
        line = f"{_bar(done, total)} {done}/{total} chunks, {len(docs) - len(pending)}/{len(docs)} documents"
        if interactive:
            print("\r" + line, end="", flush=True)
        if pending:
            time.sleep(0.3)
    if interactive:
        print()
    if pending:
        _say(
            f"timed out with {len(pending)} document(s) still ingesting; check them with GET …/documents"
        )
        return 1
    _say(f"{len(docs) - failed} of {len(files)} file(s) ingested into {found['name']}")
    return 1 if refused or failed else 0
