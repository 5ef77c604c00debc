"""Opt-in: the whole pipeline and the insights report against real Redshift, reading the
public bucket, on a provisioned cluster and on a Redshift Serverless workgroup.

Each deployment runs only when its variables are set (it creates and drops the toolkit's
tables in that database):
  provisioned: SPARKIFY_REDSHIFT_HOST, SPARKIFY_REDSHIFT_DB, SPARKIFY_REDSHIFT_USER,
    SPARKIFY_REDSHIFT_PASSWORD, SPARKIFY_REDSHIFT_ROLE_ARN
  serverless: the same names with SERVERLESS_ after SPARKIFY_REDSHIFT_
    (SPARKIFY_REDSHIFT_SERVERLESS_HOST is the workgroup's endpoint,
    workgroup.account.region.redshift-serverless.amazonaws.com)
and optionally _PORT (5439) and _MANIFEST_PREFIX (an s3:// prefix the machine can write
and the role read) under either prefix. The machine running it needs AWS credentials that
can list s3://udacity-dend (any account can).
"""

from __future__ import annotations

import csv
import os
import re

import pytest
from conftest import run_script, write_config

import insight_queries as iq
import quality_checks as qc
import sql_queries as q

DEPLOYMENTS = {"provisioned": "SPARKIFY_REDSHIFT_", "serverless": "SPARKIFY_REDSHIFT_SERVERLESS_"}
REQUIRED = ("HOST", "DB", "USER", "PASSWORD", "ROLE_ARN")


def settings(deployment: str) -> dict[str, str]:
    """The deployment's variables, by name without the prefix; skips, naming what to set,
    when any is missing."""
    prefix = DEPLOYMENTS[deployment]
    missing = [prefix + name for name in REQUIRED if not os.environ.get(prefix + name)]
    if missing:
        pytest.skip(f"no Redshift {deployment} deployment configured (set {', '.join(missing)})")
    return {name: os.environ.get(prefix + name, "") for name in (*REQUIRED, "PORT", "MANIFEST_PREFIX")}


@pytest.fixture(scope="module", params=list(DEPLOYMENTS))
def loaded(request, tmp_path_factory):
    """create_tables.py and etl.py on the deployment, from the public bucket, once for its
    tests: the config, etl.py's result and the variables' values."""
    env = settings(request.param)
    tmp_path = tmp_path_factory.mktemp(request.param)
    if request.param == "serverless":
        assert env["HOST"].endswith(".redshift-serverless.amazonaws.com"), "not a Serverless workgroup's endpoint"
    manifest = env["MANIFEST_PREFIX"]
    config = write_config(
        tmp_path / "redshift.cfg", host=env["HOST"], port=int(env["PORT"] or 5439),
        db_name=env["DB"], user=env["USER"], password=env["PASSWORD"], arn=env["ROLE_ARN"],
        log_data="s3://udacity-dend/log_data", log_jsonpath="s3://udacity-dend/log_json_path.json",
        song_data="s3://udacity-dend/song_data",
        extra="REGION = us-west-2\n" + (f"MANIFEST_PREFIX = {manifest}\n" if manifest else ""))
    run_script("create_tables.py", "--config", str(config))
    result = run_script("etl.py", "--config", str(config), timeout=3600)
    return config, result, env


def test_the_real_bucket_loads_with_the_same_counts(loaded):
    config, result, env = loaded
    out = result.stdout
    assert re.search(r"songplays\s+6,820", out) and re.search(r"users\s+97\b", out)
    assert re.search(r"songs\s+14,896", out) and re.search(r"artists\s+9,553", out)
    assert re.search(r"time\s+6,813", out)
    assert "songplays matched to the catalog: 327 of 6,820" in out
    assert f"quality gate: all {len(qc.quality_checks)} checks passed (on every row)" in out
    again = run_script("etl.py", "--config", str(config))
    assert "Nothing new to load" in again.stdout
    for secret in (env["PASSWORD"], env["ROLE_ARN"]):
        assert secret not in out + result.stderr


def test_every_insights_query_runs_on_it(loaded, tmp_path):
    """The report's SQL is checked offline (tests/test_redshift_sql.py); this runs it."""
    config, _, env = loaded
    report = run_script("insights.py", "--config", str(config), "--output", str(tmp_path / "report"), timeout=1800)
    for name, _, _ in iq.QUERIES:
        with open(tmp_path / "report" / f"{name}.csv", encoding="utf-8") as handle:
            assert len(list(csv.reader(handle))) > 1, name  # a header and rows
    assert env["PASSWORD"] not in report.stdout + report.stderr


def _connect(config):
    from sparkify.config import load_config
    from sparkify.warehouse import connect

    return connect(load_config(config))


