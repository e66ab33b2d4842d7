"""Prices per token without importing litellm: its bundled price map, read once from the installed package.

litellm ships `model_prices_and_context_window_backup.json` inside its package folder. Reading that file
(~0.1 s, once) gives the direct transport the same prices litellm would use, without litellm's ~5 s and
~185 MiB import. Only the two per-token prices per model are kept in memory.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger("bot.llm")

PRICE_FILE = "model_prices_and_context_window_backup.json"
# Parameters of ours an alias may carry in `params` to price a model litellm does not know.
COST_PARAMS = ("input_cost_per_token", "output_cost_per_token")

_prices: dict[str, tuple[float, float]] | None = None
_lock = threading.Lock()


def price_file() -> Path | None:
    """Where litellm's bundled price map is, found without importing litellm; None if it is not installed."""
    try:
        spec = importlib.util.find_spec("litellm")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / PRICE_FILE
        if candidate.is_file():
            return candidate
    return None


def load_prices() -> dict[str, tuple[float, float]]:
    """`{model: (input price, output price)}` in USD per token; read once, {} when unavailable. Blocking."""
    global _prices
    if _prices is None:
        with _lock:
            if _prices is None:
                _prices = _read(price_file())
    return _prices


def prices_loaded() -> bool:
    return _prices is not None


def _read(path: Path | None) -> dict[str, tuple[float, float]]:
    if path is None:
        log.warning("litellm's price map was not found: costs of direct-transport calls are reported as 0.0")
        return {}
    try:
        raw = json.loads(path.read_bytes())
    except (OSError, ValueError):
        log.warning("litellm's price map could not be read: costs are reported as 0.0", extra={"path": str(path)})
        return {}
    prices: dict[str, tuple[float, float]] = {}
    for name, entry in raw.items() if isinstance(raw, dict) else ():
        if not isinstance(entry, dict) or name == "sample_spec":
            continue
        price_in, price_out = entry.get("input_cost_per_token"), entry.get("output_cost_per_token")
        if isinstance(price_in, int | float) or isinstance(price_out, int | float):
            prices[name] = (_number(price_in), _number(price_out))
    return prices


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def alias_cost(params: Mapping[str, Any], tokens_in: int, tokens_out: int) -> float | None:
    """The cost from an alias's own `params` prices; None when the alias sets none."""
    price_in, price_out = params.get(COST_PARAMS[0]), params.get(COST_PARAMS[1])
    if price_in is None and price_out is None:
        return None
    try:
        return tokens_in * float(price_in or 0) + tokens_out * float(price_out or 0)
    except (TypeError, ValueError):
        return 0.0


def cost(model: str, tokens_in: int, tokens_out: int, params: Mapping[str, Any] | None = None) -> float:
    """USD for one call: the alias's prices, else the price map (`openai/gpt-4o-mini`, then `gpt-4o-mini`),
    else 0.0. Never raises."""
    own = alias_cost(params or {}, tokens_in, tokens_out)
    if own is not None:
        return own
    prices = load_prices()
    entry = prices.get(model)
    if entry is None and "/" in model:
        entry = prices.get(model.split("/", 1)[1])
    if entry is None:
        return 0.0
    return tokens_in * entry[0] + tokens_out * entry[1]
