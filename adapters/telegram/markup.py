"""Our markdown → Telegram's HTML parse mode, split at the platform's length limit.

Why HTML rather than MarkdownV2: HTML needs only `<`, `>` and `&` escaped, while MarkdownV2 rejects a
message over any of eighteen unescaped characters. The markdown is parsed (markdown-it, CommonMark)
and rendered to the tags Telegram accepts, respecting its nesting rules (`code` and `pre` contain
nothing; blockquotes do not nest; links do not contain code). Every rendered chunk also has a
plain-text form, which is what the adapter falls back to if Telegram still rejects the entities.

Telegram counts the 4096-character limit on the text *after* entity parsing, in UTF-16 code units,
so chunks are measured on their visible text, not on the HTML source.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from functools import lru_cache

from markdown_it import MarkdownIt
from markdown_it.token import Token

from adapters.base import split_text

_LINK_SCHEMES = ("http://", "https://", "tg://", "mailto:")
_LANG = re.compile(r"[^A-Za-z0-9_+#.-]")
_TAG = re.compile(r"<[^>]*>")
_FORMAT_TAGS = {"strong": "b", "em": "i", "s": "s"}
_EMPTY_PAIR = re.compile(r"<(b|i|s)></\1>")  # left behind when formatting is closed around code


@dataclass(frozen=True, slots=True)
class Chunk:
    """One Telegram message worth of text: the HTML to send and its plain-text fallback."""

    html: str
    plain: str


def utf16_len(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units: an emoji outside the BMP counts 2)."""
    return len(text.encode("utf-16-le")) // 2


def visible_text(rendered: str) -> str:
    """What a person sees of rendered HTML: tags dropped, entities decoded."""
    return html.unescape(_TAG.sub("", rendered))


def render_chunks(text: str, limit: int) -> list[Chunk]:
    """Render markdown as Telegram HTML chunks whose visible text fits `limit`; empty chunks are dropped."""
    return _render_chunks(text, limit, limit)


