"""Secrets never reach a log line."""

from __future__ import annotations

import io
import json
import logging

from bot.logging import configure_logging


def test_secret_values_and_url_passwords_are_redacted(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-supersecretvalue")
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)
    try:
        logging.getLogger("t").info(
            "calling with sk-live-supersecretvalue", extra={"url": "postgresql://app:hunter22@db:5432/x"}
        )
        line = json.loads(stream.getvalue().strip())
    finally:
        configure_logging("WARNING", "text")
    assert "supersecret" not in stream.getvalue() and "hunter22" not in stream.getvalue()
    assert line["msg"] == "calling with ***" and line["url"] == "postgresql://app:***@db:5432/x"
