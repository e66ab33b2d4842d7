"""`switchboard config check`: validate the configuration and say what it resolves to."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bot.config import ConfigError, config_path, load_config


def register(sub: Any) -> None:
    config = sub.add_parser("config", help="inspect the configuration")
    actions = config.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    check = actions.add_parser("check", help="validate the config file and print a summary")
    check.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    path = config_path(args.config)
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"{path}: invalid\n{exc}", file=sys.stderr)
        return 2
    print(f"{path}: ok")
    print(f"  data folder: {config.data_path}")
    print(f"  database:    {'DATABASE_URL / database.url' if config.database.url else 'embedded PostgreSQL'}")
    print(f"  bus:         {config.bus.url.split('@')[-1]}")
    print(f"  server:      http://{config.server.host}:{config.server.port}")
    print(f"  model:       {config.llm.default or 'none (set SWITCHBOARD_MODEL)'}")
    print(f"  flows from:  {', '.join(str(p) for p in config.flow_dirs())}")
    return 0
