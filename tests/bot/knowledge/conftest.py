"""Shared helpers for the knowledge tests: a real PDF writer and the offline embedder."""

from __future__ import annotations

from pathlib import Path

import pytest


def write_pdf(path: Path, pages: list[str], title: str = "") -> Path:
    """A genuine PDF (fpdf2) with one page per string."""
    from fpdf import FPDF

    pdf = FPDF()
    if title:
        pdf.set_title(title)
    pdf.set_font("Helvetica", size=11)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 6, text)
    pdf.output(str(path))
    return path


@pytest.fixture(scope="session")
def embedder():
    from bot.embeddings import offline_embedder

    return offline_embedder()
