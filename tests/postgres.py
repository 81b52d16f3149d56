"""A fresh PostgreSQL database per test module, on the server that ``$MLOPS_RAY_TEST_POSTGRES_URI`` names.

Why a database of its own: an MLflow tracking server migrates its backend on start and
numbers model versions per registered model, so tests sharing one database (or running
beside another engineer's tests on the same server) would see each other's experiments,
runs and versions. A per-module database isolates them, and dropping it ``WITH (FORCE)``
leaves nothing behind even when a killed server still held connections.

``.ci/run`` sets the variable once PostgreSQL answers; where it is unset the caller
decides: the cluster test falls back to SQLite, the tracking-fault tests skip.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlparse, urlunparse

POSTGRES_ENV = "MLOPS_RAY_TEST_POSTGRES_URI"


def postgres_server() -> str | None:
    """The server URI tests may create databases on, or ``None`` where none is named."""
    return os.environ.get(POSTGRES_ENV) or None


@contextlib.contextmanager
def postgres_database(prefix: str) -> Iterator[str | None]:
    """Create ``<prefix>_<random>`` on the named server and yield its URI; ``None`` if no server is named.

    Dropped on exit with ``FORCE``: a tracking server killed by a test may leave sessions open.
    """
    server = postgres_server()
    if not server:
        yield None
        return
    import psycopg  # the dev extra; only needed where a server is named

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield urlunparse(urlparse(server)._replace(path=f"/{name}"))
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
