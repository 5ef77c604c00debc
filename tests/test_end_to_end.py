"""The user's path: create_tables.py then etl.py on the repository's data/, with the
embedded default (empty HOST), checked against the independent oracle."""

from __future__ import annotations

import re
from datetime import datetime

import psycopg2
import pytest
from conftest import DATA, STAGED_ROWS, run_script, write_config
from oracle import compute

import quality_checks as qc
from sparkify import embedded


@pytest.fixture(scope="module")
def expected():
    return compute(DATA)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """Runs both scripts once on the embedded default; yields (etl stdout, query function)."""
    folder = tmp_path_factory.mktemp("e2e")
    config = write_config(folder / "dwh.cfg", log_data=str(DATA / "log_data"),
                          song_data=str(DATA / "song_data"))
    created = run_script("create_tables.py", "--config", str(config))
    etl = run_script("etl.py", "--config", str(config))
    params = embedded.start(folder / ".pgdata")
    conn = psycopg2.connect(dbname="sparkify", **params)
    conn.autocommit = True  # an open read transaction would hold locks that etl.py waits for

    def query(sql, args=None):
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()

    yield created, etl, query, config
    conn.close()


def test_create_tables_reports_the_tables(loaded):
    created = loaded[0]
    assert "embedded PostgreSQL" in created.stdout
    for table in ("staging_events", "staging_songs", "songplays", "users", "songs", "artists", "time"):
        assert table in created.stdout


def test_row_counts_match_the_oracle(loaded, expected):
    query = loaded[2]
    counts = {table: query(STAGED_ROWS, (table,))[0][0] for table in ("staging_events", "staging_songs")}
    counts |= {table: query(f"select count(*) from {table}")[0][0]
               for table in ("songplays", "users", "songs", "artists", "time")}
    assert counts == {
        "staging_events": expected.staging_events,
        "staging_songs": expected.staging_songs,
        "songplays": expected.songplays,
        "users": len(expected.users),
        "songs": len(expected.songs),
        "artists": len(expected.artists),
        "time": len(expected.start_times),
    }
    # The figures the field guide derives for the real bucket, as a cross-check of the oracle.
    assert counts["songplays"] == 6820 and counts["users"] == 97 and counts["time"] == 6813


def test_catalog_matches_and_repairs_match_the_oracle(loaded, expected):
    query = loaded[2]
    matched = query("select count(*) from songplays where song_id is not null")[0][0]
    assert matched == expected.matched
    assert expected.matched > expected.matched_without_repair  # the repair matters on this data
    plays = {(str(u), s, i): (song_id, start) for u, s, i, song_id, start in
             query("select user_id, session_id, item_in_session, song_id, start_time from songplays")}
    assert plays == expected.plays


def test_summary_reports_counts_matches_errors_and_time(loaded, expected):
    out = loaded[1].stdout
    assert re.search(r"songplays\s+6,820", out)
    assert f"songplays matched to the catalog: {expected.matched:,} of {expected.songplays:,}" in out
    recovered = expected.matched - expected.matched_without_repair
    assert f"{recovered:,} of this run's thanks to repairing double-encoded UTF-8" in out
    assert "bad records: 0 rejected" in out
    # A first load brings every event: checked on every row, the summaries' check included.
    assert f"quality gate: all {len(qc.quality_checks)} checks passed (on every row)" in out
    assert re.search(r"ETL batch 1 published in \d+\.\d s", out)
    assert "new or changed source files: 14,926" in out


def test_users_have_their_latest_attributes(loaded, expected):
    query = loaded[2]
    users = {row[0]: row[1:] for row in
             query("select user_id, first_name, last_name, gender, level, registered_at from users")}
    assert users == expected.users


def test_artists_take_the_most_common_spelling(loaded, expected):
    query = loaded[2]
    names = dict(query("select artist_id, name from artists"))
    assert names == expected.artists


def test_sample_values_are_exact(loaded, expected):
    query = loaded[2]
    # Millisecond timestamps survive: the first event of the month.
    first = query("select min(start_time) from songplays")[0][0]
    assert first == min(expected.start_times)
    assert first.microsecond % 1000 == 0 and first.microsecond != 0
    # Repaired names display correctly and match the catalog.
    row = query("select artist_name, song_id from songplays where artist_name like 'Bj%rk' limit 1")
    assert row and row[0][0] == "Björk"
    beyonce = query("select count(*) from songplays where artist_name = 'Beyoncé'")[0][0]
    assert beyonce > 0
    # A song whose title is a JSON number is stored as text.
    assert query("select title from songs where title = '4.6'")
    # A time row decomposes its start_time (weekday 0 = Sunday).
    hour, weekday = query("select hour, weekday from time where start_time = %s", (first,))[0]
    assert hour == first.hour and weekday == (first.isoweekday() % 7)
    assert isinstance(first, datetime)


def test_rerun_adds_nothing(loaded, expected):
    config = loaded[3]
    again = run_script("etl.py", "--config", str(config))
    assert "Nothing new to load: all 14,926 source files are loaded already" in again.stdout
    query = loaded[2]
    assert query("select count(*) from songplays")[0][0] == expected.songplays
    assert query("select count(*) from users")[0][0] == len(expected.users)
