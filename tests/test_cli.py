"""The scripts as a user meets them: --help, and one-line errors that name the fix."""

from __future__ import annotations

import contextlib

import pytest
from conftest import (
    DATA,
    ROOT,
    assert_one_line_error,
    event,
    run_main,
    run_script,
    song,
    write_config,
    write_events,
    write_song,
)

SCRIPTS = ("create_tables.py", "etl.py")


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_explains_the_config(script):
    result = run_script(script, "--help")
    for words in ("--config", "[CLUSTER]", "HOST empty", "embedded PostgreSQL", "Redshift", "[S3]",
                  "[IAM_ROLE]", "MAXERROR", "example:"):
        assert words in result.stdout, words


def test_the_shipped_config_names_the_course_keys():
    text = (ROOT / "dwh.cfg").read_text()
    for key in ("[CLUSTER]", "HOST", "DB_NAME", "DB_USER", "DB_PASSWORD", "DB_PORT", "[IAM_ROLE]", "ARN",
                "[S3]", "LOG_DATA", "LOG_JSONPATH", "SONG_DATA"):
        assert key in text


@pytest.mark.parametrize("script", SCRIPTS)
def test_missing_config_file(script, tmp_path):
    result = run_script(script, "--config", str(tmp_path / "nope.cfg"), check=False)
    assert_one_line_error(result, "nope.cfg", "not found", "--config")


def test_missing_key_is_named(tmp_path):
    config = tmp_path / "dwh.cfg"
    config.write_text("[CLUSTER]\nHOST =\nDB_NAME = x\nDB_USER = u\nDB_PASSWORD =\nDB_PORT = 5432\n"
                      "[IAM_ROLE]\nARN =\n[S3]\nLOG_DATA = .\nSONG_DATA = .\n")
    result = run_script("etl.py", "--config", str(config), check=False)
    assert_one_line_error(result, "LOG_JSONPATH", "[S3]")


def test_unreadable_source_path_is_named(tmp_path):
    config = write_config(tmp_path / "dwh.cfg", log_data="no/such/folder")
    result = run_script("etl.py", "--config", str(config), check=False)
    assert_one_line_error(result, "LOG_DATA", "no/such/folder", "does not exist")


def test_bad_port_is_named(tmp_path):
    config = write_config(tmp_path / "dwh.cfg", host="localhost")
    config.write_text(config.read_text().replace("DB_PORT = 5432", "DB_PORT = fifty"))
    result = run_script("create_tables.py", "--config", str(config), check=False)
    assert_one_line_error(result, "DB_PORT", "fifty")


def test_maxerror_over_redshifts_limit_is_named(tmp_path):
    sources = {"log_data": str(DATA / "log_data"), "song_data": str(DATA / "song_data")}
    config = write_config(tmp_path / "dwh.cfg", max_errors=100_001, **sources)
    result = run_script("etl.py", "--config", str(config), check=False)
    assert_one_line_error(result, "[ETL] MAXERROR = 100001", "limit of 100,000")
    config = write_config(tmp_path / "dwh.cfg", max_errors=100_000, **sources)
    assert run_script("etl.py", "--dry-run", "--config", str(config), check=False).returncode == 0


def test_unreachable_server_is_named_and_the_password_never_shown(tmp_path, monkeypatch):
    from sparkify import pipeline

    monkeypatch.setattr(pipeline, "BACKOFF_S", 0.05)  # etl.py retries a refused connection: quickly here
    (tmp_path / "log_data").mkdir()
    (tmp_path / "song_data").mkdir()
    secret = "s3cr3t-Pa55word"
    config = write_config(tmp_path / "dwh.cfg", host="127.0.0.1", port=9, password=secret)
    for script in SCRIPTS:
        result = run_main(script, "--config", str(config), check=False)
        assert_one_line_error(result, "127.0.0.1:9", "[CLUSTER] HOST and DB_PORT", progress_allowed=True)
        assert secret not in result.stderr + result.stdout


@contextlib.contextmanager
def password_role(server, role: str, password: str):
    """A role on the tests' own server that must log in with its password (scram-sha-256),
    owning a database of its own name."""
    if server.data_dir is None:
        pytest.skip("needs the tests' own server, to make it check passwords")
    admin = server.connect()
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"drop database if exists {role} with (force)")
        cur.execute(f"drop role if exists {role}")
        cur.execute(f"create role {role} login password '{password}'")
        cur.execute(f"create database {role} owner {role}")
    hba = server.data_dir / "pg_hba.conf"
    original = hba.read_text()
    hba.write_text(f"local all {role} scram-sha-256\n" + original)
    with admin.cursor() as cur:
        cur.execute("select pg_reload_conf()")
    try:
        yield
    finally:
        hba.write_text(original)
        with admin.cursor() as cur:
            cur.execute("select pg_reload_conf()")
            cur.execute(f"drop database if exists {role} with (force)")
        admin.close()


def test_wrong_password_is_named_and_never_shown(server, tmp_path):
    (tmp_path / "log_data").mkdir()
    (tmp_path / "song_data").mkdir()
    secret = "wrong-Pa55word"
    with password_role(server, "sparkify_pw_user", "the-right-one"):
        config = write_config(tmp_path / "dwh.cfg", host=server.host, port=server.port,
                              db_name="sparkify_pw_user", user="sparkify_pw_user", password=secret)
        result = run_script("create_tables.py", "--config", str(config), check=False)
    assert_one_line_error(result, "refused user sparkify_pw_user", "DB_USER and DB_PASSWORD")
    assert secret not in result.stderr


def test_etl_before_create_tables_says_what_to_run(warehouse):
    result = run_script("etl.py", "--config", str(warehouse.config), check=False)
    assert_one_line_error(result, "create_tables.py")


def test_a_password_never_appears_in_a_successful_run(server, tmp_path):
    """The full job with a password-protected role: nothing printed holds the password."""
    secret = "Right-Pa55word-xyz"
    write_events(tmp_path, "2018-11-01-events.json", [event()])
    write_song(tmp_path, song())
    with password_role(server, "sparkify_pw_owner", secret):
        config = write_config(tmp_path / "dwh.cfg", host=server.host, port=server.port,
                              db_name="sparkify_pw_owner", user="sparkify_pw_owner", password=secret)
        outputs = [run_script(script, "--config", str(config)) for script in SCRIPTS]
    for result in outputs:
        assert secret not in result.stdout + result.stderr
    assert "ETL batch 1 published" in outputs[1].stdout
    assert ":***@" in outputs[0].stdout
