"""Text out of uploaded files (txt, Markdown, HTML, PDF), page numbers kept, then token-aware chunks.

The file type is decided from the bytes as well as the declared name and MIME type: a PDF must
start with ``%PDF-``, text must decode as UTF-8 (or UTF-16 with a BOM) and must not be binary. A
file that claims one type and is another is refused, as is an empty file or a PDF without
extractable text (scanned pages need OCR, which Linqra does not do).
"""

from __future__ import annotations

import html
import io
import re
from dataclasses import dataclass
from html.parser import HTMLParser

from linqra.errors import ValidationError

__all__ = ["MIME_TYPES", "Chunk", "Page", "chunk_pages", "declared_type", "detect_type", "extract"]

MIME_TYPES = {
    "text/plain": (".txt", ".text", ".log", ".csv"),
    "text/markdown": (".md", ".markdown"),
    "text/html": (".html", ".htm"),
    "application/pdf": (".pdf",),
}
_ALIASES = {"text/x-markdown": "text/markdown", "application/xhtml+xml": "text/html"}


@dataclass(frozen=True, slots=True)
class Page:
    number: int | None  # 1-based for PDFs; None for formats without pages
    text: str


@dataclass(frozen=True, slots=True)
class Chunk:
    index: int
    text: str
    tokens: int
    page_start: int | None
    page_end: int | None


def declared_type(mime_type: str | None) -> str | None:
    """``mime_type`` as a plain, known spelling (lower case, no parameters, aliases mapped);
    ``None`` when it says nothing (absent, empty, ``application/octet-stream``)."""
    declared = (mime_type or "").split(";")[0].strip().lower()
    declared = _ALIASES.get(declared, declared)
    return None if declared in ("application/octet-stream", "") else declared


def detect_type(data: bytes, file_name: str | None, mime_type: str | None) -> str:
    """The MIME type to extract with, from the declared type, the name, and the bytes."""
    declared = declared_type(mime_type)
    by_name = None
    if file_name:
        lower = file_name.lower()
        by_name = next((m for m, exts in MIME_TYPES.items() if lower.endswith(exts)), None)
    if declared is not None and declared not in MIME_TYPES:
        raise ValidationError(
            f"unsupported file type {declared}; supported: {', '.join(MIME_TYPES)}",
            field="mime_type",
        )
    claimed = declared or by_name
    if claimed is None:
        if data.startswith(b"%PDF-"):
            return "application/pdf"
        raise ValidationError(
            f"cannot tell the type of {file_name or 'the file'}; name it .txt, .md, .html or .pdf "
            "or send its mime_type",
            field="file",
        )
    is_pdf = data.startswith(b"%PDF-")
    if claimed == "application/pdf" and not is_pdf:
        raise ValidationError("the file is labelled PDF but is not a PDF", field="file")
    if claimed != "application/pdf" and is_pdf:
        raise ValidationError(f"the file is a PDF but is labelled {claimed}", field="file")
    if claimed != "application/pdf":
        _decode(data)  # binary or non-UTF-8 text is refused at upload, not after it is accepted
    return claimed


