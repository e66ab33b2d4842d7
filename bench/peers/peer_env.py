"""The peers' own virtualenv (bench/.peers/), created on demand, never our lock or .venv.

Peers pin dependencies that clash with ours (errbot and opsdroid pin their own aiohttp, click, …),
so each benchmark runs in a venv of its own kind; one venv holds all three since they coexist.
A package that fails to install is reported with pip's last lines, and the others go on.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from dataclasses import dataclass
from pathlib import Path

PEERS_DIR = Path(__file__).resolve().parent.parent / ".peers"
# One requirement set per peer; installed separately so one failure does not hide the others.
PEER_PACKAGES: dict[str, list[str]] = {
    # opsdroid 0.31 still imports pkg_resources, which setuptools 81 removed.
    "opsdroid": ["opsdroid", "setuptools<81"],
    # errbot's test backend imports pytest.
    "errbot": ["errbot", "pytest"],
    "langgraph": ["langgraph", "langgraph-checkpoint-postgres", "psycopg[binary]", "psycopg-pool"],
}


@dataclass(slots=True)
class Install:
    peer: str
    ok: bool
    detail: str


def python() -> Path:
    return PEERS_DIR / "bin" / "python"


def ensure_venv() -> Path:
    if not python().exists():
        venv.EnvBuilder(with_pip=True, clear=False).create(PEERS_DIR)
    return python()


def install(peer: str) -> Install:
    """pip install the peer's packages (a no-op when already there); the failure reason if any."""
    exe = ensure_venv()
    cmd = [str(exe), "-m", "pip", "install", "-q", "--disable-pip-version-check", *PEER_PACKAGES[peer]]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        return Install(peer, False, f"pip install {' '.join(PEER_PACKAGES[peer])} failed: {tail}")
    return Install(peer, True, "installed")


if __name__ == "__main__":
    for name in sys.argv[1:] or list(PEER_PACKAGES):
        result = install(name)
        print(f"{result.peer}: {'ok' if result.ok else result.detail}", flush=True)
