"""The Redshift path, proved without a cluster: every statement parses as Redshift SQL, the
whole script is pinned by a reviewed golden file, nothing AWS lists as unsupported is used,
and the dry run shows no secret.

To accept a deliberate change of the script: SPARKIFY_UPDATE_GOLDEN=1 pytest tests/test_redshift_sql.py
rewrites tests/golden/redshift.sql and fails, showing the change; review its diff, commit it, and
the next run passes.
"""

from __future__ import annotations

import difflib
import io
import os
import re
from datetime import datetime

import pytest
import sqlglot
from conftest import DATA, ROOT, run_main, run_script, write_config
from redshift_rules import script_violations, violations

import insight_queries as iq
import sql_queries as q

GOLDEN_SCRIPT = ROOT / "tests" / "golden" / "redshift.sql"
# The analysts' sample queries, one statement per file, run as they are on either engine.
ANALYSES_SQL = sorted((ROOT / "analyses").glob("*.sql"))
# The Redshift configuration the golden script is made with. Nothing in it is real; it is
# written at test time so that no tracked config file ever holds a password, even a fake one.
GOLDEN_CONFIG_TEXT = """\
[CLUSTER]
HOST = sparkify-dwh.c0ffee123abc.us-west-2.redshift.amazonaws.com
DB_NAME = sparkify
DB_USER = sparkify_etl
DB_PASSWORD = Golden-Pa55word-not-real
DB_PORT = 5439

[IAM_ROLE]
ARN = arn:aws:iam::123456789012:role/sparkify-golden-s3-read

[S3]
LOG_DATA = s3://udacity-dend/log_data
LOG_JSONPATH = s3://udacity-dend/log_json_path.json
SONG_DATA = s3://udacity-dend/song_data
REGION = us-west-2
MANIFEST_PREFIX = s3://sparkify-etl-work/manifests

[ETL]
MAXERROR = 100
"""
# A Redshift Serverless workgroup's endpoint instead of the cluster's (AWS: connecting to
# Redshift Serverless, workgroup.account.region.redshift-serverless.amazonaws.com).
GOLDEN_HOST = "sparkify-dwh.c0ffee123abc.us-west-2.redshift.amazonaws.com"
SERVERLESS_HOST = "sparkify.000011112222.us-west-2.redshift-serverless.amazonaws.com"
SECRETS = ("Golden-Pa55word-not-real", "arn:aws:iam::123456789012:role/sparkify-golden-s3-read", "123456789012")
# Statements sqlglot reads as an opaque command rather than a parsed tree; each is plain Redshift
# (AWS, Redshift developer guide: LOCK; CREATE ROLE and GRANT … TO ROLE, role-based access control;
# RESET, which restores a parameter such as statement_timeout to its default).
COMMANDS = ("lock table ", "create role ", "grant ", "reset ")


def redshift_script(folder, host: str = GOLDEN_HOST) -> str:
    config = folder / "redshift.cfg"
    config.write_text(GOLDEN_CONFIG_TEXT.replace(GOLDEN_HOST, host))
    parts = []
    for script, args in (("create_tables.py", ()), ("etl.py", ()), ("etl.py", ("--rebuild",)),
                         ("etl.py", ("--status",))):
        result = run_main(script, "--dry-run", "--config", str(config), *args)
        assert result.stderr == ""
        parts.append(f"-- ===== python {script} {' '.join(args)}--dry-run\n{result.stdout}")
    return "\n".join(parts)


def statements(script: str) -> list[str]:
    bodies = []
    for chunk in re.split(r";\n", script):
        body = "\n".join(line for line in chunk.splitlines() if not line.startswith("--")).strip()
        if body and body != "commit":
            bodies.append(body)
    return bodies


def sessions(script: str) -> list[list[str]]:
    """The statements of each run in the script (each script is one session of its own)."""
    return [statements(part) for part in re.split(r"^(?=-- ===== )", script, flags=re.M) if part]


@pytest.fixture(scope="module")
def script(tmp_path_factory) -> str:
    return redshift_script(tmp_path_factory.mktemp("golden"))


def test_the_script_matches_the_reviewed_golden_file(script):
    reviewed = GOLDEN_SCRIPT.read_text()
    if os.environ.get("SPARKIFY_UPDATE_GOLDEN") and script != reviewed:
        # Rewritten, not reviewed: this run has compared nothing, so it must not pass.
        GOLDEN_SCRIPT.write_text(script)
        diff = "".join(difflib.unified_diff(reviewed.splitlines(keepends=True), script.splitlines(keepends=True),
                                            "reviewed", "rewritten"))
        pytest.fail(f"the Redshift script changed and {GOLDEN_SCRIPT.relative_to(ROOT)} is rewritten: review "
                    f"this diff (git diff), commit it, and run again\n{diff}")
    assert script == reviewed, "the Redshift script changed: review it, then update the golden file"


