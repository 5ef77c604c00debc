"""Crashes, concurrent runs and lost connections never leave the warehouse wrong."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time

import pytest
from conftest import DATA, ROOT, copy_files, load, run_main, snapshot

LOGS = sorted((DATA / "log_data").rglob("*.json"))
SONGS = sorted((DATA / "song_data").rglob("*.json"))


def start_etl(warehouse, pause_at: str) -> subprocess.Popen:
    env = dict(os.environ, SPARKIFY_PAUSE_AT=pause_at)
    return subprocess.Popen([sys.executable, str(ROOT / "etl.py"), "--config", str(warehouse.config)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(proc: subprocess.Popen, marker: str, timeout: float = 120) -> str:
    """Reads the process's stderr (unbuffered) until marker appears; returns what was read."""
    seen = b""
    fd = proc.stderr.fileno()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            seen += chunk
            if marker.encode() in seen:
                return seen.decode()
        elif proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"never saw {marker!r}; stderr so far:\n{seen.decode()}")


def load_first_ten_days(warehouse):
    copy_files(LOGS[:10], DATA / "log_data", warehouse.config.parent / "log_data")
    load(warehouse)


@pytest.fixture
def first_batch_loaded(templates, tmp_path):
    """The catalog and the first ten days loaded; the other twenty days waiting in the prefix.

    The catalog is read from data/ itself, which nothing writes to: copying its 14,896
    files for each test would cost more than the load the template saves.
    """
    with templates.clone(load_first_ten_days, tmp_path, song_data=str(DATA / "song_data")) as warehouse:
        before = snapshot(warehouse)
        copy_files(LOGS[10:], DATA / "log_data", tmp_path / "log_data")
        yield warehouse, before


def assert_fully_loaded(warehouse):
    assert warehouse.count("songplays") == 6820
    assert warehouse.count("users") == 97
    assert warehouse.count("time") == 6813
    assert warehouse.scalar("select count(*) from songplays where song_id is not null") == 327
    assert warehouse.count("loaded_objects") == len(LOGS) + len(SONGS)
    assert warehouse.query("select batch_id, outcome from etl_batches order by 1") == [(1, "published"),
                                                                                     (2, "published")]


@pytest.mark.parametrize("point", ["mid-copy", "mid-transform", "before-commit"])
def test_sigkill_at_any_point_leaves_the_warehouse_as_it_was(first_batch_loaded, point):
    warehouse, before = first_batch_loaded
    proc = start_etl(warehouse, point)
    wait_for(proc, f"paused at {point}")
    proc.kill()
    proc.wait(timeout=30)
    assert snapshot(warehouse) == before
    assert warehouse.count("etl_batches") == 1
    # Running again is the recovery: it ends where an uninterrupted run would.
    again = run_main("etl.py", "--config", str(warehouse.config))
    assert "new or changed source files: 20" in again.stdout
    assert_fully_loaded(warehouse)


def test_a_second_run_waits_for_the_first_and_then_loads_nothing_twice(first_batch_loaded):
    warehouse, _ = first_batch_loaded
    first = start_etl(warehouse, "before-commit:4")
    wait_for(first, "paused at before-commit")
    second = run_main("etl.py", "--config", str(warehouse.config), check=False)
    out, err = (text.decode() for text in first.communicate(timeout=60))
    assert first.returncode == 0, err
    assert "ETL batch 2 published" in out
    assert second.returncode == 0, second.stderr
    assert "Nothing new to load" in second.stdout
    assert_fully_loaded(warehouse)


def test_a_lost_connection_restarts_the_batch(first_batch_loaded):
    warehouse, _ = first_batch_loaded
    proc = start_etl(warehouse, "mid-transform:3")
    wait_for(proc, "paused at mid-transform")
    killed = warehouse.query("select pg_terminate_backend(pid) from pg_stat_activity "
                             "where application_name like 'sparkify-etl %%' and datname = %s", (warehouse.dbname,))
    assert killed == [(True,)]
    out, err = (text.decode() for text in proc.communicate(timeout=120))
    assert proc.returncode == 0, err
    assert "connection lost" in err and "retrying" in err
    assert "ETL batch 2 published" in out
    assert_fully_loaded(warehouse)
