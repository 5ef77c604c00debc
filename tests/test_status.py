"""`etl.py --status`: the last batches, failures and their reasons, the latest event time,
recent drift, and freshness against [ETL] thresholds, with an exit status for a monitor."""

from __future__ import annotations

import pytest
from conftest import BASE_TS, event, run_main, song, write_events, write_song

DAY = 86_400_000


def loaded_with_a_failure(warehouse):
    """A published batch, then one that failed (MAXERROR 1 and a bad record), then a batch with drift."""
    root = warehouse.config.parent
    write_events(root, "2018-11-01-events.json", [event(item=i, ts=BASE_TS + i) for i in range(3)])
    write_song(root, song())
    run_main("create_tables.py", "--config", str(warehouse.config))
    run_main("etl.py", "--config", str(warehouse.config))
    bad = write_events(root, "2018-11-02-events.json", [event(ts=BASE_TS + DAY)])
    bad.write_text(bad.read_text() + "\n{not json")
    original = warehouse.config.read_text()
    warehouse.config.write_text(original + "\n[ETL]\nMAXERROR = 1\n")
    assert run_main("etl.py", "--config", str(warehouse.config), check=False).returncode == 1
    warehouse.config.write_text(original)
    write_events(root, "2018-11-02-events.json", [event(ts=BASE_TS + DAY, device="phone")])
    run_main("etl.py", "--config", str(warehouse.config))


@pytest.fixture
def loaded(templates, tmp_path):
    with templates.clone(loaded_with_a_failure, tmp_path) as warehouse:
        yield warehouse


def status(warehouse, warn: str = "", error: str = ""):
    text = warehouse.config.read_text().split("\n[ETL]")[0]
    warehouse.config.write_text(text + f"\n[ETL]\nFRESHNESS_WARN_AFTER = {warn}\nFRESHNESS_ERROR_AFTER = {error}\n")
    return run_main("etl.py", "--config", str(warehouse.config), "--status", check=False)


def test_status_reports_batches_failures_latest_event_and_drift(loaded):
    before = loaded.count("etl_batches")
    result = status(loaded)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "last 3 batches (newest first):" in out
    lines = out.splitlines()
    batch_lines = [line.split() for line in lines if line.startswith("    ") and line.split()[0].isdigit()]
    assert [(row[0], row[3]) for row in batch_lines] == [("3", "published"), ("2", "failed"), ("1", "published")]
    assert "latest event time: 2018-11-02 21:01:46" in out
    assert "2018-11-02-events.json line 1: new_key 'device' (string)" in out
    assert "freshness: not checked" in out
    # The failure is behind a published batch now: not among the failures since then.
    assert "failed since the last published batch" not in out
    assert loaded.count("etl_batches") == before  # a status loads and records nothing


def test_a_failed_last_batch_is_shown_with_its_reason(loaded):
    bad = loaded.config.parent / "log_data" / "2018" / "11" / "2018-11-03-events.json"
    bad.write_text("{not json\n{nor this")
    text = loaded.config.read_text()
    loaded.config.write_text(text + "\n[ETL]\nMAXERROR = 1\n")
    assert run_main("etl.py", "--config", str(loaded.config), check=False).returncode == 1
    loaded.config.write_text(text)
    out = status(loaded).stdout
    assert "failed since the last published batch: 1" in out
    assert "batch 4 at " in out and "2018-11-03-events.json" in out and "MAXERROR = 1" in out


@pytest.mark.parametrize(("warn", "error", "code", "word"), [
    ("100000d", "200000d", 0, "fresh"),
    ("36h", "100000d", 1, "WARN"),
    ("90m", "2d", 2, "ERROR"),
])
def test_freshness_exit_codes(loaded, warn, error, code, word):
    result = status(loaded, warn, error)
    assert result.returncode == code, result.stdout + result.stderr
    assert f"freshness: {word}, the newest event is " in result.stdout


def test_never_loaded_and_unreadable_are_errors(warehouse):
    run_main("create_tables.py", "--config", str(warehouse.config))
    result = status(warehouse, "1d", "2d")
    assert result.returncode == 2
    assert "no batch yet" in result.stdout and "freshness: ERROR, the warehouse holds no event yet" in result.stdout
    text = warehouse.config.read_text().replace(f"DB_NAME = {warehouse.dbname}", "DB_NAME = no_such_database")
    warehouse.config.write_text(text)
    gone = run_main("etl.py", "--config", str(warehouse.config), "--status", check=False)
    assert gone.returncode == 2 and gone.stderr.startswith("Error: ")


def test_a_threshold_that_is_no_duration_is_one_line(warehouse):
    result = status(warehouse, "soon", "")
    assert result.returncode == 2
    assert result.stderr.strip() == (f"Error: {warehouse.config}: [ETL] FRESHNESS_WARN_AFTER = soon is not a "
                                     "duration; write e.g. 90m, 36h or 2d")