def _decode(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise ValidationError("the file is not valid UTF-16 text", field="file") from None
    if b"\x00" in data[:8192]:
        raise ValidationError("the file looks binary, not text", field="file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError("text files must be UTF-8", field="file") from None


class _HTMLText(HTMLParser):
    _SKIP = {"script", "style", "noscript", "template", "svg", "head"}
    _BLOCK = {
        "p",
        "div",
        "br",
        "li",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "tr",
        "section",
        "article",
        "pre",
        "blockquote",
        "title",
        "table",
        "ul",
        "ol",
    }

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        if tag in self._SKIP:
            self.skipping += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in self._SKIP and self.skipping:
            self.skipping -= 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        if not self.skipping:
            self.parts.append(data)


def _clean(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[ \t\f\v]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def extract(data: bytes, mime_type: str) -> tuple[list[Page], str | None]:
    """Pages of text and a title found in the file (HTML ``<title>``, PDF metadata, first heading)."""
    if not data:
        raise ValidationError("the file is empty", field="file")
    if mime_type == "application/pdf":
        return _pdf(data)
    text = _decode(data)
    title = None
    if mime_type == "text/html":
        parser = _HTMLText()
        parser.feed(text)
        parser.close()
        text, title = html.unescape("".join(parser.parts)), parser.title.strip() or None
    elif mime_type == "text/markdown":
        heading = re.search(r"^#\s+(.+)$", text, re.MULTILINE)
        title = heading.group(1).strip() if heading else None
    text = _clean(text)
    if not text:
        raise ValidationError("the file has no text", field="file")
    return [Page(None, text)], title


def _pdf(data: bytes) -> tuple[list[Page], str | None]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise ValidationError("encrypted PDFs are not supported", field="file")
        pages = [
            Page(i + 1, _clean(page.extract_text() or "")) for i, page in enumerate(reader.pages)
        ]
        title = (reader.metadata.title if reader.metadata else None) or None
    except ValidationError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise ValidationError(f"the PDF cannot be read: {exc}", field="file") from None
    pages = [p for p in pages if p.text]
    if not pages:
        raise ValidationError(
            "the PDF has no extractable text (scanned pages need OCR)", field="file"
        )
    return pages, str(title) if title else None


_BOUNDARY = re.compile(r"(?<=[.!?])\s+|\n+")
# The tokenizer refuses to encode more than 200,000 tokens in one call (``TokenLimitError``), and
# a "sentence" can be a whole file (text without punctuation or line breaks, CJK, base64): text is
# encoded in windows of at most this many characters (at most 4 tokens each, one per UTF-8 byte).
ENCODE_WINDOW_CHARS = 32_768


def _encode(encoding: object, text: str) -> list[int]:
    """Tokens of ``text``, encoded window by window, each window cut after whitespace if any."""
    tokens: list[int] = []
    start = 0
    while start < len(text):
        end = min(start + ENCODE_WINDOW_CHARS, len(text))
        if end < len(text):
            space = max(text.rfind(" ", start, end), text.rfind("\n", start, end))
            if space > start:
                end = space + 1
        tokens += encoding.encode(text[start:end])  # type: ignore[attr-defined]
        start = end
    return tokens


def chunk_pages(pages: list[Page], max_tokens: int, overlap: int) -> list[Chunk]:
    """Chunks of at most ``max_tokens`` tokens, cut at sentence ends where possible, each
    starting with about ``overlap`` tokens of the previous one; page numbers follow the text."""
    from linqra.llm.tokens import _encoding

    encoding = _encoding()
    overlap = min(overlap, max_tokens // 2)
    # sentences with their page, split further when one sentence alone is too long
    units: list[tuple[list[int], int | None]] = []
    for page in pages:
        for sentence in _BOUNDARY.split(page.text):
            sentence = sentence.strip()
            if not sentence:
                continue
            tokens = _encode(encoding, sentence + " ")
            piece = max_tokens - overlap  # a long sentence's pieces leave room for the overlap
            for start in range(0, len(tokens), piece):
                units.append((tokens[start : start + piece], page.number))
    chunks: list[Chunk] = []
    current: list[int] = []
    page_numbers: list[int | None] = []
    for tokens, page_number in units:
        if current and len(current) + len(tokens) > max_tokens:
            chunks.append(_chunk(len(chunks), current, page_numbers, encoding))
            room = min(overlap, max_tokens - len(tokens))  # the overlap never overfills a chunk
            carry = current[-room:] if room > 0 else []
            current, page_numbers = list(carry), [page_numbers[-1]] if carry else []
        current.extend(tokens)
        page_numbers.append(page_number)
    if current:
        chunks.append(_chunk(len(chunks), current, page_numbers, encoding))
    return chunks


def _chunk(index: int, tokens: list[int], pages: list[int | None], encoding: object) -> Chunk:
    numbers = [p for p in pages if p is not None]
    raw: bytes = encoding.decode_bytes(tokens)  # type: ignore[attr-defined]
    text = raw.decode("utf-8", "ignore").strip()  # a cut inside a character drops the piece
    return Chunk(
        index,
        text,
        len(tokens),
        min(numbers) if numbers else None,
        max(numbers) if numbers else None,
    )
