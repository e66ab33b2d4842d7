"""Which adapters exist, what switches each on, and how to build it.

An adapter switches on when its credentials are in the environment (or when config says
`enabled: true`); its module is imported only then, so a bot without Discord never imports
discord.py. `discover` says which adapters are live and, for the others, why not.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from adapters.base import Adapter, AdapterStatus


@dataclass(frozen=True, slots=True)
class AdapterEntry:
    name: str
    module: str
    # Any one of these sets of environment variables switches the adapter on.
    switches: tuple[tuple[str, ...], ...]
    always_on: bool = False


ADAPTERS: tuple[AdapterEntry, ...] = (
    AdapterEntry("web", "adapters.web", (), always_on=True),
    AdapterEntry(
        "slack", "adapters.slack", (("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"), ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"))
    ),
    AdapterEntry("discord", "adapters.discord", (("DISCORD_BOT_TOKEN",),)),
    AdapterEntry("telegram", "adapters.telegram", (("TELEGRAM_BOT_TOKEN",),)),
    AdapterEntry("email", "adapters.email", (("EMAIL_IMAP_URL", "EMAIL_SMTP_URL", "EMAIL_ADDRESS"),)),
)


def discover(
    options: Mapping[str, Mapping[str, Any]], env: Mapping[str, str] | None = None
) -> list[tuple[Adapter | None, AdapterStatus]]:
    """Build every adapter that is switched on; report every one, live or not, with the reason."""
    environ = os.environ if env is None else env
    out: list[tuple[Adapter | None, AdapterStatus]] = []
    for entry in ADAPTERS:
        opts = dict(options.get(entry.name) or {})
        enabled = opts.pop("enabled", None)
        if enabled is False:
            out.append((None, AdapterStatus(entry.name, False, f"disabled in config (adapters.{entry.name}.enabled)")))
            continue
        switched = entry.always_on or enabled is True or any(all(environ.get(v) for v in s) for s in entry.switches)
        if not switched:
            need = " or ".join(" + ".join(s) for s in entry.switches)
            out.append((None, AdapterStatus(entry.name, False, f"off: set {need}")))
            continue
        try:
            module = importlib.import_module(entry.module)
        except ModuleNotFoundError as exc:
            if exc.name == entry.module:
                out.append((None, AdapterStatus(entry.name, False, "not available in this build")))
                continue
            raise
        try:
            adapter = module.create(opts, environ)
        except ValueError as exc:  # a clear configuration problem from the adapter
            out.append((None, AdapterStatus(entry.name, False, f"misconfigured: {exc}")))
            continue
        out.append((adapter, AdapterStatus(entry.name, True, getattr(adapter, "describe", lambda: "live")())))
    return out
