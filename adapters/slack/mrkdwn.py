"""Markdown (what flows write) to Slack's mrkdwn dialect (what Slack renders).

Slack is not CommonMark: bold is `*x*`, italic `_x_`, strike `~x~`, links `<url|label>`, no headings
or list syntax, and `&`, `<`, `>` must be escaped or Slack reads them as control sequences. Code
(fenced and inline) is copied verbatim apart from that escaping, so formatting never leaks into it.
Slack's own tokens (`<@U123>`, `<#C123>`, `<!here>`) pass through so flows can still mention people.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"^\s*```")
_SLACK_TOKEN = re.compile(r"<(?:[@#!][^<>\s]+|(?:https?|mailto):[^<>\s]+(?:\|[^<>]*)?)>")
_INLINE_CODE = re.compile(r"`[^`\n]+`")
_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_AUTOLINK = re.compile(r"<((?:https?|mailto):[^<>\s|]+)>")
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_ITALIC_STAR = re.compile(r"(?<![*\w])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![*\w])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")
_BULLET = re.compile(r"^(\s*)[-*+]\s+(.*)$")
_QUOTE = re.compile(r"^\s{0,3}>\s?(.*)$")
_RULE = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$")
_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")

# Private-use characters stand in for protected spans while the inline rules run.
_HOLD = "\ue000"
_BOLD_MARK = "\ue001"


def escape(text: str) -> str:
    """Escape the three characters Slack treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_mrkdwn(markdown: str) -> str:
    """Convert CommonMark-ish markdown to Slack mrkdwn, line by line, leaving code untouched."""
    out: list[str] = []
    lines = markdown.split("\n")
    in_code = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if _FENCE.match(line):
            # Slack shows a language tag as code text, so drop it: "```python" -> "```".
            out.append("```")
            in_code = not in_code
            i += 1
            continue
        if in_code:
            out.append(escape(line))
            i += 1
            continue
        if _TABLE_ROW.match(line):
            # Slack has no tables: keep their columns aligned by showing them as code.
            rows = []
            while i < len(lines) and _TABLE_ROW.match(lines[i]):
                rows.append(escape(lines[i].strip()))
                i += 1
            out.extend(["```", *rows, "```"])
            continue
        out.append(_convert_line(line))
        i += 1
    if in_code:
        out.append("```")  # an unterminated fence would swallow the rest of the message
    return "\n".join(out)


def _convert_line(line: str) -> str:
    if _RULE.match(line):
        return "──────────"
    heading = _HEADING.match(line)
    if heading:
        return f"*{_inline(heading.group(1), strip_bold=True)}*"
    quote = _QUOTE.match(line)
    if quote:
        return "> " + _inline(quote.group(1))
    bullet = _BULLET.match(line)
    if bullet:
        return f"{bullet.group(1)}• {_inline(bullet.group(2))}"
    return _inline(line)


def _inline(text: str, *, strip_bold: bool = False) -> str:
    held: list[str] = []

    def hold(value: str) -> str:
        held.append(value)
        return f"{_HOLD}{len(held) - 1}{_HOLD}"

    text = _INLINE_CODE.sub(lambda m: hold(escape(m.group(0))), text)
    text = _SLACK_TOKEN.sub(lambda m: hold(m.group(0)), text)
    text = _IMAGE.sub(lambda m: hold(f"<{_url(m.group(2))}|{_label(m.group(1) or m.group(2))}>"), text)
    text = _LINK.sub(lambda m: hold(f"<{_url(m.group(2))}|{_label(m.group(1))}>"), text)
    text = _AUTOLINK.sub(lambda m: hold(f"<{_url(m.group(1))}>"), text)
    text = escape(text)
    text = _BOLD.sub(lambda m: m.group(2) if strip_bold else f"{_BOLD_MARK}{m.group(2)}{_BOLD_MARK}", text)
    text = _ITALIC_STAR.sub(r"_\1_", text)
    text = _STRIKE.sub(r"~\1~", text)
    text = text.replace(_BOLD_MARK, "*")
    return re.sub(f"{_HOLD}(\\d+){_HOLD}", lambda m: held[int(m.group(1))], text)


def _label(text: str) -> str:
    # A label may not contain `|` or `>`; Slack would end the link there.
    return escape(text.replace("|", "¦"))


def _url(url: str) -> str:
    return url.replace("&amp;", "&").replace("&", "&amp;")
