"""Split a document into overlapping chunks that follow its headings and paragraphs.

A heading starts a new chunk (unless the current one is still tiny) and every chunk remembers the
heading path above it (`Install > On Debian`), which is indexed and shown in citations. Paragraphs
are packed whole up to `size` characters; a paragraph longer than that is cut at sentence ends,
then at spaces. Consecutive chunks of one section share `overlap` characters, so a fact that sits
on a boundary is still found whole in one of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True, slots=True)
class Chunk:
    index: int
    text: str
    heading: str = ""
    page: int | None = None


def chunk_text(text: str, *, size: int = 1500, overlap: int = 150, page: int | None = None,
               start_index: int = 0, heading: str = "") -> list[Chunk]:
    """Chunks of `text`, numbered from `start_index`; `heading` is the path in force at the start."""
    if size < 50:
        raise ValueError("chunk size must be at least 50 characters")
    overlap = max(0, min(overlap, size // 3))
    chunker = _Chunker(size, overlap, page, start_index, heading)
    for paragraph in _paragraphs(text):
        match = _HEADING.match(paragraph) if "\n" not in paragraph else None
        if match:
            chunker.heading(len(match.group(1)), match.group(2).strip(), paragraph)
        else:
            chunker.paragraph(paragraph)
    chunker.flush()
    return chunker.chunks


def _paragraphs(text: str) -> list[str]:
    out = []
    for block in re.split(r"\n\s*\n", text):
        block = block.strip()
        if not block:
            continue
        # A heading line glued to its paragraph (no blank line) still counts as a heading.
        lines = block.split("\n")
        buffer: list[str] = []
        for line in lines:
            if _HEADING.match(line):
                if buffer:
                    out.append("\n".join(buffer))
                    buffer = []
                out.append(line.strip())
            else:
                buffer.append(line)
        if buffer:
            out.append("\n".join(buffer))
    return out


class _Chunker:
    def __init__(self, size: int, overlap: int, page: int | None, start: int, heading: str) -> None:
        self.size = size
        self.overlap = overlap
        self.page = page
        self.next_index = start
        self.path: list[tuple[int, str]] = [(1, heading)] if heading else []
        self.chunk_heading = heading
        self.parts: list[str] = []
        self.length = 0
        self.body = False  # the current chunk holds more than headings and overlap
        self.chunks: list[Chunk] = []

    def heading(self, level: int, title: str, line: str) -> None:
        if self.length >= self.size // 4 and self.body:
            self.flush()
        while self.path and self.path[-1][0] >= level:
            self.path.pop()
        self.path.append((level, title))
        if not self.parts:
            self.chunk_heading = self._path_text()
        self._add(line)

    def paragraph(self, text: str) -> None:
        for piece in self._pieces(text):
            if self.parts and self.body and self.length + 2 + len(piece) > self.size:
                tail = self._tail()
                self.flush()
                if tail:
                    self._add(tail)
            if not self.body:
                # A chunk is named after the section its first body text belongs to.
                self.chunk_heading = self._path_text()
            self._add(piece)
            self.body = True

    def flush(self) -> None:
        if self.parts and self.body:
            self.chunks.append(Chunk(self.next_index, "\n\n".join(self.parts), self.chunk_heading, self.page))
            self.next_index += 1
        elif self.parts and self.chunks and not self.body:
            pass  # only headings left at the very end: they head nothing
        self.parts, self.length, self.body = [], 0, False
        self.chunk_heading = self._path_text()

    def _add(self, text: str) -> None:
        if not self.parts:
            self.chunk_heading = self._path_text()
        self.parts.append(text)
        self.length += len(text) + (2 if self.length else 0)

    def _path_text(self) -> str:
        return " > ".join(title for _, title in self.path)

    def _tail(self) -> str:
        if not self.overlap:
            return ""
        last = self.parts[-1]
        if len(last) <= self.overlap:
            return last
        cut = last[-self.overlap:]
        space = cut.find(" ")
        return cut[space + 1:] if 0 <= space < len(cut) - 1 else cut

    def _pieces(self, text: str) -> list[str]:
        """The paragraph itself, or sentence/word-aligned slices of it when it is longer than a chunk."""
        limit = self.size - self.overlap - 2
        if len(text) <= limit:
            return [text]
        pieces: list[str] = []
        current = ""
        for sentence in _SENTENCE_END.split(text):
            while len(sentence) > limit:
                cut = sentence.rfind(" ", 0, limit)
                cut = cut if cut > limit // 2 else limit
                head, sentence = sentence[:cut], sentence[cut:].lstrip()
                if current:
                    pieces.append(current)
                    current = ""
                pieces.append(head)
            if current and len(current) + 1 + len(sentence) > limit:
                pieces.append(current)
                current = sentence
            else:
                current = f"{current} {sentence}" if current else sentence
        if current:
            pieces.append(current)
        return pieces
