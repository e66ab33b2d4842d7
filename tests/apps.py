"""Build a real `App` for tests: the module's own database, HTTP on an OS-assigned port, the
default flows (or a test's own), and an LLM pointed at the fake OpenAI server when one is given."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.config import Config

REPO = Path(__file__).resolve().parent.parent


class NullOutput:
    """A text stream that discards what the console adapter prints (tests read `replies` instead)."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def make_config(
    database_url: str,
    data_dir: Path,
    *,
    llm_base_url: str | None = None,
    flow_dirs: list[Path] | None = None,
    **sections: Any,
) -> Config:
    llm: dict[str, Any] = {"default": "", "models": {}, "max_retries": 1, "timeout": 10}
    if llm_base_url:
        llm["default"] = "fake"
        llm["models"] = {"fake": {"model": "openai/gpt-test", "api_base": llm_base_url, "api_key": "sk-test-not-real"}}
    data: dict[str, Any] = {
        "data_dir": str(data_dir),
        "database": {"url": database_url, "pool_min": 1, "pool_max": 8},
        "server": {"host": "127.0.0.1", "port": 0},
        "flows": {"paths": [str(p) for p in (flow_dirs or [REPO / "config" / "flows"])]},
        "llm": llm,
        "logging": {"level": "WARNING", "format": "text"},
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    config = Config.model_validate(data)
    config.base_dir = str(REPO / "config")
    return config
