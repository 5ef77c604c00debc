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
from redshift_rules import (
    declared_key_reliance,
    declared_keys,
    distributed_on,
    missing_distkey_predicates,
    script_violations,
    violations,
)
from sqlglot import exp

import insight_queries as iq
import quality_checks as qc
import sql_queries as q
from sparkify.dialects import POSTGRES, REDSHIFT

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


def test_every_lock_first_looks_for_its_holders_where_serverless_shows_them(script):
    """A dead run's session on Redshift is found through SVV_TRANSACTIONS (both deployments,
    every user its own sessions), never STV_LOCKS (provisioned, superusers): each LOCK is
    preceded by that question, and the hints name no provisioned-only view."""
    for run in sessions(script):
        for index, body in enumerate(run):
            if body.startswith("lock table etl_lock"):
                asked = [b for b in run[:index] if "from svv_transactions t" in b]
                assert asked and "sys_connection_log" in asked[-1], run[:index][-3:]


def test_copy_reads_s3_with_the_options_that_keep_real_data_loading(script):
    copies = [b for b in statements(script) if b.startswith("copy ")]
    assert len(copies) == 4  # both staging tables, for a batch and for a rebuild
    for copy in copies:
        for option in ("iam_role '***'", "format as json", "manifest region 'us-west-2'", "maxerror 100",
                       "acceptinvchars", "blanksasnull", "emptyasnull", "compupdate off statupdate off"):
            assert option in copy, (option, copy)
    assert "format as json 's3://udacity-dend/log_json_path.json'" in copies[0]
    assert "format as json 'auto'" in copies[1]
    # Each COPY's books are read by its own query id, from SYS_LOAD_HISTORY by session and table.
    assert script.count("from sys_load_history\nwhere session_id = pg_backend_pid() and trim(table_name) = ") == 4
    for view in ("sys_load_error_detail", "sys_copy_replacements", "sys_load_detail"):
        assert f"from {view}\nwhere query_id = :query_id" in script, view
    assert "pg_last_copy_id" not in script


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
    for table in ("batch_level_users", "batch_open_stretches"):
        assert script.count(f"create temp table {table} diststyle key distkey (user_id) as\n") == 2, table
    assert script.count(" and existing.user_id = e.user_id\n") == 4  # app_events and songplays, in two runs
    assert script.count("diststyle all") >= 6
    assert "unlogged" not in script and "truncate" not in script


def test_the_tables_a_batch_writes_are_analyzed_and_its_small_working_tables_are_not(script, tmp_path):
    """The facts and dimensions get fresh statistics on both engines (Redshift skips an ANALYZE
    of little change itself, PostgreSQL asks first); the batch's temporary tables are small."""
    config = write_config(tmp_path / "postgres.cfg", host="localhost", log_data=str(DATA / "log_data"),
                          song_data=str(DATA / "song_data"))
    postgres = run_script("etl.py", "--dry-run", "--config", str(config)).stdout
    for text in (script, postgres):
        assert "analyze batch_" not in text and "analyze songplays;" in text and "analyze app_events;" in text


def test_the_dry_run_shows_no_secret(script):
    for secret in SECRETS:
        assert secret not in script


def test_every_transform_check_insight_and_sample_query_is_redshift_sql_on_both_engines():
    """The logical statements are one text for both engines: checking them here covers PostgreSQL too."""
    values = {"batch_id": 1, "changed_objects": "(1, 2)", "times": 0, "late_matches": 0}
    texts = [statement % values for step in [*q.transform_steps, *q.totals_steps]
             for statement in (REDSHIFT.analyze(list(step.analyze)) if step.analyze else [REDSHIFT.render(step.sql)])]
    texts += [statement for _, statement in qc.quality_checks]
    texts += [statement % values for _, statement in qc.batch_quality_checks]
    # The report's queries as written (everything) and as run for a period (for_period raises
    # for one that does not hold the period's bounds), the analyses files among them.
    texts += [statement for _, _, statement in iq.QUERIES]
    texts += [statement for _, _, statement in iq.statements(datetime(2018, 11, 10), datetime(2018, 11, 21))]
    texts += [q.text_repair_candidates, REDSHIFT.render(q.batch_plays_recovered_by_repair) % values,
              q.songplays_matched]
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
    ("analyze plays_by_hour, plays_by_song", "ANALYZE of more than one table"),
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
    # Untyped literals in a set operation's branches (the rollups check and two report queries did this).
    ("select 'plays_by_user_day' as summary, 1 union all select 'plays_by_hour', 2", "an untyped literal"),
    ("select user_id, null as level from a union all select user_id, level from b", "an untyped literal"),
    # The load's latest valid time, as it was computed from the run's clock until 2038 came into view.
    ("select count(*) from staging_events where ts > cast(extract(epoch from date_trunc('second', "
     "cast(:timestamp as timestamp))) as bigint) * 1000", "EXTRACT(epoch ...) in a load statement"),
])
def test_the_checker_catches_what_redshift_rejects(bad, reason):
    found = script_violations(statements(bad + ";\n"))
    assert any(reason in reason_found for reason_found in found), found


