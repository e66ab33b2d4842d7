"""The command line, run as a person or a script runs it: a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def switchboard(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("SWITCHBOARD_", "DATABASE_URL", "REDIS_URL"))}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd or REPO,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def db_env(database_url: str) -> dict[str, str]:
    return {"DATABASE_URL": database_url}


def test_send_prints_the_replies_and_exits_0(db_env: dict[str, str]) -> None:
    result = switchboard("send", "help", "--user", "scripted", env=db_env)
    assert result.returncode == 0, result.stderr
    assert "Hi scripted!" in result.stdout and "/sb help" in result.stdout


def test_send_without_a_model_explains_how_to_set_one(db_env: dict[str, str]) -> None:
    result = switchboard("send", "what is the weather?", env=db_env)
    assert result.returncode == 0, result.stderr
    assert "no language model is configured" in result.stdout and "Traceback" not in result.stderr


@pytest.mark.slow
def test_send_starts_the_embedded_database_from_cold(tmp_path: Path) -> None:
    """A fresh data folder: the bundled PostgreSQL is initialised, migrated and answers."""
    started = time.monotonic()
    result = switchboard("send", "help", env={"SWITCHBOARD_DATA": str(tmp_path / "data")}, cwd=tmp_path)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "Here is what I can do" in result.stdout
    assert (tmp_path / "data" / "postgres" / "PG_VERSION").exists()
    print(f"cold start with a new data folder: {elapsed:.2f} s")


def test_flows_check_reports_problems_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nnodes:\n  - id: a\n    kind: nope\n")
    result = switchboard("flows", "check", str(bad))
    assert result.returncode == 1
    assert f"{bad}:3: nodes.a.kind: unknown node kind 'nope'" in result.stderr
    good = switchboard("flows", "check")
    assert good.returncode == 0 and "0 problem(s)" in good.stdout


def test_flows_graph_prints_mermaid() -> None:
    result = switchboard("flows", "graph", "assistant")
    assert result.returncode == 0 and result.stdout.startswith("flowchart TD")
    assert switchboard("flows", "graph", "nope").returncode == 1


def test_config_check_names_the_bad_key(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text("server:\n  port: -5\n")
    result = switchboard("--config", str(bad), "config", "check")
    assert result.returncode == 2 and ":2: server.port: expected greater than or equal to 0" in result.stderr
    assert switchboard("config", "check").returncode == 0


def test_a_bad_config_stops_any_command_at_start(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text("bus:\n  url: kafka://nowhere\n")
    result = switchboard("send", "hi", env={"SWITCHBOARD_CONFIG": str(bad)})
    assert result.returncode == 2 and "bus.url" in result.stderr and "Traceback" not in result.stderr


def test_db_status_lists_the_applied_migrations(db_env: dict[str, str]) -> None:
    result = switchboard("db", "status", env=db_env)
    assert result.returncode == 0, result.stderr
    assert "0001 spine" in result.stdout and "0 pending" in result.stdout
