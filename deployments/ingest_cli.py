"""``linqra ingest``: files (txt, md, html, pdf; folders too) to a Knowledge Hub collection
through the gateway, with a progress bar per file while it is sent and while the cluster
embeds its chunks.

The files go up a few at a time (the cluster ingests them side by side). On a terminal each file
has its own bar on stderr; elsewhere (a log, a pipe) each file's progress is a line now and then
on stdout. Each file ends READY, FAILED (its error said), refused by the API (its message said)
or, after ``--timeout``, still ingesting; the exit status is 1 unless every file was ingested.
``--create`` makes a missing collection; ``--metadata KEY=VALUE`` goes with every file;
``--no-wait`` returns once the files are uploaded; ``--json`` prints each file's outcome and
document.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm  # type: ignore[import-untyped]  # no stubs (types-tqdm is not installed)

from deployments.remote_cli import UsageError, emit_json, parse_params, remote, say, wants_json

if TYPE_CHECKING:  # linqra_client is imported where a command runs (deployments/remote_cli.py)
    from linqra_client import Linqra, UploadProgress, models

__all__ = ["add_ingest_command"]

SUFFIXES = (".txt", ".text", ".md", ".markdown", ".html", ".htm", ".pdf", ".csv", ".log")
UPLOADS_AT_ONCE = 4
LINE_EVERY_SECONDS = 2.0
"""Off a terminal, how often a file's chunk count is printed while it ingests."""


def add_ingest_command(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``ingest`` to the ``linqra`` command's subparsers."""
    ingest = sub.add_parser(
        "ingest",
        parents=[common],
        help="upload files (txt, md, html, pdf; folders too) to a Knowledge Hub collection",
    )
    ingest.add_argument("collection", help="collection name or id")
    ingest.add_argument("paths", nargs="+", metavar="PATH")
    ingest.add_argument("--create", action="store_true", help="create the collection if missing")
    ingest.add_argument("--metadata", action="append", default=[], metavar="KEY=VALUE")
    ingest.add_argument("--no-wait", action="store_true", help="upload and return at once")
    ingest.add_argument("--timeout", type=float, default=3600.0)
    ingest.set_defaults(func=remote(_ingest), name="ingest")


def _files(paths: list[str]) -> list[Path]:
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES
            )
        elif path.is_file():
            found.append(path)
        else:
            raise UsageError(f"no such file or directory: {raw}")
    return found


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


@dataclass
class Outcome:
    """How one file ended: ``READY``, ``FAILED``, ``REFUSED``, ``TIMEOUT`` or ``UPLOADED``."""

    path: Path
    status: str
    document: models.Document | None = None
    message: str = ""


class FileProgress:
    """One file's progress: a tqdm bar on a terminal (``bars``), else (``lines``) a line now and
    then on stdout — none with ``--json``, whose stdout is the answer alone."""

    def __init__(self, path: Path, position: int, *, bars: bool, lines: bool, width: int) -> None:
        self.path = path
        self.lines = lines
        self.bars = bars
        self.accepted: models.Document | None = None
        self._phase = ""
        self._printed = 0.0
        self._bar = tqdm(
            desc=path.name[:width].ljust(width),
            total=path.stat().st_size,
            unit="B",
            unit_scale=True,
            position=position,
            disable=not bars,
            leave=True,
            file=sys.stderr,
            dynamic_ncols=True,
        )

    def __call__(self, update: UploadProgress) -> None:
        if update.phase == "upload":
            self._bar.n = update.done
            self._bar.refresh()
            return
        if self._phase != "ingest":  # the upload was accepted: the first report of its document
            self._phase = "ingest"
            self._bar.unit, self._bar.unit_scale = "chunk", False
            self._bar.reset()
            self._bar.total = None
            self.accept(update.document, ingesting=True)
        if update.total and self._bar.total != update.total:
            self._bar.total = update.total
        self._bar.n = update.done
        self._bar.set_postfix_str(str(getattr(update.document, "status", "")), refresh=True)
        now = time.monotonic()
        if self.lines and update.total and now - self._printed >= LINE_EVERY_SECONDS:
            self._printed = now
            self.line(f"{update.done}/{update.total} chunks")

    def accept(self, document: models.Document, *, ingesting: bool) -> None:
        """The upload's answer: the new document (or, ``duplicate``, the one already there)."""
        self.accepted = document
        if getattr(document, "duplicate", False):
            self.line(f"already in the collection ({document.id}, {document.status})", always=True)
        elif self.lines:
            self.line(
                f"uploaded {_size(self.path.stat().st_size)}" + (", ingesting" if ingesting else "")
            )

    def line(self, text: str, *, always: bool = False) -> None:
        if self.lines or (always and self.bars):
            tqdm.write(f"  {self.path}: {text}", file=sys.stdout)

    def close(self) -> None:
        self._bar.close()