# The SYS monitoring views the load reads after a COPY, as AWS documents their columns
# (SYS_LOAD_HISTORY, SYS_LOAD_ERROR_DETAIL, SYS_COPY_REPLACEMENTS, SYS_LOAD_DETAIL), stood
# in for on PostgreSQL with pg_last_copy_count(): the queries and the books kept from them
# run on a real engine, if not on Redshift. {session}: this session's pid. Query 40 is
# another session's COPY, 41 an earlier one of this session, 42 the one just run.
LONG_URL = "s3://b/log/" + "d" * 300 + ".json"  # longer than file_name's 256 characters
SYS_VIEW_STAND_INS = """
create table sys_load_history (query_id bigint, session_id integer, table_name character(128),
    status character(10), error_count bigint);
create table sys_load_error_detail (query_id bigint, session_id integer, file_name character(256),
    line_number bigint, column_name character(127), error_message character(512));
create table sys_copy_replacements (query_id bigint, file_name character(256), line_number bigint,
    column_name character(127), raw_line character(1024));
create table sys_load_detail (query_id integer, file_name character(256), lines_scanned integer);
create function pg_last_copy_count() returns bigint language sql as 'select cast(6 as bigint)';
insert into sys_load_history values (40, 0, 'staging_events', 'completed', 0),
    (41, {session}, 'staging_events', 'aborted', 1), (42, {session}, 'staging_events', 'completed', 1);
insert into sys_load_error_detail values
    (42, {session}, 's3://b/log/a.json', 3, 'ts', 'Invalid digit, Value ''x'''),
    (41, {session}, 's3://b/log/old.json', 1, '', 'from an earlier COPY');
insert into sys_copy_replacements values (42, 's3://b/log/b.json', 2, 'artist', '{{"artist": "Bj?rk"}}'),
    (40, 's3://b/log/b.json', 9, 'song', 'an earlier COPY');
insert into sys_load_detail values (42, 's3://b/log/a.json', 3), (42, 's3://b/log/a.json', 2),
    (42, '{long}', 1), (41, 's3://b/log/a.json', 99);
"""


@pytest.fixture
def sys_views(warehouse):
    """A connection whose session the stand-in views' rows belong to."""
    from sparkify.config import load_config
    from sparkify.warehouse import connect

    with connect(load_config(warehouse.config)) as wh:
        wh.execute(SYS_VIEW_STAND_INS.format(session=wh.backend_pid, long=LONG_URL[:256]))
        wh.commit()
        yield wh


def test_the_books_of_a_copy_are_its_own_by_its_query_id_from_sys_load_history(sys_views):
    from sparkify import jsoncopy, redshift

    result = jsoncopy.CopyResult("staging_events")
    redshift.read_books(sys_views, result, ["s3://b/log/a.json", LONG_URL])
    assert result.rows == 6
    # a.json was read in two splits of 3 and 2 lines, one of its records rejected; the long
    # URL, logged cut to 256 characters, is counted under its own name.
    assert result.per_object == {"s3://b/log/a.json": (4, 1), LONG_URL: (1, 0)}
    assert [(e.disposition, e.source, e.line_number, e.column, e.reason, e.raw_excerpt)
            for e in result.errors] == [
        ("rejected", "s3://b/log/a.json", 3, "ts", "ts: Invalid digit, Value 'x'", ""),
        ("replaced", "s3://b/log/b.json", 2, "artist", "invalid UTF-8 replaced with '?'", '{"artist": "Bj?rk"}')]


