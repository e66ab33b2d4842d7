"""A bad config fails at start naming the file, line, key path, what was expected and what was found."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, load_config
from bot.yamlsource import interpolate


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "switchboard.yaml"
    path.write_text(text)
    return path


def test_the_default_config_loads() -> None:
    config = load_config()
    assert config.server.port == 8080 and config.bus.url == "memory://" and config.flows.default == "assistant"


def test_environment_variables_are_interpolated_with_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SB_TEST_PORT", "9191")
    monkeypatch.delenv("SB_TEST_UNSET", raising=False)
    config = load_config(write(tmp_path, "server:\n  port: ${SB_TEST_PORT}\n  host: ${SB_TEST_UNSET:-0.0.0.0}\n"))
    assert config.server.port == 9191 and config.server.host == "0.0.0.0"


def test_interpolation_rules() -> None:
    env = {"A": "1", "EMPTY": ""}
    assert interpolate("${A}-${B:-two}-${EMPTY:-dflt}-${C}", env) == "1-two-dflt-"


def test_a_wrong_type_names_file_line_key_expected_and_found(tmp_path: Path) -> None:
    path = write(tmp_path, "bot:\n  name: x\nserver:\n  port: eighty\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}:4: server.port: expected a valid integer")
    assert "found 'eighty'" in message


def test_unknown_keys_are_refused_with_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "server:\n  prot: 1\n"))
    assert "server.prot: unknown key 'prot' (known keys: host, max_message_bytes, port, reply_timeout)" in str(
        info.value
    )


def test_invalid_yaml_and_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"switchboard.yaml:\d+: invalid YAML"):
        load_config(write(tmp_path, "server:\n  port: [1,\n"))
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_cross_checks(tmp_path: Path) -> None:
    text = "bus:\n  url: kafka://x\nllm:\n  models:\n    a:\n      model: m\n      fallbacks: [a]\n"
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    message = str(info.value)
    assert ":2: bus.url: expected memory:// or redis://" in message
    assert ":7: llm.models.a.fallbacks[0]: a model cannot fall back to itself" in message
