"""Markdown (what flows write) → Discord's markdown dialect.

Discord renders most CommonMark, with differences that change meaning or look broken:
`__x__` is underline (not bold), only `#`..`###` headings exist, tables and images are not
rendered, and `<br>` shows literally. Code spans and fenced blocks pass through untouched.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"^\s*(```|~~~)")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_DOUBLE_UNDERSCORE = re.compile(r"(?<![\w_])__(?=\S)(.+?)(?<=\S)__(?![\w_])")
_DEEP_HEADING = re.compile(r"^#{4,6}\s+(.*?)\s*#*\s*$")
_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)[^)]*\)")
_RULE = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$")
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")


def to_discord(text: str) -> str:
    """Render markdown for a Discord message; idempotent on text that is already Discord-safe."""
    out: list[str] = []
    lines = text.split("\n")
    i = 0
    in_fence = False
    while i < len(lines):
        line = lines[i]
        if _FENCE.match(line):
            in_fence = not in_fence
            out.append(line)
            i += 1
            continue
        if in_fence:
            out.append(line)
            i += 1
            continue
        if _TABLE_ROW.match(line) and i + 1 < len(lines) and _TABLE_RULE.match(lines[i + 1]):
            # Discord has no tables: keep the columns aligned by showing the table as code.
            table = [line]
            i += 1
            while i < len(lines) and (_TABLE_ROW.match(lines[i]) or _TABLE_RULE.match(lines[i])):
                table.append(lines[i])
                i += 1
            out += ["```", *table, "```"]
            continue
        out.append(_inline(line))
        i += 1
    return "\n".join(out)


def _inline(line: str) -> str:
    heading = _DEEP_HEADING.match(line)
    if heading:
        line = f"**{heading.group(1)}**"
    elif _RULE.match(line):
        return "──────────"
    # Rewrite only outside code spans.
    pieces: list[str] = []
    last = 0
    for span in _CODE_SPAN.finditer(line):
        pieces.append(_prose(line[last : span.start()]))
        pieces.append(span.group(0))
        last = span.end()
    pieces.append(_prose(line[last:]))
    return "".join(pieces)


def _prose(text: str) -> str:
    text = _BR.sub("\n", text)
    text = _IMAGE.sub(lambda m: f"[{m.group(1) or 'image'}]({m.group(2)})", text)
    return _DOUBLE_UNDERSCORE.sub(r"**\1**", text)
