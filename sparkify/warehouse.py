"""A connection to the warehouse, whichever engine dwh.cfg names.

One psycopg2 connection serves all three engines: the embedded PostgreSQL, any PostgreSQL
server, and Redshift (which speaks the PostgreSQL protocol). Errors come back as one line
that names the setting to fix, with secrets masked.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from datetime import datetime, timezone
from typing import Any, Protocol

import psycopg2
import psycopg2.extras

from . import embedded
from .config import Config
from .dialects import LOCK_TIMEOUT_S, Dialect, of

__all__ = ["LOCK_TIMEOUT_S"]  # the load lock's bound, as loadlock reads it

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10
# SQLSTATEs of a statement that stopped waiting. PostgreSQL's lock_timeout ends a lock wait
# with 55P03 (lock_not_available); a statement_timeout, or a cancel, ends any statement with
# 57014 (query_canceled), on Redshift as on PostgreSQL, whose words differ: Redshift says
# "Query (150) canceled on user's request" (AWS, Redshift Database Developer Guide,
# "statement_timeout", example), PostgreSQL "canceling statement due to statement timeout".
LOCK_NOT_AVAILABLE = "55P03"
QUERY_CANCELED = "57014"


class WarehouseError(Exception):
    """A failure the user can act on; the message is one line and holds no secret.
    sqlstate: the server's error code (SQLSTATE), when the server sent one: what a caller
    decides by, never the words, which differ between engines and versions."""

    def __init__(self, message: str = "", sqlstate: str | None = None):
        super().__init__(message)
        self.sqlstate = sqlstate


class ConnectionLost(WarehouseError):
    """The connection broke (server restart, network); the run may be retried from scratch."""


class Session(Protocol):
    """What the pipeline asks of a warehouse: Warehouse runs the statements over a
    connection; dryrun.DryRunWarehouse records them, runs nothing (executes is False) and
    answers what a run asks with placeholders."""

    config: Config
    dialect: Dialect
    backend_pid: int | None
    executes: bool

    def execute(self, statement: str, params=None, label: str | None = None) -> Any: ...
    def query(self, statement: str, params=None) -> list[tuple]: ...
    def scalar(self, statement: str, params=None) -> Any: ...
    def insert_rows(self, statement: str, rows: list[tuple], label: str | None = None) -> None: ...
    def copy_from_stdin(self, statement: str, stream, label: str) -> int: ...
    def table_columns(self, table: str) -> list[tuple[str, str, int | None, bool]]: ...
    def connection_fds(self) -> tuple[int, ...]: ...
    def note(self, text: str) -> None: ...
    def at_run_time(self, name: str, value: int) -> int: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> Session: ...
    def __exit__(self, exc_type, exc, tb) -> bool | None: ...


class Warehouse:
    """The open connection plus its engine's dialect, which the SQL depends on."""

    executes = True

    def __init__(self, conn, config: Config, backend_pid: int | None = None, dialect: Dialect | None = None):
        self.conn = conn
        self.config = config
        self.dialect = dialect or of(config.dialect)
        self.backend_pid = backend_pid  # the server's process for this session

    def execute(self, statement: str, params=None, label: str | None = None):
        """Runs one statement; returns the cursor (rowcount, fetch)."""
        started = time.perf_counter()
        cur = self.conn.cursor()
        try:
            cur.execute(statement, params)
        except psycopg2.Error as exc:
            raise self._error(exc, label or _first_line(statement)) from None
        if label:
            log_step(label, cur.rowcount, started)
        return cur

    def query(self, statement: str, params=None) -> list[tuple]:
        return self.execute(statement, params).fetchall()

    def scalar(self, statement: str, params=None):
        row = self.execute(statement, params).fetchone()
        return row[0] if row else None

    def insert_rows(self, statement: str, rows: list[tuple], label: str | None = None) -> None:
        """Multi-row INSERT … VALUES for small sets; valid on PostgreSQL and Redshift alike."""
        if not rows:
            return
        cur = self.conn.cursor()
        try:
            psycopg2.extras.execute_values(cur, statement, rows, page_size=2000)
        except psycopg2.Error as exc:
            raise self._error(exc, label or _first_line(statement)) from None

    def copy_from_stdin(self, statement: str, stream, label: str) -> int:
        """Streams COPY … FROM STDIN data from a file-like object; returns rows copied."""
        cur = self.conn.cursor()
        try:
            cur.copy_expert(statement, stream, size=1 << 20)
        except psycopg2.Error as exc:
            raise self._error(exc, label) from None
        return cur.rowcount

    def table_columns(self, table: str) -> list[tuple[str, str, int | None, bool]]:
        """(name, data type, character maximum length, nullable) of a table's columns, in order."""
        rows = self.query(
            "select column_name, data_type, character_maximum_length, is_nullable = 'YES' "
            "from information_schema.columns where table_name = %s "
            "and table_schema = current_schema() order by ordinal_position",
            (table,),
        )
        if not rows:
            raise WarehouseError(f"table {table} does not exist; run python create_tables.py first")
        return rows

    def at_run_time(self, name: str, value: int) -> int:
        """A value the run computes: the value itself (the dry run's recorder shows its name)."""
        return value

    def note(self, text: str) -> None:
        """A remark for the dry run's script; a real run logs it at debug level."""
        log.debug("%s", text)

    def connection_fds(self) -> tuple[int, ...]:
        """The connection's socket, which a forked worker must close."""
        return (self.conn.fileno(),)

    def commit(self) -> None:
        try:
            self.conn.commit()
        except psycopg2.Error as exc:
            raise self._error(exc, "commit") from None

    def rollback(self) -> None:
        if not self.conn.closed:
            self.conn.rollback()

    def close(self) -> None:
        if not self.conn.closed:
            self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.rollback()
        self.close()

    def _error(self, exc: psycopg2.Error, what: str) -> WarehouseError:
        lost = self.conn.closed or isinstance(exc, psycopg2.InterfaceError)
        kind = ConnectionLost if lost else WarehouseError
        return kind(self._explain(exc, what), sqlstate=exc.pgcode)

    def _explain(self, exc: psycopg2.Error, what: str) -> str:
        message = (exc.pgerror or str(exc)).strip().splitlines()
        first = message[0] if message else type(exc).__name__
        first = first.removeprefix("ERROR:").strip()
        if "does not exist" in first and "relation" in first:
            first += "; run python create_tables.py first"
        if exc.pgcode == LOCK_NOT_AVAILABLE:
            first = (f"waited {LOCK_TIMEOUT_S} s for a table that another session holds (an open "
                     "transaction or another run); end that session and run again")
        return self.config.redact(f"{what}: {first}")