def _upload(
    client: Linqra,
    collection: str,
    path: Path,
    progress: FileProgress,
    args: argparse.Namespace,
    metadata: dict[str, Any],
) -> Outcome:
    from linqra_client import APIConnectionError, APIError, APITimeoutError

    try:
        document = client.knowledge.upload(
            collection,
            path,
            metadata=metadata or None,
            wait=not args.no_wait,
            timeout=args.timeout,
            progress=progress,
        )
    except APITimeoutError as exc:
        if progress.accepted is None:
            return Outcome(path, "REFUSED", message=f"no answer in time ({exc})")
        return Outcome(path, "TIMEOUT", progress.accepted)
    except APIConnectionError:
        raise  # the gateway went away: the command's error, not this file's
    except APIError as exc:
        return Outcome(path, "REFUSED", message=exc.message)
    finally:
        progress.close()
    if progress.accepted is None:  # --no-wait: the upload's answer is all there is
        progress.accept(document, ingesting=False)
    if args.no_wait:
        return Outcome(path, "UPLOADED", document)
    return Outcome(path, str(document.status), document, message=document.error or "")


def _collection(
    client: Linqra, args: argparse.Namespace
) -> models.Collection | models.CollectionStats:
    from linqra_client import NotFound

    try:
        return client.knowledge.collection(args.collection)
    except NotFound as exc:
        if not args.create:
            raise UsageError(f"{exc} (use --create to make it)") from None
    return client.knowledge.create_collection(args.collection)


def _ingest(client: Linqra, args: argparse.Namespace) -> int:
    """Upload files to a Knowledge Hub collection and show their ingestion's progress."""
    files = _files(args.paths)
    if not files:
        raise UsageError("no .txt, .md, .html or .pdf files found")
    metadata = parse_params(args.metadata, "--metadata")
    collection = _collection(client, args)
    bars = sys.stderr.isatty()
    as_json = wants_json(args)
    lock = threading.Lock()
    positions = iter(range(len(files)))
    width = min(28, max(len(path.name) for path in files))

    def one(path: Path) -> Outcome:
        with lock:
            progress = FileProgress(
                path, next(positions), bars=bars, lines=not bars and not as_json, width=width
            )
        return _upload(client, collection.id, path, progress, args, metadata)

    with ThreadPoolExecutor(min(UPLOADS_AT_ONCE, len(files))) as pool:
        outcomes = list(pool.map(one, files))
    refused = [o for o in outcomes if o.status == "REFUSED"]
    failed = [o for o in outcomes if o.status == "FAILED"]
    pending = [o for o in outcomes if o.status == "TIMEOUT"]
    code = 1 if refused or failed or pending else 0
    if as_json:
        emit_json(
            [
                {
                    "path": str(o.path),
                    "outcome": o.status,
                    "error": o.message or None,
                    "document": o.document,
                }
                for o in outcomes
            ]
        )
        return code
    for o in refused:
        say(f"  {o.path}: refused: {o.message}")
    for o in failed:
        say(f"  {o.path}: FAILED: {o.message}")
    if not bars:
        for o in outcomes:
            if o.status == "READY" and o.document is not None:
                say(f"  {o.path}: READY ({o.document.chunks_total} chunks)")
    accepted = len(outcomes) - len(refused)
    if args.no_wait:
        say(f"uploaded {accepted} file(s) to {collection.name}; ingestion continues in the cluster")
    elif pending:
        say(
            f"timed out with {len(pending)} document(s) still ingesting; check them with "
            f"GET /v1/knowledge/collections/{collection.id}/documents"
        )
    else:
        say(f"{accepted - len(failed)} of {len(files)} file(s) ingested into {collection.name}")
    return code
