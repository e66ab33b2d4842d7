"""Turn a mail body into what the person actually wrote: HTML to text, quoted history removed.

Flows should see "yes, ship it", not the whole thread quoted back below it. HTML is walked with the
stdlib parser (structure-aware: blocks, lists, links, quotes) rather than stripped with patterns.
"""

from __future__ import annotations

import re
from html import unescape
from html.parser import HTMLParser

_BLOCK_TAGS = {
    "p", "div", "section", "article", "header", "footer", "table", "tr", "ul", "ol",
    "h1", "h2", "h3", "h4", "h5", "h6", "pre", "hr", "address", "center",
}  # fmt: skip
_SKIP_TAGS = {"script", "style", "head", "title", "template"}
# Containers mail clients use for the quoted previous message (Gmail, Outlook, Apple Mail, Thunderbird).
_QUOTE_CLASSES = {"gmail_quote", "gmail_extra", "moz-cite-prefix", "yahoo_quoted", "protonmail_quote"}
_QUOTE_IDS = {"appendonsend", "divrplyfwdmsg", "mail-editor-reference-message-container"}
_VOID_TAGS = {"br", "hr", "img", "meta", "link", "input", "col", "area", "base", "wbr", "source"}


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._skip_depth = 0  # inside script/style or a quoted-history container
        self._stack: list[tuple[str, bool]] = []  # (tag, starts a skipped region)
        self._pre = 0
        self._href: list[str] = []
        self._ol_counters: list[int] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {k: (v or "") for k, v in attrs}
        classes = set(attr.get("class", "").lower().split())
        skip = (
            tag in _SKIP_TAGS
            or tag == "blockquote"
            or bool(classes & _QUOTE_CLASSES)
            or attr.get("id", "").lower() in _QUOTE_IDS
        )
        if tag not in _VOID_TAGS:
            self._stack.append((tag, skip))
        if skip:
            self._skip_depth += 1
            return
        if self._skip_depth:
            return
        if tag == "br":
            self.out.append("\n")
        elif tag == "hr":
            self.out.append("\n\n---\n\n")
        elif tag in ("ul", "ol"):
            self._ol_counters.append(0 if tag == "ol" else -1)
            self.out.append("\n")
        elif tag == "li":
            counter = self._ol_counters[-1] if self._ol_counters else -1
            if counter >= 0:
                self._ol_counters[-1] += 1
                self.out.append(f"\n{counter + 1}. ")
            else:
                self.out.append("\n- ")
        elif tag in _BLOCK_TAGS:
            self.out.append("\n\n")
            if tag == "pre":
                self._pre += 1
        elif tag == "a":
            self._href.append(attr.get("href", ""))
        elif tag in ("td", "th"):
            self.out.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID_TAGS:
            return
        # Pop to the matching open tag; tolerate the unclosed tags real mail is full of.
        while self._stack:
            open_tag, skip = self._stack.pop()
            if skip:
                self._skip_depth -= 1
            if open_tag == tag:
                break
        else:
            return
        if self._skip_depth:
            return
        if tag in ("ul", "ol") and self._ol_counters:
            self._ol_counters.pop()
        if tag == "a" and self._href:
            href = self._href.pop()
            text_so_far = "".join(self.out[-3:])
            if href.startswith(("http://", "https://")) and href not in text_so_far:
                self.out.append(f" ({href})")
        if tag in _BLOCK_TAGS:
            if tag == "pre":
                self._pre = max(0, self._pre - 1)
            self.out.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._skip_depth:
            return
        if self._pre:
            self.out.append(data)
        else:
            self.out.append(re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> str:
    """Readable plain text from an HTML mail body, without the quoted previous messages."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    text = unescape("".join(parser.out))
    lines = [line.strip() for line in text.replace("\r", "").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# "On Tue, 3 Mar 2026 at 10:02, Ann <ann@example.com> wrote:" (any language keeps the shape
# "<intro> ... wrote:"; the common localized verbs are listed). Gmail may wrap it over two lines.
_INTRO = r"^(on|am|le|el|il|op|em|den)\b"
_VERBS = r"(wrote|schrieb|a écrit|escribió|ha scritto|schreef|escreveu|skrev)"
# German puts the name after the verb: "Am ... schrieb Ann <ann@example.com>:".
_ATTRIBUTION = re.compile(_INTRO + r".{0,300}\b" + _VERBS + r"(\s[^:]{0,200})?\s*:\s*$", re.IGNORECASE | re.DOTALL)
_ORIGINAL_MESSAGE = re.compile(r"^-{2,}\s*(original message|ursprüngliche nachricht|message d'origine)\s*-{2,}$", re.I)
_FORWARD_HEADER = re.compile(r"^(from|von|de):\s.+", re.IGNORECASE)
_FORWARD_FOLLOWUP = re.compile(r"^(sent|date|gesendet|envoyé|to|subject):\s", re.IGNORECASE)


def strip_quoted(text: str) -> str:
    """Cut the quoted history and signature from a plain-text reply.

    Stops at the first attribution line ("On ... wrote:"), Outlook's "-----Original Message-----"
    or its "From: / Sent:" header block, or the "-- " signature separator; drops "> " lines.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    for index, line in enumerate(lines):
        stripped = line.strip()
        if line.rstrip("\n") in ("-- ", "--") or _ORIGINAL_MESSAGE.match(stripped):
            break
        if _ATTRIBUTION.match(stripped):
            break
        following = lines[index + 1].strip() if index + 1 < len(lines) else ""
        # Gmail wraps long attributions: "On ..., Ann <ann@" / "example.com> wrote:"
        if following and _ATTRIBUTION.match(f"{stripped} {following}"):
            break
        if _FORWARD_HEADER.match(stripped) and _FORWARD_FOLLOWUP.match(following):
            break
        if stripped.startswith(">"):
            continue
        kept.append(line.rstrip())
    while kept and (not kept[-1].strip() or set(kept[-1].strip()) <= {"_", "-"}):
        kept.pop()  # the rule Outlook draws above its header block
    return "\n".join(kept).strip()
