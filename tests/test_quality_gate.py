"""The quality gate: SQL checks that return violating rows, and a failure publishes nothing.

PostgreSQL enforces the primary keys Redshift only declares, so to see a dimension's
uniqueness check fail the tests drop its key first: the warehouse then behaves as Redshift
would. The event-grain tables' keys and every foreign key are declared on Redshift only
(sql_queries.INFORMATIONAL_KEYS); on both engines the gate is what keeps them.
"""

from __future__ import annotations

import re

import psycopg2
import pytest
from conftest import BASE_TS, event, load, run_main, song, write_events, write_song

import quality_checks as qc
import sql_queries as q


def execute(warehouse, sql: str) -> None:
    conn = psycopg2.connect(host=warehouse.server.host, port=warehouse.server.port, user=warehouse.server.user,
                            password=warehouse.server.password, dbname=warehouse.dbname)
    with conn, conn.cursor() as cur:
        cur.execute(sql)
    conn.close()


def load_first_day(warehouse):
    root = warehouse.config.parent
    write_events(root, "2018-11-01-events.json", [event(item=i, ts=BASE_TS + i) for i in range(3)])
    write_song(root, song())
    load(warehouse)


@pytest.fixture
def loaded(templates, tmp_path):
    with templates.clone(load_first_day, tmp_path) as warehouse:
        # The next batch waits in the prefix.
        write_events(tmp_path, "2018-11-02-events.json", [event(user_id="20", item=0, ts=BASE_TS + 10**8)])
        yield warehouse


def assert_gate_fails(warehouse, *names: str, full: bool = True) -> str:
    """The next batch fails the gate. Violations seeded in rows the batch does not touch are
    found by --full-checks (the nightly mode); the default checks the batch's rows."""
    before = warehouse.count("songplays")
    result = run_main("etl.py", "--config", str(warehouse.config), *(["--full-checks"] if full else []),
                      check=False)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: quality gate:") and "nothing of this batch was published" in last
    for name in names:
        assert f"{name} FAILED (e.g. " in last
    assert warehouse.count("songplays") == before                       # the new play is not there
    assert warehouse.scalar("select outcome from etl_batches order by batch_id desc limit 1") == "failed"
    assert warehouse.count("loaded_objects") == 2                       # so the next run tries again
    return last


def test_a_clean_batch_passes_every_check(loaded):
    result = run_main("etl.py", "--config", str(loaded.config))
    assert (f"quality gate: all {len(qc.batch_quality_checks)} checks passed "
            "(on the rows this batch wrote)") in result.stdout
    again = run_main("etl.py", "--config", str(loaded.config), "--rebuild")
    assert f"quality gate: all {len(qc.quality_checks)} checks passed (on every row)" in again.stdout


def test_a_level_outside_the_accepted_set_is_rejected_at_staging_and_the_batch_loads(loaded):
    """The gate refuses a whole batch without a file or line; a level of "gold" in a source
    file is rejected where it is staged instead, and the records around it publish."""
    path = write_events(loaded.config.parent, "2018-11-02-events.json",
                        [event(user_id="20", item=0, ts=BASE_TS + 10**8, level="gold"),
                         event(user_id="20", item=1, ts=BASE_TS + 10**8 + 1)])
    result = run_main("etl.py", "--config", str(loaded.config))
    assert "ETL batch 2 published" in result.stdout
    assert f'{path}:1: level: "gold" is not an accepted value: level must be free or paid' in result.stdout
    assert loaded.scalar("select count(*) from songplays where user_id = 20") == 1


def test_pre_existing_damage_outside_the_batch_is_left_to_the_full_checks(loaded):
    execute(loaded, "update users set level = 'gold' where user_id = 10")
    result = run_main("etl.py", "--config", str(loaded.config))
    assert "ETL batch 2 published" in result.stdout


def test_a_batch_bringing_most_of_the_events_is_checked_on_every_row(loaded):
    execute(loaded, "update users set level = 'gold' where user_id = 10")
    write_events(loaded.config.parent, "2018-11-02-events.json",
                 [event(user_id="20", item=i, ts=BASE_TS + 10**8 + i) for i in range(6)])  # 6 of 9 events
    last = assert_gate_fails(loaded, "users.level is free or paid", full=False)
    assert "level='gold'" in last


