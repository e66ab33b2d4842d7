"""What every CLI command does first: load and check the config, set up logging."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from bot.config import Config, ConfigError, load_config
from bot.logging import configure_logging


def boot_config(args: argparse.Namespace, *, quiet: bool = False) -> Config:
    """Load the config or exit 2 with every problem listed; quiet commands log warnings only."""
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        fail(f"the configuration is invalid:\n{exc}")
    level = "WARNING" if quiet and config.logging.level in ("INFO", "DEBUG") else config.logging.level
    configure_logging(level, "text" if quiet else config.logging.format)
    return config


def fail(message: str, code: int = 2) -> NoReturn:
    print(f"switchboard: {message}", file=sys.stderr)
    raise SystemExit(code)
