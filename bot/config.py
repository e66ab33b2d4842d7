"""Switchboard's configuration: one YAML file, `${VAR}` interpolation, validated at start.

Secrets never live in the file: it names environment variables (`api_key: ${OPENAI_API_KEY}`).
A bad file fails at start with the file, line, key path, what was expected and what was found.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.yamlsource import SourceDoc, SourceError, load_yaml_file

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "switchboard.yaml"


class ConfigError(ValueError):
    """Raised for any problem in the configuration; `str()` is the message for a person."""

    def __init__(self, problems: list[SourceError]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BotSection(_Section):
    name: str = "Switchboard"
    command_prefix: str = Field("/sb", min_length=1)
    # Channel users named here are owners (`slack:U123`, `telegram:456`); the console user always is.
    owners: list[str] = Field(default_factory=list)


class ServerSection(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    max_message_bytes: int = Field(64 * 1024, ge=256)
    # Seconds an API request waits for a flow's replies before answering what it has.
    reply_timeout: float = Field(120.0, gt=0)


class DatabaseSection(_Section):
    # Empty: the embedded PostgreSQL in `<data_dir>/postgres`.
    url: str = ""
    pool_min: int = Field(2, ge=1)
    pool_max: int = Field(10, ge=1)
    # Wait for the WAL flush on every write (run steps, history). Accepting an event always does.
    synchronous_commit: bool = False


class BusSection(_Section):
    url: str = "memory://"
    max_concurrency: int = Field(256, ge=1)
    drain_timeout: float = Field(10.0, ge=0)


class ModelAlias(_Section):
    """A named model: `model` is a litellm model string (`openai/gpt-4o-mini`, `ollama/llama3`)."""

    model: str
    api_base: str | None = None
    api_key: str | None = None
    timeout: float | None = Field(None, gt=0)
    max_retries: int | None = Field(None, ge=0)
    fallbacks: list[str] = Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict)
    # How this model is called; None: `llm.transport` (see LLMSection).
    transport: Literal["auto", "litellm", "direct"] | None = None


class LLMSection(_Section):
    # The model used when a node names none: an alias below or a litellm model string.
    default: str = ""
    timeout: float = Field(60.0, gt=0)
    max_retries: int = Field(2, ge=0)
    models: dict[str, ModelAlias] = Field(default_factory=dict)
    # auto: our own OpenAI-compatible HTTP client for `openai/...` models (~1 ms of CPU a call), litellm for
    # every other provider; litellm / direct force one (docs/models.md, "Transports").
    transport: Literal["auto", "litellm", "direct"] = "auto"


class FlowsSection(_Section):
    paths: list[str] = Field(default_factory=lambda: ["flows"])
    default: str = "assistant"
    max_steps: int = Field(100, ge=1)
    max_seconds: float = Field(300.0, gt=0)


class LoggingSection(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "text"] = "json"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class EmbeddingSection(_Section):
    """`offline` (WordLlama, bundled, no network) or a litellm model string with its `dim`."""

    model: str = "offline"
    dim: int | None = Field(None, ge=1, le=4000)
    api_base: str | None = None
    api_key: str | None = None
    batch_size: int = Field(128, ge=1)
    # Send `dimensions=dim` to the provider (OpenAI text-embedding-3 models can shorten vectors).
    send_dimensions: bool = False


class KnowledgeSection(_Section):
    embedding: EmbeddingSection = Field(default_factory=EmbeddingSection)
    chunk_size: int = Field(1500, ge=200, le=20000)  # characters
    chunk_overlap: int = Field(150, ge=0, le=5000)
    # Folders `/sb kb ingest` may read from chat (the CLI may read anything its user can).
    allowed_roots: list[str] = Field(default_factory=list)


class MemorySection(_Section):
    # Seconds a `/sb link` code stays valid.
    link_code_ttl: float = Field(600.0, gt=0)
    # Memories recalled into a prompt when an llm node asks for memory without a number.
    recall: int = Field(5, ge=0, le=50)
    # Tokens of conversation history an llm node gets before older turns are summarised.
    history_tokens: int = Field(3000, ge=100)


class Config(_Section):
    bot: BotSection = Field(default_factory=BotSection)
    data_dir: str = "./data"
    server: ServerSection = Field(default_factory=ServerSection)
    database: DatabaseSection = Field(default_factory=DatabaseSection)
    bus: BusSection = Field(default_factory=BusSection)
    llm: LLMSection = Field(default_factory=LLMSection)
    flows: FlowsSection = Field(default_factory=FlowsSection)
    logging: LoggingSection = Field(default_factory=LoggingSection)
    knowledge: KnowledgeSection = Field(default_factory=KnowledgeSection)
    memory: MemorySection = Field(default_factory=MemorySection)
    # Per-adapter options; each adapter validates its own section.
    adapters: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # Tools, MCP servers and approvals; bot/tools/settings.py validates this section.
    tools: dict[str, Any] = Field(default_factory=dict)
    # Rate limits per person and per channel; bot/admin/limits.py validates this section.
    limits: dict[str, Any] = Field(default_factory=dict)
    # Job timing (misfire grace, leader re-try); bot/scheduler/settings.py validates this section.
    scheduler: dict[str, Any] = Field(default_factory=dict)

    # Where the file was read from; relative paths in it resolve against its folder.
    source: str = Field("", exclude=True)
    base_dir: str = Field("", exclude=True)

    def resolve(self, path: str) -> Path:
        candidate = Path(path).expanduser()
        if candidate.is_absolute():
            return candidate
        return Path(self.base_dir or ".") / candidate

    @property
    def data_path(self) -> Path:
        # The data folder is relative to where the bot runs, not to the config file.
        return Path(self.data_dir).expanduser().resolve()

    def flow_dirs(self) -> list[Path]:
        return [self.resolve(p) for p in self.flows.paths]


def config_path(explicit: str | None = None) -> Path:
    """`--config`, else `$SWITCHBOARD_CONFIG`, else the bundled `config/switchboard.yaml`."""
    chosen = explicit or os.environ.get("SWITCHBOARD_CONFIG")
    return Path(chosen).expanduser().resolve() if chosen else DEFAULT_CONFIG


def load_config(path: Path | str | None = None) -> Config:
    file = config_path(str(path) if path else None)
    if not file.exists():
        raise ConfigError(
            [SourceError(str(file), None, (), "config file not found (check --config / SWITCHBOARD_CONFIG)")]
        )
    try:
        doc = load_yaml_file(file, interpolate_env=True)
    except SourceError as exc:
        raise ConfigError([exc]) from None
    return validate_config(doc, base_dir=file.parent)


def validate_config(doc: SourceDoc, *, base_dir: Path) -> Config:
    if not isinstance(doc.data, dict):
        raise ConfigError([doc.error((), f"expected a mapping at the top level, found {_kind(doc.data)}")])
    try:
        config = Config.model_validate(doc.data)
    except ValidationError as exc:
        raise ConfigError([_locate(doc, err) for err in exc.errors()]) from None
    config.source = doc.file
    config.base_dir = str(base_dir)
    problems = _cross_check(config, doc)
    if problems:
        raise ConfigError(problems)
    return config


def _cross_check(config: Config, doc: SourceDoc) -> list[SourceError]:
    problems = []
    for name, alias in config.llm.models.items():
        for index, fallback in enumerate(alias.fallbacks):
            if fallback == name:
                problems.append(
                    doc.error(("llm", "models", name, "fallbacks", index), "a model cannot fall back to itself")
                )
    if config.database.pool_max < config.database.pool_min:
        problems.append(
            doc.error(
                ("database", "pool_max"),
                f"expected at least pool_min ({config.database.pool_min}), found {config.database.pool_max}",
            )
        )
    scheme = config.bus.url.split("://", 1)[0]
    if scheme not in ("memory", "redis", "rediss"):
        problems.append(
            doc.error(("bus", "url"), f"expected memory:// or redis://host:port/db, found {config.bus.url!r}")
        )
    return problems


def _locate(doc: SourceDoc, err: Any) -> SourceError:
    path = tuple(err["loc"])
    found = _value_at(doc.data, path)
    kind = err["type"]
    if kind == "extra_forbidden":
        parent = format_known(path[:-1])
        message = f"unknown key {path[-1]!r}{parent}"
    elif kind == "missing":
        message = "required key is missing"
    else:
        message = f"expected {_expected(err)}, found {found!r}"
    return doc.error(path, message)


def format_known(path: tuple[Any, ...]) -> str:
    model: Any = Config
    for part in path:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None or not isinstance(field.annotation, type) or not issubclass(field.annotation, BaseModel):
            return ""
        model = field.annotation
    names = ", ".join(sorted(getattr(model, "model_fields", {})))
    return f" (known keys: {names})" if names else ""


def _expected(err: dict[str, Any]) -> str:
    msg = str(err.get("msg", "a valid value"))
    for prefix in ("Input should be ", "Value error, "):
        if msg.startswith(prefix):
            return msg[len(prefix) :]
    return msg[0].lower() + msg[1:] if msg else "a valid value"


def _value_at(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return None
    return data


def _kind(value: Any) -> str:
    return type(value).__name__ if value is not None else "nothing"
