"""Each supported format becomes Markdown-flavoured text; anything else is refused with a reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.knowledge.loaders import Format, LoadError, detect_format, load_file
from tests.bot.knowledge.conftest import write_pdf


def test_plain_text_is_read_and_whitespace_tidied(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("First   line\r\n\r\n\r\nSecond\tparagraph  \n", encoding="utf-8")
    doc = load_file(path)
    assert doc.format is Format.TEXT
    assert doc.text == "First line\n\nSecond paragraph"


def test_latin1_text_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "old.txt"
    path.write_bytes("Café crème".encode("latin-1"))
    assert load_file(path).text == "Café crème"


def test_markdown_keeps_its_headings_and_takes_the_first_as_title(tmp_path: Path) -> None:
    path = tmp_path / "guide.md"
    path.write_text("# Deploy guide\n\nRun the script.\n\n## Rollback\n\nUse the previous tag.\n")
    doc = load_file(path)
    assert doc.format is Format.MARKDOWN and doc.title == "Deploy guide"
    assert "## Rollback" in doc.text


def test_html_becomes_headings_and_paragraphs_without_scripts_or_navigation(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_text(
        "<html><head><title>Runbook</title><style>p{}</style></head><body><nav>Home | About</nav>"
        "<h1>Paging</h1><p>Call the <b>on-call</b> engineer.</p><script>track()</script>"
        "<h2>Escalation</h2><ul><li>Team lead</li><li>CTO</li></ul></body></html>"
    )
    doc = load_file(path)
    assert doc.format is Format.HTML and doc.title == "Runbook"
    assert doc.text == "# Paging\n\nCall the on-call engineer.\n\n## Escalation\n\nTeam lead\n\nCTO"


def test_pdf_text_is_extracted_page_by_page(tmp_path: Path) -> None:
    path = write_pdf(tmp_path / "manual.pdf", ["The reactor starts with the blue lever.", "Cooling uses river water."],
                     title="Plant manual")
    doc = load_file(path)
    assert doc.format is Format.PDF and doc.title == "Plant manual"
    assert [p.page for p in doc.parts] == [1, 2]
    assert "blue lever" in doc.parts[0].text and "river water" in doc.parts[1].text


def test_unsupported_binary_and_broken_files_are_refused_with_a_reason(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match=r"unsupported file type '\.exe'"):
        detect_format(tmp_path / "tool.exe")
    binary = tmp_path / "blob.txt"
    binary.write_bytes(b"\x00\x01\x02binary")
    with pytest.raises(LoadError, match="binary"):
        load_file(binary)
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4 this is not really a pdf")
    with pytest.raises(LoadError, match=r"not a readable PDF|no extractable text"):
        load_file(broken)
    with pytest.raises(LoadError, match="cannot read"):
        load_file(tmp_path / "missing.md")