def test_a_copy_that_failed_whole_is_a_failed_load_with_its_reason_not_an_earlier_copys_errors(sys_views):
    """A COPY that fails whole (a JSON object over 4 MB logs no row error) once reported the
    session's newest COPY with errors, another table's, even as "too many errors"."""
    from sparkify import loads, redshift
    from sparkify.warehouse import WarehouseError

    sys_views.execute("insert into sys_load_history values (43, %s, 'staging_songs', 'aborted', 0)",
                      (sys_views.backend_pid,))
    failed = redshift.failed_copy(sys_views, "staging_songs", loads.CopyOptions(max_errors=1),
                                  WarehouseError("copy staging_songs: Load into table 'staging_songs' failed"))
    assert type(failed) is loads.LoadFailed and failed.errors == []
    assert "loading staging_songs failed on Redshift: copy staging_songs: Load into table" in str(failed)
    sys_views.rollback()


def test_a_copy_that_fails_on_the_engine_is_a_failed_load_with_its_reason(sys_views):
    """Whatever fails a COPY (here PostgreSQL's refusal of Redshift's COPY syntax) fails the
    load with its reason, which the batch records as failed, instead of escaping raw."""
    from sparkify import loads, pipeline, redshift
    from sparkify.sources import SourceObject

    config = sys_views.config
    sys_views.execute(POSTGRES.render(q.staging_songs_table_create))  # the table whose columns COPY names
    item = pipeline.Pending("staging_songs", config.song_data, "auto",
                            [SourceObject("s3://b/song/a.json", "a.json", 10, "1")])
    with pytest.raises(loads.LoadFailed, match="loading staging_songs failed on Redshift: copy staging_songs: "):
        redshift.stage(sys_views, config, [item], loads.CopyOptions(), 1, lambda url, body: None,
                       lambda url, first_bytes: b"")


def test_books_that_do_not_add_up_fail_loudly_instead_of_reporting_zero(sys_views):
    from sparkify import jsoncopy, redshift

    sys_views.execute("delete from sys_load_detail; delete from sys_load_error_detail")
    with pytest.raises(redshift.CopyBooksMissing) as missing:
        redshift.read_books(sys_views, jsoncopy.CopyResult("staging_events"))
    assert "COPY loaded 6 rows but SYS_LOAD_DETAIL lists no file of query 42" in str(missing.value)
    assert "SYS_LOAD_HISTORY counts 1 errors of query 42 but SYS_LOAD_ERROR_DETAIL lists 0" in str(missing.value)
    sys_views.execute("delete from sys_load_history")
    with pytest.raises(redshift.CopyBooksMissing, match="SYS_LOAD_HISTORY has no COPY of this session"):
        redshift.read_books(sys_views, jsoncopy.CopyResult("staging_events"))
    sys_views.rollback()


