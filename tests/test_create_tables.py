"""create_tables.py among people's work: it says what it drops, never trips over (or takes
along) an analyst's view, keeps everything with --if-missing (what `tasks.py run` uses), and
gives the analysts' read-only role its reads. Readers never hold up a load."""

from __future__ import annotations

import psycopg2
import pytest
from conftest import assert_one_line_error, event, song, write_events, write_song

import create_tables
import etl
import sql_queries as q
from sparkify.config import ConfigError, load_config


class Result:
    def __init__(self, code, captured):
        self.returncode, self.stdout, self.stderr = code, captured.out, captured.err


def run(main, warehouse, capsys, *args) -> Result:
    capsys.readouterr()
    code = main(["--config", str(warehouse.config), "-q", *args])
    return Result(code, capsys.readouterr())


@pytest.fixture
def loaded(warehouse, capsys):
    root = warehouse.config.parent
    write_song(root, song())
    write_events(root, "2018-11-01-events.json",
                 [event(item=0, page="Home"), event(item=1), event(item=2, song="Other", artist="Band")])
    assert run(create_tables.main, warehouse, capsys).returncode == 0
    assert run(etl.main, warehouse, capsys).returncode == 0
    return warehouse


def test_create_tables_says_what_it_drops(loaded, capsys):
    result = run(create_tables.main, loaded, capsys)
    assert result.returncode == 0, result.stderr
    assert "Dropped 1 loaded batch (songplays 2, app_events 3, users 1, songs 1, artists 1, time 1 rows)" \
        in result.stdout
    assert loaded.count("songplays") == 0


def test_an_analysts_view_stops_create_tables_before_anything_is_dropped(loaded, capsys):
    loaded.execute("create view my_top_songs as select song_title, count(*) as n from plays group by 1; "
                   "create view my_users as select * from users")
    result = run(create_tables.main, loaded, capsys)
    assert_one_line_error(result, "my_top_songs (reads plays)", "my_users (reads users)", "Nothing was dropped",
                          "drop view")
    assert loaded.count("songplays") == 2 and loaded.count("my_top_songs") == 2


def test_if_missing_keeps_the_data_and_creates_only_what_is_missing(loaded, capsys):
    loaded.execute("drop view plays; drop table etl_lock")  # as a warehouse of an older version
    result = run(create_tables.main, loaded, capsys, "--if-missing")
    assert result.returncode == 0, result.stderr
    assert f"Kept the {len(q.TABLES) - 1} tables" in result.stdout
    assert "Created the 1 missing: etl_lock" in result.stdout
    assert loaded.count("songplays") == 2 and loaded.count("plays") == 2 and loaded.count("etl_lock") == 1
    again = run(etl.main, loaded, capsys)
    assert again.returncode == 0 and "Nothing new to load" in again.stdout


def test_the_analysts_role_reads_the_star_schema_and_nothing_else(loaded):
    loaded.execute("drop role if exists test_analyst; create role test_analyst login in role sparkify_analyst")
    conn = psycopg2.connect(host=loaded.server.host, port=loaded.server.port, user="test_analyst",
                            dbname=loaded.dbname)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for relation in q.ANALYST_TABLES:
                cur.execute(f"select count(*) from {relation}")
            for statement in ("select * from staging_events", "select * from load_errors",
                              "select * from etl_lock", "insert into users (user_id, last_seen_at) values (1, now())",
                              "delete from songplays", "create table mine (x int)"):
                with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                    cur.execute(statement)
    finally:
        conn.close()
        loaded.execute("drop owned by test_analyst; drop role test_analyst")


def test_analyst_role_in_config_must_be_a_plain_name(tmp_path):
    from conftest import write_config

    config = write_config(tmp_path / "dwh.cfg", log_data=str(tmp_path), song_data=str(tmp_path),
                          log_jsonpath=str(tmp_path), extra="")
    text = config.read_text().replace("[IAM_ROLE]", "ANALYST_ROLE = x; drop table users\n\n[IAM_ROLE]")
    config.write_text(text)
    with pytest.raises(ConfigError, match="ANALYST_ROLE .* is not a plain name"):
        load_config(config)
    config.write_text(text.replace("x; drop table users", ""))
    assert load_config(config).analyst_role == ""


def test_a_reader_idle_in_a_transaction_never_holds_up_a_load(loaded, capsys):
    """The load lock is on etl_lock, which nobody reads: a reader's open transaction on
    songplays and etl_batches does not make the load wait, and sees the old state until it
    commits."""
    reader = loaded.server.connect(loaded.dbname)
    reader.set_session(isolation_level="REPEATABLE READ")
    with reader.cursor() as cur:
        cur.execute("select count(*) from songplays")
        cur.execute("select count(*) from etl_batches")
        assert cur.fetchone()[0] == 1
        write_events(loaded.config.parent, "2018-11-02-events.json", [event(item=5, ts=1541206106796)])
        result = run(etl.main, loaded, capsys)
        assert result.returncode == 0 and "ETL batch 2 published" in result.stdout
        cur.execute("select count(*) from etl_batches")
        assert cur.fetchone()[0] == 1
    reader.commit()
    with reader.cursor() as cur:
        cur.execute("select count(*) from etl_batches")
        assert cur.fetchone()[0] == 2
    reader.close()


def test_a_user_who_may_not_create_roles_gets_the_tables_and_one_line_for_an_administrator(warehouse, capsys):
    """The analysts' role never decides whether the tables are created: a least-privilege
    user's create_tables.py commits them and says, in one line, what an administrator runs;
    once the role exists (made by someone else) the same user's --if-missing grants it."""
    from conftest import write_config

    user, role = f"lp_etl_{warehouse.dbname[-12:]}", f"lp_readers_{warehouse.dbname[-12:]}"
    warehouse.execute(f"create role {user} login; create schema {user} authorization {user}")
    config = write_config(warehouse.config.parent / "least.cfg", host=warehouse.server.host,
                          port=warehouse.server.port, db_name=warehouse.dbname, user=user,
                          log_data=str(warehouse.config.parent / "log_data"),
                          song_data=str(warehouse.config.parent / "song_data"),
                          extra="").read_text().replace("[IAM_ROLE]", f"ANALYST_ROLE = {role}\n\n[IAM_ROLE]")
    path = warehouse.config.parent / "least.cfg"
    path.write_text(config)
    try:
        capsys.readouterr()
        assert create_tables.main(["--config", str(path), "-q"]) == 0
        out = capsys.readouterr().out
        line = next(text for text in out.splitlines() if text.startswith(f"Analysts' role {role} not granted"))
        assert f"it does not exist and {user} may not create roles" in line
        assert f"An administrator runs: create role {role}; then python create_tables.py --if-missing" in line
        assert f"in role {role}" in line  # the analyst's login, as PostgreSQL spells it
        assert warehouse.scalar("select count(*) from information_schema.tables where table_schema = %s",
                                (user,)) == len(q.TABLES) + len(q.VIEWS)
        warehouse.execute(f"create role {role}")  # what the administrator runs
        assert create_tables.main(["--config", str(path), "-q", "--if-missing"]) == 0
        assert f"Analysts' role {role}: SELECT on the star schema" in capsys.readouterr().out
        assert warehouse.scalar("select has_table_privilege(%s, %s, 'select')", (role, f"{user}.songplays"))
    finally:
        warehouse.execute(f"drop schema {user} cascade; drop owned by {role}; drop role if exists {role}; "
                          f"drop role {user}")