def connect(config: Config, database: str | None = None) -> Warehouse:
    """Opens a connection to the configured engine, starting the embedded server if needed;
    the engine's dialect is chosen here, once."""
    dialect = of(config.dialect)
    if config.engine == "embedded":
        params = embedded_params(config)
        params["dbname"] = database or config.db_name
    else:
        params = {
            "host": config.host,
            "port": config.db_port,
            "user": config.db_user,
            "password": config.db_password,
            "dbname": database or config.db_name,
            "connect_timeout": CONNECT_TIMEOUT_S,
        }
    params["application_name"] = client_name()
    # TCP keepalives, so a connection that a NAT or firewall dropped while a long COPY or
    # statement ran is noticed instead of hanging (libpq ignores them on a Unix socket).
    params.update(keepalives=1, keepalives_idle=60, keepalives_interval=10, keepalives_count=6)
    if dialect.connect_options:
        params["options"] = dialect.connect_options
    try:
        conn = psycopg2.connect(**params)
    except psycopg2.OperationalError as exc:
        message = config.redact(_explain_connect(exc, config))
        refused = "refused user" in message or "does not exist" in message or "unknown" in message
        raise (WarehouseError if refused else ConnectionLost)(message) from None
    with conn.cursor() as cur:
        if dialect.pid_from_handshake:
            backend_pid = conn.get_backend_pid()
        else:
            cur.execute("select pg_backend_pid()")
            backend_pid = cur.fetchone()[0]
        for since_version, statement in dialect.session_setup:
            if conn.server_version >= since_version:
                cur.execute(statement)
    conn.commit()
    return Warehouse(conn, config, backend_pid, dialect)