def test_every_statement_parses_as_redshift_sql(script):
    parsed = 0
    for body in statements(script):
        tree = sqlglot.parse_one(body, read="redshift", error_level=sqlglot.ErrorLevel.RAISE)
        if isinstance(tree, sqlglot.exp.Command):
            assert body.lower().startswith(COMMANDS), f"not parsed: {body[:80]}"
        parsed += 1
    assert parsed > 60


def test_the_script_uses_nothing_redshift_does_not_support(script):
    problems = {body[:70]: violations(body) for body in statements(script)}
    assert {k: v for k, v in problems.items() if v} == {}


def test_every_lock_waits_a_bounded_time(script):
    runs = sessions(script)
    assert sum(1 for run in runs for body in run if body.startswith("lock table")) >= 2
    for run in runs:
        assert script_violations(run) == []


def test_copy_reads_s3_with_the_options_that_keep_real_data_loading(script):
    copies = [b for b in statements(script) if b.startswith("copy ")]
    assert len(copies) == 4  # both staging tables, for a batch and for a rebuild
    for copy in copies:
        for option in ("iam_role '***'", "format as json", "manifest region 'us-west-2'", "maxerror 100",
                       "acceptinvchars", "blanksasnull", "emptyasnull", "compupdate off statupdate off"):
            assert option in copy, (option, copy)
    assert "format as json 's3://udacity-dend/log_json_path.json'" in copies[0]
    assert "format as json 'auto'" in copies[1]
    for view in ("sys_load_error_detail", "sys_copy_replacements", "sys_load_detail"):
        assert f"from {view}\nwhere query_id = pg_last_copy_id()" in script, view


def test_redshift_serverless_gets_the_same_script_as_a_provisioned_cluster(script, tmp_path):
    """Serverless has none of the STL tables: the load reads the SYS monitoring views on both,
    so its script is the golden one, on its own endpoint."""
    serverless = redshift_script(tmp_path, host=SERVERLESS_HOST)
    assert "redshift://sparkify_etl:***@" + SERVERLESS_HOST in serverless
    assert serverless == script.replace(GOLDEN_HOST, SERVERLESS_HOST)
    for run in sessions(serverless):
        assert script_violations(run) == []


def test_the_physical_design_is_redshift_s(script):
    assert "diststyle key distkey (user_id) compound sortkey (start_time)" in script
    # The batch's tables joined to the facts are distributed like them (CTAS inherits no key).
    for table in ("batch_events", "batch_replaced", "batch_replaced_plays", "batch_plays", "batch_level_users",
                  "batch_level_events"):
        assert script.count(f"create temp table {table} diststyle key distkey (user_id) as\n") == 2, table
    assert "   and existing.user_id = e.user_id\n" in script
    assert script.count("diststyle all") >= 6
    assert "unlogged" not in script and "truncate" not in script


def test_redshift_is_left_to_analyze_the_tables_create_table_as_makes(script, tmp_path):
    """Redshift analyzes a CTAS table itself (AWS: CTAS usage notes); PostgreSQL does not."""
    assert "batch_plays" in q.CREATED_BY_CTAS and "batch_plays" in [step.analyze for step in q.transform_steps]
    assert "analyze batch_" not in script and "analyze songplays;" in script
    config = write_config(tmp_path / "postgres.cfg", host="localhost", log_data=str(DATA / "log_data"),
                          song_data=str(DATA / "song_data"))
    postgres = run_script("etl.py", "--dry-run", "--config", str(config)).stdout
    assert "analyze batch_plays;" in postgres and "analyze batch_artists;" in postgres


def test_the_dry_run_shows_no_secret(script):
    for secret in SECRETS:
        assert secret not in script


def test_every_transform_check_insight_and_sample_query_is_redshift_sql_on_both_engines():
    """The logical statements are one text for both engines: checking them here covers PostgreSQL too."""
    texts = [q.render(step.sql, "redshift") for step in q.transform_steps]
    texts += [statement for _, statement in q.quality_checks]
    texts += [statement for _, statement in q.batch_quality_checks]
    # The report's queries as written (everything) and as run for a period (for_period raises
    # for one that does not hold the period's bounds), the analyses files among them.
    texts += [statement for _, _, statement in iq.QUERIES]
    texts += [statement for _, _, statement in iq.statements(datetime(2018, 11, 10), datetime(2018, 11, 21))]
    texts += [step.sql % (1,) for step in q.rollup_inserts]
    texts += [q.time_rows_added_insert % (1, 1), q.render(q.matched_plays_added_insert, "redshift") % (1, 0)]
    texts += [q.text_repair_candidates, q.render(q.batch_plays_recovered, "redshift"), q.songplays_matched]
    texts += q.batch_tables_drop
    assert ANALYSES_SQL
    texts += [path.read_text(encoding="utf-8") for path in ANALYSES_SQL]
    for text in texts:
        assert violations(text) == [], text[:80]
        sqlglot.parse_one(text, read="redshift", error_level=sqlglot.ErrorLevel.RAISE)