def test_every_loaded_files_count_comes_from_its_own_copys_books(loaded):
    """Item 5: the COPY's books are read by its query id from SYS_LOAD_HISTORY; if that join
    did not hold, the per-file counts would be zero (the run fails loudly instead)."""
    config, _, _ = loaded
    with _connect(config) as wh:
        files, counted, empty = wh.query(
            "select count(*), sum(row_count), sum(case when row_count = 0 then 1 else 0 end) from loaded_objects "
            "where table_name = 'staging_events'")[0]
        assert files == 30 and counted == 8056 and empty == 0
        assert wh.scalar("select count(*) from loaded_objects where table_name = 'staging_songs' "
                         "and row_count = 0") == 0


def test_a_copy_that_fails_whole_is_a_failed_batch_with_its_own_reason(loaded, tmp_path):
    """Item 3: a JSON object over 4 MB fails Redshift's COPY whole, with no row error: the
    batch is recorded as failed with that COPY's reason, never an earlier COPY's rejections.
    Needs a bucket of yours: the MANIFEST_PREFIX's."""
    config, _, env = loaded
    if not env["MANIFEST_PREFIX"]:
        pytest.skip("set SPARKIFY_REDSHIFT_MANIFEST_PREFIX (a bucket this machine can write) to put a 5 MB song there")
    from sparkify import sources
    from sparkify.config import load_config

    prefix = env["MANIFEST_PREFIX"].rstrip("/") + f"/test-big-{os.getpid()}"
    s3 = sources.S3(load_config(config))
    s3.write(f"{prefix}/TRBIG.json", ('{"song_id": "SOBIG", "title": "' + "x" * (5 << 20) + '"}').encode())
    big = tmp_path / "big.cfg"
    big.write_text(config.read_text().replace("SONG_DATA = s3://udacity-dend/song_data", f"SONG_DATA = {prefix}"))
    result = run_script("etl.py", "--config", str(big), check=False, timeout=1800)
    assert result.returncode == 1
    assert "Error: loading staging_songs failed on Redshift: copy staging_songs:" in result.stderr
    with _connect(config) as wh:
        outcome, message = wh.query("select outcome, message from etl_batches order by batch_id desc limit 1")[0]
        assert outcome == "failed" and "loading staging_songs failed on Redshift" in message


def test_create_tables_as_a_user_who_may_not_create_roles(loaded, tmp_path):
    """Item 2: the tables commit, and one line says what an administrator runs: on Redshift
    CREATE ROLE, then for each analyst CREATE USER and GRANT ROLE."""
    config, _, env = loaded
    user, role, password = f"sparkify_lp_{os.getpid()}", f"sparkify_lp_readers_{os.getpid()}", "Least-Priv-9x"
    with _connect(config) as admin:
        admin.conn.autocommit = True
        admin.execute(f"create user {user} password '{password}'")
        admin.execute(f"create schema {user} authorization {user}")
        admin.execute(f"alter user {user} set search_path to {user}")
    try:
        least = tmp_path / "least.cfg"
        text = config.read_text().replace(f"DB_USER = {env['USER']}", f"DB_USER = {user}")
        text = text.replace(f"DB_PASSWORD = {env['PASSWORD']}", f"DB_PASSWORD = {password}")
        least.write_text(text.replace("[IAM_ROLE]", f"ANALYST_ROLE = {role}\n\n[IAM_ROLE]"))
        result = run_script("create_tables.py", "--config", str(least))
        line = next(text for text in result.stdout.splitlines() if text.startswith(f"Analysts' role {role} not"))
        assert f"An administrator runs: create role {role};" in line and f"grant role {role} to ana" in line
        with _connect(config) as admin:
            assert admin.scalar("select count(*) from information_schema.tables where table_schema = %s",
                                (user,)) == len(q.TABLES) + len(q.VIEWS)
    finally:
        with _connect(config) as admin:
            admin.conn.autocommit = True
            admin.execute(f"drop schema if exists {user} cascade")
            admin.execute(f"drop user if exists {user}")


def test_a_dead_runs_session_holding_the_load_lock_is_found_in_svv_transactions(loaded):
    """Item 8: the holder is found through SVV_TRANSACTIONS (on Serverless too); a superuser,
    who sees SYS_CONNECTION_LOG, proves it is a dead run of this machine's and ends it."""
    import subprocess
    import sys

    from sparkify import loadlock
    from sparkify.warehouse import this_host

    config, _, env = loaded
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    import psycopg2

    holder = psycopg2.connect(host=env["HOST"], port=int(env["PORT"] or 5439), dbname=env["DB"], user=env["USER"],
                              password=env["PASSWORD"], application_name=f"sparkify-etl {this_host()} {dead}")
    try:
        with holder.cursor() as cur:
            cur.execute("lock table etl_lock")
            cur.execute("select pg_backend_pid()")
            backend = cur.fetchone()[0]
        with _connect(config) as wh:
            found = loadlock.holders(wh)
            assert [h.pid for h in found] == [backend]
            superuser = wh.scalar("select count(*) from pg_user where usename = current_user and usesuper")
            if superuser:
                assert found[0].application == f"sparkify-etl {this_host()} {dead}"
                assert loadlock.end_dead_holders(wh) == [backend]
            else:
                assert found[0].application is None  # not proven ours: named, never ended
                assert loadlock.end_dead_holders(wh) == []
    finally:
        holder.close()