@pytest.mark.parametrize("good", [
    # The same figures in separate steps, as the engagement query now computes them.
    "with a as (select level, count(distinct user_id) as users from s group by level), "
    "b as (select level, percentile_cont(0.5) within group (order by minutes) as m from s group by level) "
    "select a.level, a.users, b.m from a join b on b.level = a.level",
    "select count(distinct u), (select median(m) from t2) from t",  # the median is another query's
    "select listagg(distinct level, ',') from users",  # LISTAGG's own DISTINCT is allowed
    # The first branch's cast types the column; the later branches' literals follow it.
    "select cast('plays' as varchar(32)) as summary, 1 as n union all select 'events', 2",
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
    # The tables commit before the role is touched: a CREATE ROLE the user may not run (it
    # needs a superuser or the CREATE ROLE privilege, AWS: CREATE ROLE) never rolls them back.
    tables, role = create_tables.split("create role sparkify_analyst;")
    assert "create table if not exists songplays (" in tables.split("commit;")[0]
    # Whether the user may create roles is asked for real, never assumed (once "select 1").
    assert "from pg_user where usename = current_user and usesuper" in tables
    assert "from svv_system_privileges where system_privilege = 'CREATE ROLE'" in tables
    assert "grant usage on schema public to role sparkify_analyst;" in create_tables
    assert re.search(r"grant select on songplays, .*\bplays, load_summary, load_error_reasons, schema_changes, "
                     r"source_files to role sparkify_analyst;", create_tables)


REDSHIFT_KEYS = declared_keys([REDSHIFT.render(statement) for statement in q.create_table_queries])


def test_no_check_or_analysts_view_may_be_answered_from_a_declared_key():
    """#19 item 4: Redshift assumes declared keys hold; the gate proves them, so it must ask the data."""
    assert ("songplay_id",) in REDSHIFT_KEYS["songplays"] and ("user_id",) in REDSHIFT_KEYS["users"]
    assert ("user_id", "valid_from") in REDSHIFT_KEYS["user_levels"]
    texts = [statement for _, statement in qc.quality_checks + qc.batch_quality_checks] + q.create_view_queries
    for text in texts:
        assert declared_key_reliance(text, REDSHIFT_KEYS) == [], text


def test_the_declared_key_rule_finds_each_form_it_names():
    relies = [
        "select songplay_id, count(*) from songplays group by songplay_id having count(*) > 1",
        "select user_id, valid_from, count(*) from user_levels group by user_id, valid_from having count(*) > 1",
        "select child.user_id from songplays child left join users parent on parent.user_id = child.user_id "
        "where child.user_id is not null and parent.user_id is null",
        "select distinct s.song_id from songs s",
    ]
    for text in relies:
        assert declared_key_reliance(text, REDSHIFT_KEYS), text
    # Grouping by a column that is no declared key, and a join that keeps both sides, are fine.
    assert declared_key_reliance("select level, count(*) from users group by level", REDSHIFT_KEYS) == []
    assert declared_key_reliance("select p.user_id, u.level from songplays p left join users u "
                                 "on u.user_id = p.user_id", REDSHIFT_KEYS) == []


def test_every_join_of_tables_distributed_on_user_id_equates_user_id(script):
    """#19 item 10: joins of the facts and the batch tables keep to their slices on Redshift."""
    bodies = statements(script)
    distributed = distributed_on(bodies)
    assert {"songplays", "app_events", "batch_level_users", "batch_open_stretches"} <= distributed
    assert "users" not in distributed and "staging_events" not in distributed
    parsed = [body for body in bodies if sqlglot.parse_one(body, read="postgres").find(exp.Select)]
    assert len(parsed) > 40
    for body in parsed:
        assert missing_distkey_predicates(body, distributed) == [], body
    for _, statement in qc.quality_checks + qc.batch_quality_checks:
        assert missing_distkey_predicates(statement, distributed) == [], statement


def test_the_distribution_key_rule_finds_a_join_without_it():
    distributed = {"songplays", "batch_plays", "app_events", "batch_replaced"}
    missing = [
        "select count(*) from batch_plays p join songplays s on s.songplay_id = p.songplay_id",
        "select count(*) from songplays where songplay_id in (select songplay_id from batch_plays)",
        "delete from app_events where event_id in (select event_id from batch_replaced)",
        "delete from app_events using batch_replaced r where app_events.event_id = r.event_id",
        "select count(*) from batch_plays p left join (select songplay_id from songplays where x = 1) s "
        "on s.songplay_id = p.songplay_id",
    ]
    for text in missing:
        assert missing_distkey_predicates(text, distributed), text
    fine = [
        "select count(*) from batch_plays p join songplays s on s.songplay_id = p.songplay_id "
        "and s.user_id = p.user_id",
        "delete from app_events using batch_replaced r where app_events.event_id = r.event_id "
        "and app_events.user_id = r.user_id",
        "select count(*) from songplays where user_id is null "
        "and songplay_id in (select songplay_id from batch_plays where user_id is null)",
        "select count(*) from songplays s join users u on u.user_id = s.user_id",
    ]
    for text in fine:
        assert missing_distkey_predicates(text, distributed) == [], text


def test_each_fact_row_keeps_its_batch_and_file_on_redshift(script):
    """#20: a COPY cannot say which file a row came from, so each log file is a COPY of its own
    that leaves object_id to the UPDATE after it; the facts' inserts keep it, and the batch."""
    etl = script.split("-- ===== python etl.py --dry-run")[1].split("-- ===== ")[0]
    copy = etl.index("copy staging_events (")
    assert "object_id" not in etl[copy:etl.index("\n", copy)]
    assert etl.index("update staging_events set object_id = :object_id where object_id is null;", copy) > copy
    for fact in ("app_events", "songplays"):
        insert = etl[etl.index(f"insert into {fact} ("):]
        insert = insert[:insert.index(";")]
        assert "batch_id, object_id)" in insert and "e.object_id" in insert, fact
    assert "create view source_files as" in script
