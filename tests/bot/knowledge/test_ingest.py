"""Ingesting files into a collection on the real PostgreSQL + pgvector, and finding them again."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.embeddings.base import Embedder
from bot.knowledge import KnowledgeBase, KnowledgeError, PathNotAllowed, SearchMode, UnknownCollection
from bot.store import Store
from tests.bot.knowledge.conftest import write_pdf


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("docs")
    (root / "handbook.md").write_text(
        "# Handbook\n\n## Holidays\n\nEvery employee gets 27 days of paid holiday per year, plus public holidays."
        "\n\n## Expenses\n\nSubmit receipts within 30 days through the Expensify portal."
    )
    (root / "oncall.html").write_text(
        "<html><head><title>On-call</title></head><body><h1>Paging</h1>"
        "<p>When the pager fires, acknowledge within five minutes and open an incident channel.</p></body></html>"
    )
    (root / "readme.txt").write_text("The build server is named zephyr-ci and lives in the Frankfurt region.")
    write_pdf(root / "security.pdf", ["Passwords rotate every 90 days.", "Laptops use full-disk encryption."])
    (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    return root


@pytest.fixture(scope="module")
async def kb(store: Store, embedder: Embedder, docs: Path) -> KnowledgeBase:
    return KnowledgeBase(store.pool, embedder, chunk_size=600, chunk_overlap=60, allowed_roots=[docs])


async def test_every_format_is_ingested_and_unsupported_files_are_reported_and_skipped(
    kb: KnowledgeBase, docs: Path
) -> None:
    seen = []
    report = await kb.ingest([str(docs), str(docs / "missing.md")], on_file=seen.append)
    assert report.files == 4 and report.chunks >= 4 and report.bytes > 0
    skipped = {Path(s.source).name: s.reason for s in report.skipped}
    assert "unsupported file type '.png'" in skipped["image.png"]
    assert skipped["missing.md"] == "no such file or folder"
    assert len(seen) == 6
    (collection,) = await kb.collections.list()
    assert (collection.name, collection.documents) == ("default", 4)
    formats = {d.format for d in await kb.collections.documents("default")}
    assert formats == {"markdown", "html", "text", "pdf"}


async def test_search_cites_the_source_as_given_its_chunk_and_page(kb: KnowledgeBase, docs: Path) -> None:
    (hit, *_) = await kb.search("how many days of paid holiday do we get?")
    assert hit.source == str(docs / "handbook.md")
    assert "27 days" in hit.text and hit.heading == "Handbook > Holidays"
    assert hit.citation == f"{docs / 'handbook.md'}#{hit.chunk}"
    assert 0 < hit.score <= 1
    (pdf_hit, *_) = await kb.search("disk encryption on laptops")
    assert pdf_hit.source.endswith("security.pdf") and pdf_hit.page == 2
    assert pdf_hit.citation.endswith("(p. 2)")


async def test_exact_names_are_found_by_full_text_and_paraphrases_by_vectors(kb: KnowledgeBase) -> None:
    (by_name, *_) = await kb.search("zephyr-ci", mode=SearchMode.TEXT)
    assert by_name.source.endswith("readme.txt") and by_name.text_rank == 1 and by_name.vector_rank is None
    (by_meaning, *_) = await kb.search("what to do when someone gets paged", mode=SearchMode.VECTOR)
    assert by_meaning.source.endswith("oncall.html") and by_meaning.similarity is not None


async def test_reingesting_unchanged_files_does_nothing(kb: KnowledgeBase, docs: Path, store: Store) -> None:
    async with store.pool.connection() as conn:
        before = await (await conn.execute("SELECT array_agg(id ORDER BY id) FROM kb_chunks")).fetchone()
    report = await kb.ingest([str(docs)])
    assert (report.files, report.unchanged, report.chunks) == (0, 4, 0)
    async with store.pool.connection() as conn:
        after = await (await conn.execute("SELECT array_agg(id ORDER BY id) FROM kb_chunks")).fetchone()
    assert before == after


async def test_a_changed_file_replaces_its_chunks(kb: KnowledgeBase, docs: Path) -> None:
    path = docs / "readme.txt"
    path.write_text("The build server was renamed to boreas-ci and moved to the Dublin region.")
    report = await kb.ingest([str(path)])
    assert (report.files, report.unchanged) == (1, 0)
    assert await kb.search("zephyr-ci", mode=SearchMode.TEXT) == []
    (hit,) = [h for h in await kb.search("boreas-ci") if h.source == str(path)]
    assert "Dublin" in hit.text
    documents = {d.source: d for d in await kb.collections.documents("default")}
    assert documents[str(path)].chunks == 1


async def test_metadata_filters_and_the_score_threshold(kb: KnowledgeBase, docs: Path) -> None:
    only_pdf = await kb.search("passwords and holidays", filters={"format": "pdf"}, top_k=10)
    assert only_pdf and all(h.source.endswith(".pdf") for h in only_pdf)
    everything = await kb.search("passwords and holidays", top_k=10)
    strong = await kb.search("passwords and holidays", top_k=10, min_score=everything[0].score)
    assert 1 <= len(strong) < len(everything)
    report = await kb.ingest([str(docs / "readme.txt")], collection="tagged", metadata={"team": "infra"})
    assert report.files == 1
    tagged = await kb.search("build server", collection="tagged", filters={"team": "infra"})
    assert tagged and tagged[0].metadata["team"] == "infra"
    assert await kb.search("build server", collection="tagged", filters={"team": "sales"}) == []


async def test_collections_are_separate_and_can_be_deleted(kb: KnowledgeBase, docs: Path) -> None:
    await kb.ingest([str(docs / "oncall.html")], collection="ops")
    hits = await kb.search("pager", collection="ops")
    assert {h.collection for h in hits} == {"ops"}
    assert await kb.collections.delete("ops") is True
    with pytest.raises(UnknownCollection, match="no collection named 'ops'"):
        await kb.search("pager", collection="ops")
    assert await kb.collections.delete("ops") is False
    with pytest.raises(KnowledgeError, match="invalid collection name"):
        await kb.ingest([str(docs)], collection="../etc")


async def test_chat_ingestion_is_confined_to_the_allowed_roots(kb: KnowledgeBase, docs: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("root password")
    with pytest.raises(PathNotAllowed, match="outside the allowed folders"):
        await kb.ingest([str(outside)], from_chat=True)
    sneaky = docs / "link.txt"
    sneaky.symlink_to(outside)
    report = await kb.ingest([str(docs)], collection="chat", from_chat=True)
    assert any(s.source.endswith("link.txt") and "outside" in s.reason for s in report.skipped)
    assert not await kb.search('"root password"', collection="chat", mode=SearchMode.TEXT)
    sneaky.unlink()


class _OtherEmbedder(Embedder):
    name = "other/model"
    dim = 8

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return [[1.0] + [0.0] * 7 for _ in texts]


async def test_a_collection_is_never_searched_with_a_different_embedder(store: Store, kb: KnowledgeBase) -> None:
    other = KnowledgeBase(store.pool, _OtherEmbedder())
    with pytest.raises(KnowledgeError, match="was embedded with wordllama"):
        await other.search("anything")
