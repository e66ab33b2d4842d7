"""`switchboard kb ...` as an operator runs it: a real subprocess against the module's database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bot.cli.test_cli import switchboard

pytestmark = pytest.mark.slow  # each run is a fresh interpreter (~1.5 s)


@pytest.fixture(scope="module")
def db_env(database_url: str) -> dict[str, str]:
    return {"DATABASE_URL": database_url}


def test_ingest_search_list_and_delete(db_env: dict[str, str], tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "runbook.md").write_text("# Runbook\n\n## Disk full\n\nDelete old logs in /var/log/app, then restart.")
    (docs / "faq.txt").write_text("The VPN profile is downloaded from the IT portal.")
    (docs / "logo.png").write_bytes(b"\x89PNG")

    ingest = switchboard("kb", "ingest", "docs", "--collection", "ops", "--no-progress", env=db_env, cwd=tmp_path)
    assert ingest.returncode == 0, ingest.stderr
    assert "files: 2 ingested, 0 unchanged, 1 skipped" in ingest.stdout
    assert "chunks: 2" in ingest.stdout and "MB: 0.00" in ingest.stdout and "seconds:" in ingest.stdout
    assert "skipped docs/logo.png: unsupported file type '.png'" in ingest.stderr

    again = switchboard("kb", "ingest", "docs", "--collection", "ops", "--no-progress", env=db_env, cwd=tmp_path)
    assert "files: 0 ingested, 2 unchanged" in again.stdout

    search = switchboard("kb", "search", "the disk is full", "--collection", "ops", "--top", "1", "--json",
                         env=db_env, cwd=tmp_path)
    assert search.returncode == 0, search.stderr
    (hit,) = json.loads(search.stdout)
    assert hit["source"] == "docs/runbook.md" and hit["chunk"] == 0
    assert "/var/log/app" in hit["text"] and 0 < hit["score"] <= 1

    listing = switchboard("kb", "list", env=db_env)
    assert "ops  2 documents  2 chunks" in listing.stdout

    deleted = switchboard("kb", "delete", "ops", env=db_env)
    assert deleted.returncode == 0 and "deleted collection 'ops'" in deleted.stdout
    missing = switchboard("kb", "search", "disk", "--collection", "ops", env=db_env)
    assert missing.returncode == 1 and "no collection named 'ops'" in missing.stderr
