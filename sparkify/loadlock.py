"""The load lock: one load at a time, never stuck behind a run that is gone.

Every run takes an exclusive lock on etl_lock, a table nobody reads, for the length of its
transaction (sql_queries.etl_lock). The wait for it is bounded on both engines: PostgreSQL's
lock_timeout (set per connection) and, around the LOCK, Redshift's statement_timeout, whose
LOCK would otherwise wait forever. A run that cannot get it says who holds it.

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


def take(wh: Session) -> None:
    """Takes the load lock for wh's transaction, ending dead runs' sessions that hold it."""
    if q.load_lock_holders[wh.dialect]:
        end_dead_holders(wh)
    for statement in q.lock_wait_bound[wh.dialect]:
        wh.execute(statement)
    started = time.monotonic()
    try:
        wh.execute(q.etl_lock, label="load lock")
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
    for statement in q.lock_wait_unbound[wh.dialect]:
        wh.execute(statement)


def end_dead_holders(wh: Session) -> list[int]:
    """Ends the sessions holding the load lock whose client process on this machine is gone;
    returns their backend pids."""
    ended = []
    for backend, application, *_ in wh.query(q.load_lock_holders[wh.dialect]):
        client = client_of(application)
        if client is None or client[0] != this_host() or process_exists(client[1]):
            continue
        wh.scalar(q.terminate_session, (backend,))
        log.warning("ended database session %s: it held the load lock for process %s, which no longer "
                    "exists (a killed run)", backend, client[1])
        ended.append(backend)
    return ended


def describe_holders(wh: Session) -> str:
    """Who holds the load lock, as far as the engine says."""
    statement = q.load_lock_holders[wh.dialect]
    if not statement:
        return "another session (Redshift: see stv_locks for table etl_lock)"
    try:
        holders = wh.query(statement)
    except WarehouseError:
        holders = []
    finally:
        wh.rollback()
    if not holders:
        return "another session, which has ended since"
    parts = []
    for backend, application, state, since in holders:
        client = client_of(application)
        who = f"process {client[1]} on {client[0]}" if client else (application or "a client without a name")
        parts.append(f"session {backend} ({who}, {state or 'unknown state'} since {since:%Y-%m-%d %H:%M:%S})")
    return "; ".join(parts)


def end_sessions(wh: Session, backends: list[int]) -> None:
    """Ends earlier attempts' sessions (both engines have pg_terminate_backend), so a retry
    does not wait behind their locks. A session already gone is no error."""
    for backend in backends:
        if backend is None or backend == wh.backend_pid:
            continue
        try:
            # Only a session that still bears this process's name: a pid the server has given
            # to another session since is left alone.
            params = (backend, client_name()) if wh.dialect == "postgres" else (backend,)
            wh.scalar(q.terminate_own_session[wh.dialect], params)
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
