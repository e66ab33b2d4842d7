"""Turn a file into text: plain text, Markdown, HTML (selectolax) and PDF (pypdf).

Every loader returns Markdown-flavoured text (headings as `#` lines, paragraphs separated by a
blank line) so one chunker handles all formats. A PDF yields one part per page, so a chunk never
straddles pages and a citation can name its page.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path


class Format(StrEnum):
    TEXT = "text"
    MARKDOWN = "markdown"
    HTML = "html"
    PDF = "pdf"


SUFFIXES: dict[str, Format] = {
    ".txt": Format.TEXT,
    ".text": Format.TEXT,
    ".rst": Format.TEXT,
    ".log": Format.TEXT,
    ".csv": Format.TEXT,
    ".md": Format.MARKDOWN,
    ".markdown": Format.MARKDOWN,
    ".html": Format.HTML,
    ".htm": Format.HTML,
    ".xhtml": Format.HTML,
    ".pdf": Format.PDF,
}


class LoadError(ValueError):
    """A file we cannot read as a document; the message says why and what would work."""


@dataclass(frozen=True, slots=True)
class Part:
    text: str
    page: int | None = None  # 1-based, PDFs only


@dataclass(slots=True)
class LoadedDocument:
    format: Format
    parts: list[Part]
    title: str = ""
    metadata: dict[str, object] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "\n\n".join(p.text for p in self.parts)


def detect_format(path: Path) -> Format:
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(SUFFIXES))
        raise LoadError(f"unsupported file type {path.suffix or '(none)'!r} (supported: {known})")
    return fmt


def load_bytes(data: bytes, fmt: Format, *, name: str = "") -> LoadedDocument:
    """Parse already-read file content (the caller hashes the same bytes)."""
    if fmt is Format.PDF:
        return _load_pdf(data, name)
    text = _decode(data, name)
    if fmt is Format.HTML:
        return _load_html(text)
    if fmt is Format.MARKDOWN:
        return LoadedDocument(fmt, [Part(_normalise(text))], title=_first_heading(text))
    return LoadedDocument(fmt, [Part(_normalise(text))])


def load_file(path: Path) -> LoadedDocument:
    fmt = detect_format(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoadError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return load_bytes(data, fmt, name=str(path))


def _decode(data: bytes, name: str) -> str:
    if b"\x00" in data[:8192]:
        raise LoadError(f"{name or 'file'} looks binary (NUL bytes), not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Old docs are often Latin-1; every byte decodes, and NUL bytes were ruled out above.
        return data.decode("latin-1")


_SPACES = re.compile(r"[ \t\r\f\v]+")
_BLANKS = re.compile(r"\n\s*\n\s*")


def _normalise(text: str) -> str:
    lines = [_SPACES.sub(" ", line).strip() for line in text.replace("\r\n", "\n").split("\n")]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


def _first_heading(text: str) -> str:
    match = re.search(r"^#{1,6}\s+(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else ""


_BLOCK_TAGS = {"p", "div", "section", "article", "li", "pre", "blockquote", "tr", "table", "ul", "ol",
               "dd", "dt", "figcaption", "main", "header", "footer", "br", "hr"}
_HEADINGS = {f"h{i}": i for i in range(1, 7)}
_DROP = "script, style, noscript, template, nav, svg, iframe, head"


def _load_html(text: str) -> LoadedDocument:
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(text)
    title_node = tree.css_first("title")
    title = title_node.text(strip=True) if title_node else ""
    for node in tree.css(_DROP):
        node.decompose()
    root = tree.body or tree.root
    blocks: list[str] = []
    current: list[str] = []

    def flush() -> None:
        joined = " ".join(" ".join(current).split())
        if joined:
            blocks.append(joined)
        current.clear()

    def walk(node) -> None:  # type: ignore[no-untyped-def]
        for child in node.iter(include_text=True):
            tag = child.tag
            if tag == "-text":
                current.append(child.text_content or "")
            elif tag in _HEADINGS:
                flush()
                heading = " ".join(child.text(separator=" ").split())
                if heading:
                    blocks.append("#" * _HEADINGS[tag] + " " + heading)
            elif tag in _BLOCK_TAGS:
                flush()
                walk(child)
                flush()
            else:
                walk(child)

    if root is not None:
        walk(root)
    flush()
    body = "\n\n".join(blocks)
    return LoadedDocument(Format.HTML, [Part(body)], title=title or _first_heading(body))


def _load_pdf(data: bytes, name: str) -> LoadedDocument:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                reader.decrypt("")
            except Exception as exc:
                raise LoadError(f"{name or 'PDF'} is encrypted; decrypt it first") from exc
        parts = []
        for number, page in enumerate(reader.pages, start=1):
            text = _normalise(page.extract_text() or "")
            if text:
                parts.append(Part(text, page=number))
        title = ""
        if reader.metadata is not None and reader.metadata.title:
            title = str(reader.metadata.title)
    except LoadError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise LoadError(f"{name or 'file'} is not a readable PDF: {exc}") from exc
    if not parts:
        raise LoadError(f"{name or 'PDF'} has no extractable text (a scanned PDF needs OCR first)")
    return LoadedDocument(Format.PDF, parts, title=title, metadata={"pages": len(reader.pages)})
