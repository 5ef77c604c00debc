"""Keeps the embedded warehouse serving analysts on loopback until stopped: `tasks.py serve`.

Clients (psql, pandas, notebooks, BI tools) connect over TCP to 127.0.0.1 and the port
(--port, SPARKIFY_PORT or [CLUSTER] DB_PORT) as the analysts' read-only login, whose URL
names its password file (sparkify/analystlogin.py); the owner's login (DB_USER, password
DB_PASSWORD or generated beside the data) stays for loads and administration. While it
serves, create_tables.py, etl.py and insights.py join the same server. Stopped (Ctrl-C,
SIGTERM, a closed terminal's SIGHUP), it leaves; the server stops when its last user has
gone (sparkify/embedded.py), and even a SIGKILL leaves no server running for nobody.
"""

from __future__ import annotations

import signal
import sys

if __name__ == "__main__":
    # A stop signal while the modules below load (a second or so) ends quietly: nothing has
    # started yet. serve() handles them from then on.
    for _signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(_signum, lambda signum, frame: sys.exit(130))
    # tasks.py starts this process with them blocked, so one sent while the interpreter was
    # still starting is pending, not a traceback: it arrives now, to the handler above.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, (signal.SIGINT, signal.SIGTERM, signal.SIGHUP))

import contextlib  # noqa: E402
import dataclasses  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402

import psycopg2  # noqa: E402

from . import analystlogin, cli, embedded  # noqa: E402
from .config import Config, ConfigError, port_value  # noqa: E402
from .warehouse import WarehouseError  # noqa: E402

CHECK_EVERY_S = 0.5
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def warehouse_password(config: Config) -> tuple[str, str]:
    """The owner's password, and where it comes from (for the banner; never the value)."""
    if config.db_password:
        return config.db_password, f"DB_PASSWORD in {config.path.name}"
    path = config.embedded_password_file
    return embedded.password(path), f"{path} (generated; setting DB_PASSWORD in {config.path.name} replaces it)"


def client_url(config: Config, password: str = "***") -> str:
    """The owner's postgresql:// URL, the password masked (empty: no password in it)."""
    secret = f":{password}" if password else ""
    return f"postgresql://{config.embedded_user}{secret}@{embedded.LOOPBACK}:{config.db_port}/{config.db_name}"


def banner(config: Config, where: str, login: str | None, others: list[embedded.User]) -> list[str]:
    serving = [user for user in others if user.what == "serve"]
    if serving:
        first = (f"Joined the Sparkify warehouse that {embedded.describe_users(serving)} already serves on "
                 f"{embedded.LOOPBACK}:{config.db_port}; leaving (Ctrl-C) does not stop it while that runs.")
    else:
        first = (f"Sparkify warehouse serving on {embedded.LOOPBACK}:{config.db_port} (embedded PostgreSQL, "
                 f"{config.embedded_dir.name}/); Ctrl-C stops it.")
    lines = [first]
    if login:
        url, alchemy = analystlogin.url(config), analystlogin.url(config, "postgresql+psycopg2")
        lines += [
            f"  read-only login {login} (role {config.analyst_role}), for psql, pandas, notebooks and BI tools:",
            f"  URL:       {url}",
            "  psql:      python3 tasks.py psql",
            f"             or: psql \"{url}\"",
            f"  pandas:    pandas.read_sql(query, sqlalchemy.create_engine(\"{alchemy}\"))",
            f"  BI tools:  host {embedded.LOOPBACK}, port {config.db_port}, database {config.db_name}, user {login}, "
            f"the password after the last ':' in {analystlogin.password_file(config)}, SSL off",
        ]
    else:
        lines.append("  read-only login: none, as [CLUSTER] ANALYST_ROLE is empty; clients use the owner's login")
    lines += [
        f"  owner:     {client_url(config)} (loads and administration; password in {where}; "
        "python3 tasks.py psql --owner)",
    ]
    return lines


def serve(config: Config) -> int:
    if config.engine != "embedded":
        raise ConfigError(f"serve runs the embedded warehouse, but {config.path.name} names "
                          f"{config.describe_target()}: connect to that server directly, or empty [CLUSTER] HOST")
    password, where = warehouse_password(config)
    # Ctrl-C, SIGTERM and a closed terminal's SIGHUP all leave the same way, at any moment
    # (while starting too: the half-started server then stops, as nobody uses it).
    for signum in STOP_SIGNALS:
        signal.signal(signum, _leave)
    data_dir = config.embedded_dir.resolve()
    try:
        params = embedded.serve(data_dir, config.db_port)
        others = [user for user in embedded.users(data_dir) if user.pid != os.getpid()]
        try:
            embedded.ensure_database(params, config.db_name, config.embedded_user, password)
        except psycopg2.Error as exc:
            raise WarehouseError(config.redact(f"preparing the served warehouse: {str(exc).strip().splitlines()[0]}")
                                 ) from None
        login = analystlogin.ensure(config, params)
        _say(*banner(config, where, login, others))
        while embedded.running(data_dir):
            time.sleep(CHECK_EVERY_S)
    except KeyboardInterrupt:
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)  # leaving already; a second Ctrl-C changes nothing
        left = embedded.release(data_dir)
        if left:
            _say(f"Left; the warehouse keeps serving for {embedded.describe_users(left)}.")
        else:
            _say("Stopped the warehouse server.")
        return 0
    embedded.release(data_dir, wait=False)
    raise embedded.EmbeddedServerError(f"the embedded PostgreSQL in {config.embedded_dir} stopped; "
                                       f"see {config.embedded_dir / 'log'}, then run serve again")


def _leave(signum, frame):
    raise KeyboardInterrupt


def _say(*lines: str) -> None:
    """Prints to the terminal, which may be gone (SIGHUP): then there is nobody to tell."""
    with contextlib.suppress(OSError):
        print("\n".join(lines), flush=True)


def main(argv=None) -> int:
    parser = cli.parser(
        "tasks.py serve",
        "Keep the embedded warehouse (empty HOST in the config) serving on loopback TCP until "
        "Ctrl-C, so that psql, pandas, notebooks and BI tools can query it while loads run. "
        "Prints the analysts' read-only login (made once): its URL, which names its password file "
        "and works as printed in psql and SQLAlchemy, the psql and pandas lines, and the owner's "
        "login for loads. A second serve joins the first. Listens on 127.0.0.1 only, at --port, "
        "else the environment variable SPARKIFY_PORT, else [CLUSTER] DB_PORT.",
        "python3 tasks.py serve --port 5433",
    )
    parser.add_argument("--port", metavar="N", default=None,
                        help="the TCP port to listen on (1-65535), instead of SPARKIFY_PORT or [CLUSTER] DB_PORT; "
                             "dwh.cfg stays as it is")
    args = parser.parse_args(argv)

    def job(config: Config) -> int:
        if args.port is not None:
            config = dataclasses.replace(config, db_port=port_value(args.port, "--port"))
        return serve(config)

    return cli.main(args, job)


if __name__ == "__main__":
    sys.exit(main())