APPLICATION = "sparkify-etl"


def client_name() -> str:
    """The session's application_name: the toolkit, this machine and this process, so that a
    later run can tell a dead run's session (see loadlock). PostgreSQL keeps 63 bytes."""
    return f"{APPLICATION} {this_host()} {os.getpid()}"


def client_of(application: str | None) -> tuple[str, int] | None:
    """(host, pid) from a client_name(), or None for any other application_name."""
    parts = (application or "").split(" ")
    if len(parts) != 3 or parts[0] != APPLICATION or not parts[2].isdigit():
        return None
    return parts[1], int(parts[2])


def this_host() -> str:
    """This machine's name as client_name() records it (cut to fit application_name)."""
    return socket.gethostname().replace(" ", "_")[:40]


def embedded_params(config: Config) -> dict:
    """Starts (or joins) the embedded server; returns DB_USER's socket parameters. The scripts
    work as DB_USER, the database's owner, as analysts' clients do."""
    try:
        params = embedded.start(config.embedded_dir)
    except embedded.EmbeddedServerError as exc:
        raise WarehouseError(str(exc)) from None
    owner = config.embedded_user
    prepared = (params["host"], params["port"], config.db_name, owner)
    if prepared not in _PREPARED:  # once per process: a run connects more than once
        try:
            embedded.ensure_database(params, config.db_name, owner)
        except psycopg2.Error as exc:
            raise WarehouseError(config.redact(f"preparing the embedded warehouse: {_first_line(str(exc))}")) from None
        _PREPARED.add(prepared)
    return dict(params, user=owner)


_PREPARED: set[tuple] = set()  # the embedded databases this process has made sure of


def _explain_connect(exc: psycopg2.OperationalError, config: Config) -> str:
    text = str(exc).strip()
    target = f"{config.host}:{config.db_port}"
    if "password authentication failed" in text or "no password supplied" in text:
        return f"the server at {target} refused user {config.db_user}; check [CLUSTER] DB_USER and DB_PASSWORD"
    if "does not exist" in text and "database" in text:
        return f"database {config.db_name} does not exist on {target}; create it or fix [CLUSTER] DB_NAME"
    if "role" in text and "does not exist" in text:
        return f"user {config.db_user} does not exist on {target}; fix [CLUSTER] DB_USER"
    if "could not translate host name" in text:
        return f"host {config.host} is unknown; check [CLUSTER] HOST"
    if config.engine == "embedded":
        # Never advise deleting the folder: it holds the loaded warehouse.
        return (f"cannot connect to the embedded PostgreSQL ({_first_line(text)}); see the end of "
                f"{config.embedded_dir / 'log'}, then run the command again (the data in "
                f"{config.embedded_dir} is kept)")
    return (f"cannot reach the database at {target} ({_first_line(text)}); "
            "check [CLUSTER] HOST and DB_PORT, and that the server accepts connections")


# Where each step is also written as a JSON line (label, count, unit, seconds), for tools
# that measure runs (tools/benchmark.py) rather than read the progress lines.
STEP_LOG_ENV = "SPARKIFY_STEP_LOG"


def utc_now() -> datetime:
    """Now, as the bookkeeping tables store times: UTC, without a zone (TIMESTAMP columns)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def log_step(label: str, rows: int | None, started: float, detail: str = "", unit: str = "rows") -> None:
    """One progress line: what ran, its count of unit ("-" when unknown) and seconds since
    started; and, when SPARKIFY_STEP_LOG names a file, the same as a JSON line there."""
    seconds = time.perf_counter() - started
    log.info("%-38s %8s %-4s %6.2f s%s", label, _rows(rows), unit, seconds, detail)
    path = os.environ.get(STEP_LOG_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as steps:
            steps.write(json.dumps({"label": label, "count": rows, "unit": unit, "seconds": round(seconds, 4)}) + "\n")


def _first_line(text: str) -> str:
    stripped = " ".join(text.split())
    return stripped[:120]


def _rows(count: int | None) -> str:
    return f"{count:,}" if count is not None and count >= 0 else "-"
