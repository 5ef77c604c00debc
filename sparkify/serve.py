"""Keeps the embedded warehouse serving analysts on loopback until Ctrl-C: `tasks.py serve`.

Clients (psql, pandas, notebooks, BI tools) connect over TCP to 127.0.0.1 and the configured
DB_PORT as DB_USER with a password: DB_PASSWORD, or a generated one kept in a git-ignored
file beside the data. While it serves, create_tables.py, etl.py and insights.py join the same
server and leave it running. Stopped (Ctrl-C or SIGTERM), it stops the server unless a
script is still using it, in which case that script stops it when it ends.
"""

from __future__ import annotations

import signal
import sys
import time

import psycopg2

from . import cli, embedded
from .config import Config, ConfigError
from .warehouse import WarehouseError

CHECK_EVERY_S = 2.0


def warehouse_password(config: Config) -> tuple[str, str]:
    """The password clients use, and where it comes from (for the banner; never the value)."""
    if config.db_password:
        return config.db_password, f"DB_PASSWORD in {config.path.name}"
    path = config.embedded_password_file
    return embedded.password(path), f"{path} (generated; setting DB_PASSWORD in {config.path.name} replaces it)"


def client_url(config: Config, password: str = "***") -> str:
    """The clients' postgresql:// URL, the password masked (empty: no password in it)."""
    secret = f":{password}" if password else ""
    return f"postgresql://{config.embedded_user}{secret}@{embedded.LOOPBACK}:{config.db_port}/{config.db_name}"


def sqlalchemy_url(config: Config) -> str:
    """The URL for SQLAlchemy, naming psycopg2 (installed with the toolkit): SQLAlchemy 2.1
    takes a bare postgresql:// to mean the psycopg 3 driver."""
    return client_url(config).replace("postgresql://", "postgresql+psycopg2://", 1)


def banner(config: Config, where: str) -> list[str]:
    return [
        f"Sparkify warehouse serving on {embedded.LOOPBACK}:{config.db_port} "
        f"(embedded PostgreSQL, {config.embedded_dir.name}/); Ctrl-C stops it.",
        f"  URL:       {client_url(config)}",
        f"  password:  in {where}",
        "  psql:      python3 tasks.py psql",
        f"             or: psql \"{client_url(config, password='')}\"  (asks for the password)",
        f"  pandas:    pandas.read_sql(query, sqlalchemy.create_engine(\"{sqlalchemy_url(config)}\"))",
        "             with the password for ***",
        "  read-only: " + (f"role {config.analyst_role} (grant it to an analyst's login)" if config.analyst_role
                           else "no analysts' role configured ([CLUSTER] ANALYST_ROLE)"),
    ]


def serve(config: Config) -> int:
    if config.engine != "embedded":
        raise ConfigError(f"serve runs the embedded warehouse, but {config.path.name} names "
                          f"{config.describe_target()}: connect to that server directly, or empty [CLUSTER] HOST")
    password, where = warehouse_password(config)
    params = embedded.serve(config.embedded_dir, config.db_port)
    try:
        embedded.ensure_database(params, config.db_name, config.embedded_user, password)
    except psycopg2.Error as exc:
        raise WarehouseError(config.redact(f"preparing the served warehouse: {str(exc).strip().splitlines()[0]}")
                             ) from None
    print("\n".join(banner(config, where)), flush=True)
    # Ctrl-C stops serving even where the shell started this process with SIGINT ignored
    # (a background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        while embedded.running(config.embedded_dir):
            time.sleep(CHECK_EVERY_S)
    except KeyboardInterrupt:
        print("Stopping the warehouse server (a script still using it stops it when it ends).", flush=True)
        return 0
    raise embedded.EmbeddedServerError(f"the embedded PostgreSQL in {config.embedded_dir} stopped; "
                                       f"see {config.embedded_dir / 'log'}, then run serve again")


def main(argv=None) -> int:
    parser = cli.parser(
        "tasks.py serve",
        "Keep the embedded warehouse (empty HOST in the config) serving on loopback TCP until "
        "Ctrl-C, so that psql, pandas, notebooks and BI tools can query it while loads run. "
        "Prints the postgresql:// URL (password masked), the psql line and where the password "
        "is kept. Listens on 127.0.0.1 only, at [CLUSTER] DB_PORT.",
        "python3 tasks.py serve --config dwh.cfg",
    )
    args = parser.parse_args(argv)
    return cli.main(args, serve)


if __name__ == "__main__":
    sys.exit(main())
