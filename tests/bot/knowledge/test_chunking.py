"""Chunks follow headings and paragraphs, stay under the size, and overlap within a section."""

from __future__ import annotations

import itertools

from bot.knowledge.chunking import chunk_text


def test_a_heading_starts_a_new_chunk_and_names_it() -> None:
    intro = "Intro text. " * 20
    text = f"# Guide\n\n{intro}\n\n## Install\n\nRun make install.\n\n## Use\n\nCall it with --help."
    chunks = chunk_text(text, size=300, overlap=30)
    headings = [c.heading for c in chunks]
    assert headings[0] == "Guide"
    assert "Guide > Install" in headings
    install = next(c for c in chunks if c.heading == "Guide > Install")
    assert install.text.startswith("## Install")
    assert [c.index for c in chunks] == list(range(len(chunks)))


def test_small_sections_share_a_chunk_instead_of_making_crumbs() -> None:
    chunks = chunk_text("# A\n\none\n\n## B\n\ntwo\n\n## C\n\nthree", size=500, overlap=50)
    assert len(chunks) == 1
    assert chunks[0].text == "# A\n\none\n\n## B\n\ntwo\n\n## C\n\nthree"


def test_long_paragraphs_are_cut_at_sentences_with_overlap_and_never_exceed_the_size() -> None:
    sentences = " ".join(f"Fact number {i} is worth keeping." for i in range(200))
    chunks = chunk_text(sentences, size=400, overlap=80)
    assert len(chunks) > 10
    assert all(len(c.text) <= 400 for c in chunks)
    for before, after in itertools.pairwise(chunks):
        # The start of each chunk repeats the end of the previous one.
        assert after.text.split("\n\n")[0] in before.text
    joined = " ".join(c.text for c in chunks)
    assert all(f"Fact number {i} is worth keeping." in joined for i in range(200))


def test_a_word_longer_than_a_chunk_is_still_cut() -> None:
    chunks = chunk_text("x" * 2000, size=500, overlap=0)
    assert sum(len(c.text) for c in chunks) == 2000
    assert all(len(c.text) <= 500 for c in chunks)


def test_pages_and_numbering_carry_over() -> None:
    chunks = chunk_text("page two text", size=500, page=2, start_index=7, heading="Manual")
    assert chunks[0].index == 7 and chunks[0].page == 2 and chunks[0].heading == "Manual"


def test_empty_text_gives_no_chunks() -> None:
    assert chunk_text("  \n\n ") == []
    assert chunk_text("# Only a heading") == []
