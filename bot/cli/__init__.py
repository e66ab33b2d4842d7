"""`switchboard` — the command line.

Each group of subcommands lives in its own module under `bot/cli/` exposing
`register(subparsers)`; add a module to `_GROUPS` to add commands. Heavy imports (the server,
litellm, platform SDKs) happen inside the command that needs them, so `switchboard send` starts fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# Before anything can import litellm: use its bundled cost map, never fetch one at start.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

_GROUPS = (
    "bot.cli.run",
    "bot.cli.talk",
    "bot.cli.config",
    "bot.cli.db",
    "bot.cli.flows",
    "bot.cli.kb",
    "bot.cli.mcp",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="switchboard", description="Agentic chat-ops flows where people already talk."
    )
    parser.add_argument("--config", help="config file (default: $SWITCHBOARD_CONFIG or config/switchboard.yaml)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _GROUPS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.handler(args)
    except KeyboardInterrupt:
        return 130
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