def test_duplicate_keys_fail_the_gate_and_show_the_rows(loaded):
    execute(loaded, "alter table users drop constraint users_pkey;"
                    "insert into users select * from users where user_id = 10")
    last = assert_gate_fails(loaded, "users.user_id is unique")
    assert "user_id=10, copies=2" in last


def test_a_duplicated_play_fails_the_uniqueness_check(loaded):
    execute(loaded, "insert into songplays select * from songplays where item_in_session = 0")
    last = assert_gate_fails(loaded, "songplays.songplay_id is unique")
    assert "copies=2" in last


def test_a_summary_that_disagrees_with_the_facts_fails_the_full_checks(loaded):
    execute(loaded, "update plays_by_song set plays = plays + 1")
    last = assert_gate_fails(loaded, "summaries add up to the facts")
    assert "summary='plays_by_song'" in last


def test_an_orphan_play_fails_the_reference_check(loaded):
    execute(loaded, "insert into songplays (songplay_id, start_time, user_id, level, batch_id, object_id) "
                    "values (md5('orphan'), timestamp '2018-11-05 10:00', 999, 'free', 1, 1)")
    last = assert_gate_fails(loaded, "songplays.user_id exists in users", "songplays.start_time exists in time")
    assert "user_id=999" in last


def test_an_unknown_level_fails_the_accepted_values_check(loaded):
    execute(loaded, "update users set level = 'gold'")
    last = assert_gate_fails(loaded, "users.level is free or paid")
    assert "level='gold'" in last


def test_an_orphan_level_stretch_fails_the_reference_check(loaded):
    execute(loaded, "insert into user_levels (user_id, level, valid_from, batch_id) "
                    "values (999, 'free', timestamp '2018-11-05', 1)")
    last = assert_gate_fails(loaded, "user_levels.user_id exists in users")
    assert "user_id=999" in last


def test_a_matched_song_missing_from_songs_fails(loaded):
    execute(loaded, "update songplays set song_id = 'SONOPE' where item_in_session = 0")
    assert_gate_fails(loaded, "songplays.song_id exists in songs")


def test_checks_cover_the_key_of_every_table_under_distinct_names():
    names = [name for name, _ in qc.quality_checks]
    assert len(names) == len(set(names))
    for table in ("songplays", "users", "songs", "artists", "time"):
        assert any(name.startswith(f"{table}.") and "unique" in name for name in names)
        assert any(name.startswith(f"{table}.") and "not null" in name for name in names)


def test_every_key_redshift_declares_is_checked_by_the_gate():
    """Redshift's planner assumes its declared keys hold and never checks them: the gate must."""
    for batch in (False, True):
        names = {name for name, _ in (qc.batch_quality_checks if batch else qc.quality_checks)}
        for table, keys in q.INFORMATIONAL_KEYS.items():
            for key in keys:
                primary = re.fullmatch(r"primary key \((\w+)\)", key)
                foreign = re.fullmatch(r"foreign key \((\w+)\) references (\w+) \(\w+\)", key)
                expected = (f"{table}.{primary[1]} is unique" if primary
                            else f"{table}.{foreign[1]} exists in {foreign[2]}")
                assert expected in names, (batch, key)


def test_full_checks_with_nothing_new_check_the_warehouse_as_it_is(warehouse, capsys):
    # The nightly use: `etl.py --full-checks` when no file is new still runs the whole gate.
    import create_tables
    import etl

    root = warehouse.config.parent
    write_events(root, "2018-11-01-events.json", [event(item=i, ts=BASE_TS + i) for i in range(3)])
    write_song(root, song())
    config = ["--config", str(warehouse.config), "-q"]
    assert create_tables.main(config) == 0 and etl.main(config) == 0
    capsys.readouterr()

    assert etl.main([*config, "--full-checks"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Nothing new to load: all 2 source files are loaded already")
    assert (f"quality gate: all {len(qc.quality_checks)} checks passed "
            "(on every row of the warehouse as it is)") in out

    execute(warehouse, "update users set level = 'gold' where user_id = 10")
    assert etl.main(config) == 0  # without --full-checks nothing is checked: nothing was loaded
    capsys.readouterr()
    assert etl.main([*config, "--full-checks"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.strip().splitlines()
    assert line.startswith(f"Error: quality gate: 2 of {len(qc.quality_checks)} checks failed on the warehouse "
                           "as it is (nothing new to load): ")
    assert "users.level is free or paid FAILED (e.g. " in line and "level='gold'" in line
    assert warehouse.count("etl_batches") == 1  # checking alone records no batch
