"""Tiny valid PDFs for tests, written by hand: one page per text (Helvetica), or pages with no text."""

from __future__ import annotations


def make_pdf(pages: list[str | None], title: str | None = None) -> bytes:
    """A PDF with one page per entry; ``None`` makes a page without any text (like a scan)."""
    objects: list[bytes] = []
    kids = []
    font_id = 3
    next_id = 4
    page_objects: list[tuple[int, int | None, str | None]] = []
    for text in pages:
        page_id, content_id = next_id, (next_id + 1 if text is not None else None)
        next_id += 2 if text is not None else 1
        page_objects.append((page_id, content_id, text))
        kids.append(f"{page_id} 0 R")
    info_id = next_id if title else None
    body: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>".encode(),
        font_id: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    }
    for page_id, content_id, text in page_objects:
        contents = f" /Contents {content_id} 0 R" if content_id else ""
        body[page_id] = (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792]"
            f" /Resources << /Font << /F1 {font_id} 0 R >> >>{contents} >>"
        ).encode()
        if content_id and text is not None:
            lines = []
            y = 740
            for line in _wrap(text):
                safe = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
                lines.append(f"BT /F1 11 Tf 50 {y} Td ({safe}) Tj ET")
                y -= 14
            stream = "\n".join(lines).encode("latin-1", "replace")
            body[content_id] = (
                f"<< /Length {len(stream)} >>\nstream\n".encode() + stream + b"\nendstream"
            )
    if info_id:
        body[info_id] = f"<< /Title ({title}) >>".encode()
    out = bytearray(b"%PDF-1.4\n")
    offsets = {}
    for number in sorted(body):
        offsets[number] = len(out)
        out += f"{number} 0 obj\n".encode() + body[number] + b"\nendobj\n"
    xref = len(out)
    size = max(body) + 1
    out += f"xref\n0 {size}\n0000000000 65535 f \n".encode()
    for number in range(1, size):
        out += f"{offsets.get(number, 0):010d} 00000 n \n".encode()
    trailer = f"<< /Size {size} /Root 1 0 R" + (f" /Info {info_id} 0 R" if info_id else "") + " >>"
    out += f"trailer\n{trailer}\nstartxref\n{xref}\n%%EOF\n".encode()
    objects.clear()
    return bytes(out)


def _wrap(text: str, width: int = 90) -> list[str]:
    lines, current = [], ""
    for word in text.split():
        if len(current) + len(word) + 1 > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}".strip()
    if current:
        lines.append(current)
    return lines