def test_the_checker_accepts_an_epoch_of_whole_seconds():
    assert violations("select extract(epoch from date_trunc('second', max(t))) - "
                      "extract(epoch from date_trunc('week', min(t))) from x") == []


@pytest.mark.parametrize("bad, reason", [
    ("insert into users select * from batch_users on conflict (user_id) do nothing", "ON CONFLICT"),
    ("select distinct on (user_id) user_id, level from staging_events", "DISTINCT ON"),
    ("create table t (id serial primary key)", "type SERIAL"),
    ("delete from users where user_id = 1 returning user_id", "RETURNING"),
    ("select string_agg(level, ',') from users", "function string_agg()"),
    ("select * from generate_series(1, 10)", "function generate_series()"),
    ("select payload->>'artist' from raw_events", "JSON and array operators"),
    ("create table t (payload jsonb)", "type JSONB"),
    ("create index on songplays (start_time)", "indexes"),
    ("select a from t where a is distinct from b", "IS DISTINCT FROM"),
    ("select * from (values (1), (2)) as v(x)", "VALUES lists used as constant tables"),
    ("create unlogged table s (a int)", "UNLOGGED tables (PostgreSQL only)"),
    ("truncate table staging_events", "TRUNCATE"),
    ("select count(*) filter (where level = 'paid') from users", "aggregate FILTER"),
    ("select array[1, 2]", "array constructors"),
    ("select row_number() over (order by ts nulls last) from t", "NULLS clause in window functions"),
    # What the insights report's engagement query once did (a production failure on Redshift).
    ("select level, count(distinct user_id) as users, percentile_cont(0.5) within group (order by minutes) "
     "from sessions group by level", "PERCENTILE_CONT, MEDIAN or LISTAGG in a SELECT with a DISTINCT aggregate"),
    ("select median(minutes), count(distinct session_id) from sessions", "PERCENTILE_CONT, MEDIAN or LISTAGG"),
    ("select listagg(level, ',') within group (order by level), count(distinct user_id) from users",
     "PERCENTILE_CONT, MEDIAN or LISTAGG"),
    # MAXERROR past Redshift's limit (the config refuses it; the checker would catch a hard-coded one).
    ("copy staging_events from 's3://b/log' iam_role '***' format as json 'auto' maxerror 100001",
     "MAXERROR above 100,000"),
    # A script (statements separated by ';'), checked in order: a LOCK must not wait for ever.
    ("lock table etl_lock", "LOCK with no statement_timeout in effect"),
    ("set statement_timeout to 60000;\nreset statement_timeout;\nlock table etl_lock",
     "LOCK with no statement_timeout"),
    ("set statement_timeout to 0;\nlock table etl_lock", "LOCK with no statement_timeout"),
    # What the load read until it met Redshift Serverless.
    ("select trim(filename), lines_scanned from stl_load_commits where query = pg_last_copy_id()",
     "system views of provisioned clusters only"),
    ("select * from svl_statementtext", "system views of provisioned clusters only"),
    # A session's length in minutes, as the report once computed it: the fraction differs.
    ("select (extract(epoch from max(last_at)) - extract(epoch from min(first_at))) / 60.0 from s",
     "EXTRACT(epoch ...) of a time not truncated"),
    ("select date_part('epoch', started_at) from s", "EXTRACT(epoch ...) of a time not truncated"),
    ("select extract(epoch from date_trunc('millisecond', t)) from s", "EXTRACT(epoch ...) of a time not"),
])
def test_the_checker_catches_what_redshift_rejects(bad, reason):
    found = script_violations(statements(bad + ";\n"))
    assert any(reason in reason_found for reason_found in found), found