def _render_chunks(text: str, split_at: int, limit: int) -> list[Chunk]:
    chunks: list[Chunk] = []
    for piece in split_text(text, split_at):
        rendered = to_html(piece)
        plain = visible_text(rendered)
        size = utf16_len(plain)
        if size > limit and split_at > 64:
            # Astral characters (UTF-16 pairs) made the visible text longer than the source: split finer.
            smaller = max(split_at // 2, int(len(piece) * limit / size * 0.95))
            chunks.extend(_render_chunks(piece, min(smaller, split_at - 1), limit))
        elif plain.strip():
            chunks.append(Chunk(rendered, plain))
    return chunks


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    # html=False: raw HTML in a reply is shown as text, never passed through as tags.
    return MarkdownIt("commonmark", {"html": False}).enable(["strikethrough", "table"])


def to_html(markdown: str) -> str:
    """Render one markdown text as Telegram-safe HTML."""
    rendered = _HtmlRenderer().render(_parser().parse(markdown))
    while True:
        tidy = _EMPTY_PAIR.sub("", rendered)
        if tidy == rendered:
            return tidy
        rendered = tidy


def _esc(text: str) -> str:
    return html.escape(text, quote=False)


class _HtmlRenderer:
    """Walks markdown-it's token stream once; block state lives in small stacks."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.lists: list[list[int]] = []  # per open list: [next number] or [-1] for bullets
        self.quote_depth = 0
        self.in_heading = False
        self.table: list[list[str]] | None = None

    def render(self, tokens: list[Token]) -> str:
        for token in tokens:
            self._block(token)
        return "".join(self.out).strip("\n")

    def _trim_newlines(self) -> None:
        while self.out and self.out[-1].endswith("\n"):
            last = self.out.pop().rstrip("\n")
            if last:
                self.out.append(last)
                break

    def _block_end(self) -> None:
        self._trim_newlines()
        self.out.append("\n" if self.lists else "\n\n")

    def _block(self, token: Token) -> None:
        kind = token.type
        if self.table is not None and kind not in ("table_close",):
            if kind == "tr_open":
                self.table.append([])
            elif kind == "inline":
                self.table[-1].append(_plain_inline(token))
            return
        if kind == "inline":
            outer = ("b",) if self.in_heading else ()
            self.out.append(_InlineRenderer(outer).render(token.children or []))
        elif kind == "paragraph_close":
            self._block_end()
        elif kind == "heading_open":
            self.in_heading = True
            self.out.append("<b>")
        elif kind == "heading_close":
            self.in_heading = False
            self.out.append("</b>")
            self._block_end()
        elif kind in ("bullet_list_open", "ordered_list_open"):
            if self.lists:
                self._trim_newlines()
                self.out.append("\n")
            start = int(token.attrGet("start") or 1) if kind == "ordered_list_open" else -1
            self.lists.append([start])
        elif kind in ("bullet_list_close", "ordered_list_close"):
            self.lists.pop()
            self._block_end()
        elif kind == "list_item_open":
            counter = self.lists[-1]
            indent = "   " * (len(self.lists) - 1)
            if counter[0] < 0:
                self.out.append(f"{indent}• ")
            else:
                self.out.append(f"{indent}{counter[0]}. ")
                counter[0] += 1
        elif kind == "list_item_close":
            self._trim_newlines()
            self.out.append("\n")
        elif kind == "blockquote_open":
            if self.quote_depth == 0:
                self.out.append("<blockquote>")
            self.quote_depth += 1
        elif kind == "blockquote_close":
            self.quote_depth -= 1
            if self.quote_depth == 0:
                self._trim_newlines()
                self.out.append("</blockquote>")
                self._block_end()
        elif kind in ("fence", "code_block"):
            lang = _LANG.sub("", token.info.split()[0]) if token.info.strip() else ""
            body = _esc(token.content.rstrip("\n"))
            if lang:
                self.out.append(f'<pre><code class="language-{lang}">{body}</code></pre>')
            else:
                self.out.append(f"<pre>{body}</pre>")
            self._block_end()
        elif kind == "hr":
            self.out.append("——————")
            self._block_end()
        elif kind == "table_open":
            self.table = []
        elif kind == "table_close":
            rows, self.table = self.table or [], None
            self.out.append(f"<pre>{_esc(_table_text(rows))}</pre>")
            self._block_end()
        elif kind in ("html_block",):
            self.out.append(_esc(token.content))
            self._block_end()


def _table_text(rows: list[list[str]]) -> str:
    """Telegram has no tables: align columns in monospace instead."""
    if not rows:
        return ""
    columns = max(len(r) for r in rows)
    widths = [max(len(r[i]) if i < len(r) else 0 for r in rows) for i in range(columns)]
    lines = [" | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    if len(lines) > 1:
        lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def _plain_inline(token: Token) -> str:
    parts: list[str] = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
    return "".join(parts)


class _InlineRenderer:
    """Inline tokens → tags, closing and reopening formatting around code (which may contain nothing
    and, by Telegram's rules, be part of nothing but links)."""

    def __init__(self, outer: tuple[str, ...] = ()) -> None:
        self.out: list[str] = []
        self.outer = list(outer)  # tags the enclosing block opened (a heading's <b>)
        self.formats: list[str] = []  # open b/i/s tags, innermost last
        self.links: list[bool] = []  # per open link: whether an <a> tag was emitted

    def render(self, children: list[Token]) -> str:
        for token in children:
            self._inline(token)
        for tag in reversed(self.formats):
            self.out.append(f"</{tag}>")
        return "".join(self.out)

    def _inline(self, token: Token) -> None:
        kind = token.type
        if kind in ("text", "html_inline"):
            self.out.append(_esc(token.content))
        elif kind in ("softbreak", "hardbreak"):
            self.out.append("\n")
        elif kind.endswith("_open") and kind[:-5] in _FORMAT_TAGS:
            tag = _FORMAT_TAGS[kind[:-5]]
            self.formats.append(tag)
            self.out.append(f"<{tag}>")
        elif kind.endswith("_close") and kind[:-6] in _FORMAT_TAGS:
            tag = _FORMAT_TAGS[kind[:-6]]
            if tag in self.formats:
                # Close in stack order so tags always nest properly.
                idx = len(self.formats) - 1 - self.formats[::-1].index(tag)
                reopen = self.formats[idx + 1:]
                self.out.extend(f"</{t}>" for t in reversed(self.formats[idx:]))
                self.formats = self.formats[:idx] + reopen
                self.out.extend(f"<{t}>" for t in reopen)
        elif kind == "code_inline":
            if any(self.links):
                self.out.append(_esc(token.content))
            else:
                around = self.outer + self.formats
                self.out.extend(f"</{t}>" for t in reversed(around))
                self.out.append(f"<code>{_esc(token.content)}</code>")
                self.out.extend(f"<{t}>" for t in around)
        elif kind == "link_open":
            href = str(token.attrGet("href") or "")
            linked = href.startswith(_LINK_SCHEMES) and not any(self.links)
            self.links.append(linked)
            if linked:
                self.out.append(f'<a href="{html.escape(href, quote=True)}">')
        elif kind == "link_close":
            if self.links and self.links.pop():
                self.out.append("</a>")
        elif kind == "image":
            alt = _esc(token.content or "image")
            src = str(token.attrGet("src") or "")
            if src.startswith(_LINK_SCHEMES) and not any(self.links):
                self.out.append(f'<a href="{html.escape(src, quote=True)}">{alt}</a>')
            else:
                self.out.append(alt)
