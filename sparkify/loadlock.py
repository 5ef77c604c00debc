"""The load lock: one load at a time, never stuck behind a run that is gone.

Every run takes an exclusive lock on etl_lock, a table nobody reads, for the length of its
transaction (sql_queries.etl_lock). The wait for it is bounded on both engines: PostgreSQL's
lock_timeout (set per connection) and, around the LOCK, Redshift's statement_timeout, whose
LOCK would otherwise wait forever. A run that has to wait says on whom (pid, client, user,
state, since when, last statement), and one that cannot get it says who holds it. On
Redshift the holders come from SVV_TRANSACTIONS and their client names from
SYS_CONNECTION_LOG, which only superusers see (dialects.REDSHIFT.load_lock_holders).

A killed run can leave its database session behind, holding the lock: a client whose
connection hangs half-open, or a session the server has not yet noticed is orphaned.
Each connection names its client process in application_name (warehouse.client_name), so
a later run on the same machine finds the session of a process that no longer exists and
ends it instead of waiting; and a retry after a lost connection ends the session of the
attempt before (Redshift keeps an initiated COPY running, and its locks, until it rolls
back).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime

import sql_queries as q

from .warehouse import (
    LOCK_NOT_AVAILABLE,
    LOCK_TIMEOUT_S,
    QUERY_CANCELED,
    Session,
    WarehouseError,
    client_name,
    client_of,
    this_host,
)

log = logging.getLogger(__name__)


class LoadLockBusy(WarehouseError):
    """Another session holds the load lock past the wait."""


LOCK_WAIT_ENDED = {LOCK_NOT_AVAILABLE, QUERY_CANCELED}


@dataclass(frozen=True)
class Holder:
    """A session that holds the load lock, as the engine shows it (load_lock_holders)."""

    pid: int
    application: str | None
    user: str | None
    state: str | None
    since: datetime | None
    query: str | None

    def __str__(self) -> str:
        client = client_of(self.application)
        who = f"process {client[1]} on {client[0]}" if client else (self.application or "a client without a name")
        since = f" since {self.since:%Y-%m-%d %H:%M:%S}" if self.since else ""
        text = f"session {self.pid} ({who}, {self.state or 'unknown state'}{since}, user {self.user or 'unknown'}"
        query = " ".join((self.query or "").split())
        return text + (f", last statement: {query[:120]}" if query else "") + ")"


def holders(wh: Session) -> list[Holder]:
    """The sessions holding the load lock, as far as the engine shows them to this user (none
    when it cannot say)."""
    try:
        return [Holder(*row) for row in wh.query(wh.dialect.load_lock_holders)]
    except WarehouseError as exc:
        wh.rollback()
        log.debug("who holds the load lock: %s", exc)
        return []


def take(wh: Session) -> None:
    """Takes the load lock for wh's transaction: ends dead runs' sessions that hold it, says
    on whom it waits when a live one does, and waits a bounded time."""
    live = [holder for holder in holders(wh) if not _ended_if_dead(wh, holder)]
    if live:
        log.warning("waiting up to %s s for the load lock, held by %s", LOCK_TIMEOUT_S,
                    "; ".join(str(holder) for holder in live))
    for statement in wh.dialect.lock_wait_bound:
        wh.execute(statement)
    started = time.monotonic()
    try:
        wh.execute(wh.dialect.load_lock, label="load lock")
    except WarehouseError as exc:
        # Decided by the SQLSTATE alone: the wait ended by lock_timeout (PostgreSQL) or by
        # statement_timeout or a cancel (Redshift and PostgreSQL alike).
        if exc.sqlstate not in LOCK_WAIT_ENDED:
            raise
        waited = time.monotonic() - started
        wh.rollback()
        raise LoadLockBusy(f"waited {waited:.0f} s (at most {LOCK_TIMEOUT_S} s) for the load lock, held by "
                           f"{describe_holders(wh)}; wait for that load to finish, or end that session, "
                           "then run again") from None
    for statement in wh.dialect.lock_wait_unbound:
        wh.execute(statement)


def end_dead_holders(wh: Session) -> list[int]:
    """Ends the sessions holding the load lock whose client process on this machine is gone;
    returns their backend pids."""
    return [holder.pid for holder in holders(wh) if _ended_if_dead(wh, holder)]


def _ended_if_dead(wh: Session, holder: Holder) -> bool:
    """Ends holder's session only when it provably is a run of this toolkit, on this machine,
    whose process is gone: a session without the toolkit's client name is never ended."""
    client = client_of(holder.application)
    if client is None or client[0] != this_host() or process_exists(client[1]):
        return False
    wh.scalar(q.terminate_session, (holder.pid,))
    log.warning("ended database session %s: it held the load lock for process %s, which no longer "
                "exists (a killed run)", holder.pid, client[1])
    return True


def describe_holders(wh: Session) -> str:
    """Who holds the load lock, as far as the engine says."""
    found = holders(wh)
    wh.rollback()
    if not found:
        return ("another session, which has ended since or which this user may not see (Redshift's "
                "SVV_TRANSACTIONS shows a user the transactions of its own sessions)")
    return "; ".join(str(holder) for holder in found)


def end_sessions(wh: Session, backends: list[int]) -> None:
    """Ends earlier attempts' sessions (both engines have pg_terminate_backend), so a retry
    does not wait behind their locks. A session already gone is no error."""
    for backend in backends:
        if backend is None or backend == wh.backend_pid:
            continue
        try:
            # Where the engine names sessions, only one that still bears this process's name.
            wh.scalar(wh.dialect.terminate_own_session, {"pid": backend, "client": client_name()})
            wh.commit()
        except WarehouseError as exc:
            wh.rollback()
            log.debug("session %s of an earlier attempt: %s", backend, exc)


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True