# The SYS monitoring views the load reads after a COPY, as AWS documents their columns
# (SYS_LOAD_ERROR_DETAIL, SYS_COPY_REPLACEMENTS, SYS_LOAD_DETAIL), stood in for on
# PostgreSQL with pg_last_copy_id() and pg_last_copy_count(): the queries and the books
# kept from them run on a real engine, if not on Redshift.
SYS_VIEW_STAND_INS = """
create table sys_load_error_detail (query_id bigint, session_id integer, file_name character(256),
    line_number bigint, column_name character(127), error_message character(512));
create table sys_copy_replacements (query_id bigint, file_name character(256), line_number bigint,
    column_name character(127), raw_line character(1024));
create table sys_load_detail (query_id integer, file_name character(256), lines_scanned integer);
create function pg_last_copy_id() returns integer language sql as 'select 42';
create function pg_last_copy_count() returns bigint language sql as 'select cast(6 as bigint)';
insert into sys_load_error_detail values
    (42, 0, 's3://b/log/a.json', 3, 'ts', 'Invalid digit, Value ''x'''),
    (41, 0, 's3://b/log/old.json', 1, '', 'from an earlier COPY');
insert into sys_copy_replacements values (42, 's3://b/log/b.json', 2, 'artist', '{"artist": "Bj?rk"}'),
    (40, 's3://b/log/b.json', 9, 'song', 'an earlier COPY');
insert into sys_load_detail values (42, 's3://b/log/a.json', 3), (42, 's3://b/log/a.json', 2),
    (42, 's3://b/log/b.json', 2), (41, 's3://b/log/a.json', 99);
"""


def test_the_books_of_a_copy_come_from_the_sys_views_summed_over_splits(warehouse):
    from sparkify import jsoncopy, redshift
    from sparkify.config import load_config
    from sparkify.warehouse import connect

    warehouse.execute(SYS_VIEW_STAND_INS)
    with connect(load_config(warehouse.config)) as wh:
        result = jsoncopy.CopyResult("staging_events")
        redshift.read_books(wh, result)
        assert result.rows == 6
        # a.json was read in two splits of 3 and 2 lines, one of its records rejected.
        assert result.per_object == {"s3://b/log/a.json": (4, 1), "s3://b/log/b.json": (2, 0)}
        assert [(e.disposition, e.source, e.line_number, e.column, e.reason, e.raw_excerpt)
                for e in result.errors] == [
            ("rejected", "s3://b/log/a.json", 3, "ts", "ts: Invalid digit, Value 'x'", ""),
            ("replaced", "s3://b/log/b.json", 2, "artist", "invalid UTF-8 replaced with '?'",
             '{"artist": "Bj?rk"}')]
        # After a failed COPY: the rows of this session's latest COPY with errors.
        wh.execute("update sys_load_error_detail set session_id = pg_backend_pid() where query_id = 41")
        failed = redshift._load_errors(wh, "staging_events", q.redshift_failed_copy_errors)
        assert [(e.source, e.reason) for e in failed] == [("s3://b/log/old.json", "from an earlier COPY")]
        wh.rollback()


@pytest.mark.parametrize("good", [
    # The same figures in separate steps, as the engagement query now computes them.
    "with a as (select level, count(distinct user_id) as users from s group by level), "
    "b as (select level, percentile_cont(0.5) within group (order by minutes) as m from s group by level) "
    "select a.level, a.users, b.m from a join b on b.level = a.level",
    "select count(distinct u), (select median(m) from t2) from t",  # the median is another query's
    "select listagg(distinct level, ',') from users",  # LISTAGG's own DISTINCT is allowed
])
def test_the_checker_accepts_what_redshift_runs(good):
    assert violations(good) == []


def test_the_local_copy_fails_a_load_on_an_object_over_redshifts_4_mb():
    """AWS, Redshift Database Developer Guide, "COPY from JSON format": "The maximum size of a
    single JSON object or array, including braces or brackets, is 4 MB"; a larger one fails
    the COPY (not a rejection MAXERROR counts). The local COPY holds the same limit."""
    from sparkify import jsoncopy, loads

    assert jsoncopy.MAX_OBJECT_BYTES == 4 * 1024 * 1024
    big = '{"song_id": "SOBIG", "title": "' + "x" * (4 * 1024 * 1024) + '"}'
    copier = jsoncopy.JsonCopy("staging_songs", [("song_id", "character varying", 32, False),
                                                 ("title", "character varying", None, True)],
                               "auto", loads.CopyOptions(max_errors=100))
    obj = jsoncopy.SourceObject("mem://big.json", "big.json", len(big), "1", opener=lambda: io.BytesIO(big.encode()))
    with pytest.raises(loads.ObjectTooLarge, match="larger than 4 MB"):
        list(copier.rows([obj]))


def test_create_tables_grants_the_analysts_role_on_redshift(script):
    """The dry run shows what a run allowed to create roles sends: the role, then its reads
    (a dry run once showed the question alone, and the grants vanished from this script)."""
    create_tables = script.split("-- ===== python etl.py")[0]
    assert "create role sparkify_analyst;" in create_tables
    assert "grant usage on schema public to role sparkify_analyst;" in create_tables
    assert re.search(r"grant select on songplays, .*\bplays to role sparkify_analyst;", create_tables)
