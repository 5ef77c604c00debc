"""The load lock is never held by a run that is gone: workers die with a killed run and keep
none of its connection, a dead run's session is ended by the next run, a retry ends its
earlier attempt's session, and a run that cannot get the lock names who holds it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
from conftest import BASE_TS, ROOT, event, load, run_main, run_script, song, write_events, write_song

import sql_queries as q
from sparkify import dialects, loadlock, parallelrows, pipeline
from sparkify.config import load_config
from sparkify.dialects import POSTGRES
from sparkify.warehouse import client_name, connect, this_host, utc_now

several_cores = pytest.mark.skipif(parallelrows.usable_cores() < 2, reason="needs two cores for workers")


def start_etl(warehouse, pause_at: str) -> subprocess.Popen:
    env = dict(os.environ, SPARKIFY_PAUSE_AT=pause_at)
    return subprocess.Popen([sys.executable, str(ROOT / "etl.py"), "--config", str(warehouse.config)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for_line(proc: subprocess.Popen, marker: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline().decode()
        if marker in line:
            return
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"never saw {marker!r}")


def dead_pid() -> int:
    """The pid of a process that has ended."""
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(finished.stdout)


def holding_lock(warehouse, application: str):
    """A session named application that holds the load lock in an open transaction."""
    conn = warehouse.server.connect(warehouse.dbname)
    conn.set_session(autocommit=False)
    with conn.cursor() as cur:
        cur.execute("set application_name = %s", (application,))
        cur.execute(POSTGRES.load_lock)
        cur.execute("select pg_backend_pid()")
        return conn, cur.fetchone()[0]


@several_cores
def test_sigkill_while_workers_render_leaves_no_worker_and_no_lock(warehouse):
    root = warehouse.config.parent
    # Two days of 12,000 events: over parallelrows' 8 MB, so the log files go to workers.
    run_main("tools/generate_data.py", str(root), "--users", "100", "--days", "2", "--events-per-day", "12000",
             "--songs", "100", "--seed", "5")
    run_script("create_tables.py", "--config", str(warehouse.config))
    proc = start_etl(warehouse, "mid-copy")
    wait_for_line(proc, "paused at mid-copy")
    workers = psutil.Process(proc.pid).children()
    assert len(workers) >= 2  # rendered by worker processes
    proc.kill()
    proc.wait(timeout=30)
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert alive == [], f"workers outlived the killed run: {[p.pid for p in alive]}"
    started = time.monotonic()
    again = run_script("etl.py", "--config", str(warehouse.config), timeout=120)
    assert "ETL batch 1 published" in again.stdout
    assert time.monotonic() - started < 45  # never the lock's 60 s wait


def test_a_dead_runs_session_holding_the_lock_is_ended_by_the_next_run(warehouse):
    run_script("create_tables.py", "--config", str(warehouse.config))
    write_events(warehouse.config.parent, "2018-11-01-events.json", [event()])
    conn, backend = holding_lock(warehouse, f"sparkify-etl {this_host()} {dead_pid()}")
    (warehouse.config.parent / "song_data" / "A" / "B" / "C").mkdir(parents=True, exist_ok=True)
    (warehouse.config.parent / "song_data" / "A" / "B" / "C" / "TRNEW.json").write_text(
        '{"song_id": "SONEW", "title": "New", "artist_id": "ARNEW", "artist_name": "N", "duration": 1.0}')
    result = run_script("etl.py", "--config", str(warehouse.config), timeout=120)
    assert "ETL batch 1 published" in result.stdout
    assert f"ended database session {backend}" in result.stderr
    assert warehouse.scalar("select count(*) from pg_stat_activity where pid = %s", (backend,)) == 0
    conn.close()


def test_a_live_holder_is_left_alone_and_named(warehouse):
    run_script("create_tables.py", "--config", str(warehouse.config))
    conn, backend = holding_lock(warehouse, client_name())  # this process: alive
    try:
        with connect(load_config(warehouse.config)) as wh:
            assert loadlock.end_dead_holders(wh) == []
            described = loadlock.describe_holders(wh)
        assert f"session {backend} (process {os.getpid()} on {this_host()}, idle in transaction since" in described
    finally:
        conn.close()


def test_a_retry_ends_the_session_of_the_attempt_before(warehouse):
    run_script("create_tables.py", "--config", str(warehouse.config))
    earlier, backend = holding_lock(warehouse, client_name())
    config = load_config(warehouse.config)
    with connect(config) as wh:
        loadlock.end_sessions(wh, [backend, None])
    assert warehouse.scalar("select count(*) from pg_stat_activity where pid = %s", (backend,)) == 0
    earlier.close()


def test_a_failed_batch_is_recorded_under_the_lock_with_its_message_cut_to_bytes(warehouse):
    run_script("create_tables.py", "--config", str(warehouse.config))
    config = load_config(warehouse.config)
    with connect(config) as wh:
        pipeline.record_failed_batch(wh, utc_now(), 3, "é" * 3000, [])
    rows = warehouse.query("select batch_id, outcome, octet_length(message) from etl_batches")
    assert rows == [(1, "failed", 4096)]


def test_sigterm_ends_a_run_as_ctrl_c_does(warehouse):
    write_events(warehouse.config.parent, "2018-11-01-events.json", [event()])
    write_song(warehouse.config.parent, song())
    load(warehouse)
    songs = warehouse.config.parent / "song_data" / "A" / "B" / "C"
    songs.mkdir(parents=True, exist_ok=True)
    (songs / "TRTERM.json").write_text('{"song_id": "SOTERM", "title": "T", "artist_id": "ART", "duration": 1.0}')
    proc = start_etl(warehouse, "mid-transform")
    wait_for_line(proc, "paused at mid-transform")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "Error: interrupted; nothing of this run was committed" in err.decode()
    assert "Traceback" not in err.decode()
    assert warehouse.count("songs") == 1  # the first batch's, and nothing of the interrupted one


def test_a_lock_wait_cancelled_as_redshift_cancels_it_is_recognised_by_its_sqlstate(warehouse):
    """Redshift ends a statement past statement_timeout with SQLSTATE 57014 and the words
    "Query (N) canceled on user's request". PostgreSQL's cancel has the same code and words of
    its own ("canceling statement due to user request"): only the code says what happened."""
    import threading

    run_script("create_tables.py", "--config", str(warehouse.config))
    holder, backend = holding_lock(warehouse, client_name())
    try:
        with connect(load_config(warehouse.config)) as wh:
            def cancel_the_wait():
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    if warehouse.scalar("select count(*) from pg_stat_activity where pid = %s "
                                        "and wait_event_type = 'Lock'", (wh.backend_pid,)):
                        warehouse.scalar("select pg_cancel_backend(%s)", (wh.backend_pid,))
                        return
                    time.sleep(0.05)

            canceller = threading.Thread(target=cancel_the_wait)
            canceller.start()
            with pytest.raises(loadlock.LoadLockBusy) as busy:
                loadlock.take(wh)
            canceller.join()
        assert "for the load lock, held by session" in str(busy.value)
        assert f"session {backend} (process {os.getpid()} on {this_host()}" in str(busy.value)
    finally:
        holder.close()


@pytest.mark.parametrize("point, landed", [("before-commit", False), ("after-commit", True)])
def test_a_sigterm_around_the_commit_says_whether_the_batch_landed(warehouse, point, landed):
    """The run's last word is true: an interruption once the COMMIT is sent asks the
    warehouse whether the batch landed, and says which (it once said "nothing of this run
    was committed" of a published batch)."""
    write_events(warehouse.config.parent, "2018-11-01-events.json", [event()])
    write_song(warehouse.config.parent, song())
    run_main("create_tables.py", "--config", str(warehouse.config))
    proc = start_etl(warehouse, point)
    wait_for_line(proc, f"paused at {point}")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    text = err.decode()
    assert proc.returncode == 130 and "Traceback" not in text
    published = warehouse.query("select batch_id from etl_batches where outcome = 'published'")
    if landed:
        assert published == [(1,)]
        assert "Interrupted after the commit: ETL batch 1 is published" in text
        assert "nothing of this run was committed" not in text
    else:
        assert published == [] and warehouse.count("songplays") == 0
        assert "Error: interrupted; nothing of this run was committed" in text


# SVV_TRANSACTIONS and SYS_CONNECTION_LOG as AWS documents their columns, stood in for on
# PostgreSQL (whose pg_class and pg_namespace Redshift has too): the Redshift holders'
# query runs on a real engine.
REDSHIFT_LOCK_VIEWS = """
create table svv_transactions (txn_owner text, txn_db text, xid bigint, pid integer, txn_start timestamp,
    lock_mode text, lockable_object_type text, relation integer, granted boolean);
create table sys_connection_log (event character(50), record_time timestamp, session_id integer,
    user_name character(50), application_name character(250));
"""


def test_redshift_finds_the_lock_holder_in_svv_transactions_and_its_client_by_the_session_start(warehouse):
    """A PID is not unique over time: the client name is the newest session start with that
    PID before the holder's transaction began, not an older or a later session's."""
    run_script("create_tables.py", "--config", str(warehouse.config))
    dead, alive = dead_pid(), os.getpid()
    warehouse.execute(REDSHIFT_LOCK_VIEWS)
    warehouse.execute(
        "insert into svv_transactions select 'sparkify_etl', 'sparkify', 7, 4242, timestamp '2026-12-03 10:00', "
        "'AccessExclusiveLock', 'relation', cast(oid as integer), true from pg_class where relname = 'etl_lock'; "
        "insert into svv_transactions values ('ana', 'sparkify', 8, 4343, timestamp '2026-12-03 10:05', "
        "'AccessShareLock', 'relation', 1, true)")
    for when, process in (("09:00", alive), ("09:59", dead), ("10:30", alive)):
        warehouse.execute("insert into sys_connection_log values ('initiating session', %s, 4242, 'sparkify_etl', "
                          "%s)", (f"2026-12-03 {when}", f"sparkify-etl {this_host()} {process}"))
    rows = warehouse.query(dialects.REDSHIFT.load_lock_holders)
    assert [row[:4] for row in rows] == [(4242, f"sparkify-etl {this_host()} {dead}", "sparkify_etl", "holding it")]
    holder = loadlock.Holder(*rows[0])
    assert str(holder).startswith(f"session 4242 (process {dead} on {this_host()}, holding it since 2026-12-03 "
                                  "10:00:00, user sparkify_etl")


def test_a_load_that_waits_says_on_whom_while_it_waits(warehouse):
    run_script("create_tables.py", "--config", str(warehouse.config))
    write_events(warehouse.config.parent, "2018-11-01-events.json", [event()])
    write_song(warehouse.config.parent, song())
    holder, backend = holding_lock(warehouse, "an analyst's notebook")
    proc = subprocess.Popen([sys.executable, str(ROOT / "etl.py"), "--config", str(warehouse.config)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_line(proc, f"waiting up to 60 s for the load lock, held by session {backend} (an analyst's "
                            "notebook, idle in transaction since")
    finally:
        holder.close()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()


def test_a_sigterm_after_create_tables_commits_says_the_tables_are_there(warehouse):
    """create_tables.py commits the tables before it grants the analysts' role: an
    interruption after that commit must not say that nothing was committed."""
    env = dict(os.environ, SPARKIFY_PAUSE_AT="tables-committed")
    proc = subprocess.Popen([sys.executable, str(ROOT / "create_tables.py"), "--config", str(warehouse.config)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for_line(proc, "paused at tables-committed")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "Interrupted after the tables were committed" in err.decode()
    assert "nothing of this run was committed" not in err.decode()
    assert warehouse.count("etl_lock") == 1


def test_redshift_ends_an_earlier_attempts_session_only_while_this_user_holds_locks_with_it(warehouse):
    """Redshift shows a session's client name to superusers only: an earlier attempt's
    session is ended by its recorded pid while SVV_TRANSACTIONS lists a transaction of this
    user with it, and left alone otherwise (a pid now another user's, or holding nothing)."""
    warehouse.execute(REDSHIFT_LOCK_VIEWS)
    sessions = [warehouse.server.connect(warehouse.dbname) for _ in range(2)]
    try:
        pids = []
        for conn in sessions:
            with conn.cursor() as cur:
                cur.execute("select pg_backend_pid()")
                pids.append(cur.fetchone()[0])
        user = warehouse.scalar("select current_user")
        warehouse.execute("insert into svv_transactions (txn_owner, pid, granted) values (%s, %s, true), "
                          "('someone_else', %s, true)", (user, pids[0], pids[1]))
        for pid in pids:
            warehouse.query(dialects.REDSHIFT.terminate_own_session, {"pid": pid})
        time.sleep(0.5)
        alive = {row[0] for row in warehouse.query("select pid from pg_stat_activity where pid = any(%s)", (pids,))}
        assert alive == {pids[1]}
    finally:
        for conn in sessions:
            conn.close()


def test_an_idle_reader_of_any_table_holds_up_no_load(warehouse, monkeypatch):
    """#19 item 9: the owner's idle transaction that has read every table and view, staging
    and etl_lock among them, does not make a load wait. lock_timeout is 1 s here, so a load
    that waited on it would fail instead of waiting 60 s."""
    import dataclasses

    from sparkify import warehouse as warehouse_module

    root = warehouse.config.parent
    write_events(root, "2018-11-01-events.json", [event(item=i, ts=BASE_TS + i) for i in range(3)])
    write_song(root, song())
    load(warehouse)
    write_events(root, "2018-11-02-events.json", [event(user_id="20", item=0, ts=BASE_TS + 10**8)])
    impatient = dataclasses.replace(POSTGRES, connect_options="-c lock_timeout=1000")
    monkeypatch.setattr(warehouse_module, "of", lambda name: impatient)
    reader = warehouse.server.connect(warehouse.dbname)
    reader.set_session(autocommit=False)
    try:
        with reader.cursor() as cur:
            for relation in q.TABLES + q.VIEWS:
                cur.execute(f"select * from {relation} limit 1")
        # The reader now sits idle in its transaction, holding ACCESS SHARE on every relation.
        started = time.monotonic()
        result = run_main("etl.py", "--config", str(warehouse.config), check=False)
        assert result.returncode == 0, result.stderr
        assert time.monotonic() - started < 30
        assert "ETL batch 2 published" in result.stdout
    finally:
        reader.close()
