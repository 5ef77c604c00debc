"""A value the transforms cannot convert is one rejected record, on every day it comes.

userId "abc", a ts of 2^62 or in the year 40,000, a registration past bigint: each once
failed a transform statement with no file or line, and so every later batch too. Now the
valid ranges (sql_queries.STAGED_VALUE_VIOLATIONS, sparkify/validvalues.py) reject such a
record where it is staged: the local COPY with its file, line and column, and, after
Redshift's COPY, which runs no code of ours, SQL on the staged rows (tested here on
PostgreSQL with the local checks off). Hypothesis covers the ranges of every field the
transforms cast.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import math
import re
from datetime import datetime, timezone

import pytest
from conftest import BASE_TS, event, fresh_database, song, write_config, write_events, write_song
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sql_queries as q
from sparkify import jsoncopy, pipeline, validvalues
from sparkify.config import load_config
from sparkify.dialects import POSTGRES
from sparkify.sources import SourceObject
from sparkify.warehouse import connect

MAX_USER_ID = q.USER_ID_MAX


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


# The latest time an end-to-end test may use: an hour short of what its run will accept.
LATEST_NOW = validvalues.latest_valid_ms(validvalues.run_clock(utc_now())) - 3_600_000


def run_etl(warehouse, *args: str, create: bool = False) -> tuple[int, str, str]:
    """etl.py in this process, as a user runs it: exit code, stdout, stderr."""
    import create_tables
    import etl

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        if create:
            assert create_tables.main(["--config", str(warehouse.config), "-q"]) == 0
        code = etl.main(["--config", str(warehouse.config), "-q", *args])
    return code, out.getvalue(), err.getvalue()


def rejections(warehouse, name: str) -> list[tuple]:
    """(line, column, reason) of each record rejected from the source file called name."""
    return warehouse.query(
        "select line_number, column_name, reason from load_errors "
        "where disposition = 'rejected' and source like %s order by batch_id, line_number", (f"%/{name}",))


# --- each case of the issue, through etl.py --------------------------------------------------------

# (what the line holds, the column named, words of the reason)
POISON = [
    (dict(userId="abc"), "user_id", 'user_id: "abc" is not a user id: userId must be a whole number 1..2147483647'),
    (dict(userId="3000000000"), "user_id", 'user_id: "3000000000" is not a user id'),
    (dict(userId=2**63 + 9), "user_id", 'user_id: "9223372036854775817" is not a user id'),
    (dict(sessionId=2**63 + 9), "session_id", "session_id: 9223372036854775817 is out of range for the column"),
    (dict(ts=2**62), "ts", "ts: 4611686018427387904 is not a time from 2000-01-01 to a day after this run: "
                           "ts must be epoch milliseconds 946684800000.."),
    (dict(ts=1_200_000_000_000_000), "ts", "ts: 1200000000000000 is not a time from 2000-01-01"),  # year ~40,000
    (dict(ts=1.2e15), "ts", "ts: 1200000000000000.0 is not a whole number"),  # as a JSON float
    (dict(registration=2.0**62), "registration", "registration: 4.611686018427388e+18 is not a time from 2000-01-01"),
    (dict(registration=1e300), "registration", "registration: 1e+300 is not a time"),
]


def test_each_poison_value_is_one_rejection_and_every_day_after_it_loads(warehouse):
    root = warehouse.config.parent
    lines = [event(item=0)]
    for i, (values, _, _) in enumerate(POISON, 1):
        lines.append(dict(event(item=i, ts=BASE_TS + i), **values))
    lines.append(event(item=99, ts=BASE_TS + 99))
    write_events(root, "2018-11-01-events.json", lines)
    write_song(root, song())
    code, out, err = run_etl(warehouse, create=True)
    assert (code, err) == (0, "")
    assert f"bad records: {len(POISON)} rejected (see table load_errors)" in out
    found = rejections(warehouse, "2018-11-01-events.json")
    assert [(line, column) for line, column, _ in found] == [(i + 2, column) for i, (_, column, _) in enumerate(POISON)]
    for (_, _, reason), (_, _, words) in zip(found, POISON, strict=True):
        assert reason.startswith(words), reason
    assert warehouse.query("select item_in_session from songplays order by 1") == [(0,), (99,)]
    # The next days load, one of them with the same poison again.
    write_events(root, "2018-11-02-events.json",
                 [event(item=0, ts=BASE_TS + 10**8), dict(event(item=1, ts=BASE_TS + 10**8 + 1), userId="abc")])
    code, out, err = run_etl(warehouse)
    assert (code, err) == (0, "") and "ETL batch 2 published" in out and "bad records: 1 rejected" in out
    write_events(root, "2018-11-03-events.json", [event(item=0, ts=BASE_TS + 2 * 10**8)])
    code, out, err = run_etl(warehouse)
    assert (code, err) == (0, "") and "ETL batch 3 published" in out
    assert warehouse.count("songplays") == 4
    assert warehouse.query("select outcome, rejected from etl_batches order by batch_id") == [
        ("published", len(POISON)), ("published", 1), ("published", 0)]


def test_the_values_at_the_edges_of_the_ranges_load(warehouse):
    root = warehouse.config.parent
    latest = LATEST_NOW
    write_events(root, "2018-11-01-events.json", [
        event(user_id="1", item=0, ts=q.FIRST_VALID_MS, registration=q.FIRST_VALID_MS),
        event(user_id=str(MAX_USER_ID), item=1, ts=latest, registration=float(latest)),
        event(user_id="", item=2, page="Home", ts=BASE_TS),
    ])
    write_song(root, song())
    code, out, err = run_etl(warehouse, create=True)
    assert (code, err) == (0, "") and "bad records: 0 rejected" in out
    assert warehouse.query("select user_id, cast(registered_at as date) from users order by 1") == [
        (1, datetime(2000, 1, 1).date()), (MAX_USER_ID, datetime.fromtimestamp(latest / 1000, timezone.utc).date())]
    assert warehouse.scalar("select min(year) from time") == 2000
    assert warehouse.count("app_events") == 3


# --- the SQL after staging: Redshift's COPY runs none of the local checks ----------------------------

class CopyWithoutRules(jsoncopy.JsonCopy):
    """The local COPY as Redshift's behaves: column types only, no value ranges."""

    def __init__(self, *args, rules=None, **kwargs):
        super().__init__(*args, **kwargs)


def test_rows_that_reach_staging_out_of_range_are_rejected_by_the_sql_and_the_batch_loads(warehouse, monkeypatch):
    monkeypatch.setattr(jsoncopy, "JsonCopy", CopyWithoutRules)
    root = warehouse.config.parent
    write_events(root, "2018-11-01-events.json", [
        event(item=0), dict(event(item=1, ts=BASE_TS + 1), userId="abc"),
        event(item=2, ts=2**62), event(item=3, ts=BASE_TS + 3, registration=1e300), event(item=4, ts=BASE_TS + 4)])
    write_song(root, song())
    code, out, err = run_etl(warehouse, create=True)
    assert (code, err) == (0, "")
    assert re.search(r"staged staging_events +2 rows from 1 files  \(3 rejected\)", out), out
    assert warehouse.query("select item_in_session from songplays order by 1") == [(0,), (4,)]
    found = warehouse.query("select source, line_number, column_name, reason, raw_excerpt from load_errors "
                            "order by column_name")
    source = "staging_events, after COPY (which does not say the row's file)"
    assert [row[:3] for row in found] == [(source, None, "registration"), (source, None, "ts"),
                                          (source, None, "user_id")]
    assert found[2][3].startswith('user_id: "abc" is not a user id')
    assert found[1][3].startswith("ts: 4611686018427387904 is not a time from 2000-01-01")
    assert found[0][3].startswith("registration: 1e+300 is not a time")
    assert found[2][4] == 'userId="abc" sessionId=1 itemInSession=1 ts=1541106106797'


def test_maxerror_counts_the_rows_the_sql_rejects(warehouse, monkeypatch):
    monkeypatch.setattr(jsoncopy, "JsonCopy", CopyWithoutRules)
    write_config(warehouse.config, host=warehouse.server.host, port=warehouse.server.port,
                 db_name=warehouse.dbname, user=warehouse.server.user, password=warehouse.server.password,
                 max_errors=2)
    root = warehouse.config.parent
    path = write_events(root, "2018-11-01-events.json", [])
    # One record COPY rejects itself (not JSON), two out of range: three, past MAXERROR = 2.
    path.write_text("\n".join([json.dumps(event(item=0)), "{not json",
                               json.dumps(dict(event(item=2, ts=BASE_TS + 2), userId="x")),
                               json.dumps(event(item=3, ts=2**62))]))
    write_song(root, song())
    code, out, err = run_etl(warehouse, create=True)
    assert code == 1
    assert err.startswith("Error: loading staging_events rejected 3 records, and MAXERROR = 2 fails a load at 2 "
                          "(first: ") and "2018-11-01-events.json line 2: invalid JSON" in err
    assert warehouse.count("songplays") == 0
    assert warehouse.query("select outcome, rejected from etl_batches") == [("failed", 3)]
    assert sorted(c for (c,) in warehouse.query("select column_name from load_errors where column_name is not null")) \
        == ["ts", "user_id"]


def test_the_sql_and_copy_rejections_fail_a_load_at_maxerror_together(warehouse, monkeypatch):
    """MAXERROR = 2: one record COPY rejects and one the SQL rejects make two, which fail the
    load, as two of either alone would (Redshift fails at MAXERROR or more)."""
    monkeypatch.setattr(jsoncopy, "JsonCopy", CopyWithoutRules)
    write_config(warehouse.config, host=warehouse.server.host, port=warehouse.server.port,
                 db_name=warehouse.dbname, user=warehouse.server.user, password=warehouse.server.password,
                 max_errors=2)
    root = warehouse.config.parent
    path = write_events(root, "2018-11-01-events.json", [])
    path.write_text("\n".join([json.dumps(event(item=0)), "{not json", json.dumps(event(item=3, ts=2**62))]))
    write_song(root, song())
    code, out, err = run_etl(warehouse, create=True)
    assert code == 1, out
    assert err.startswith("Error: loading staging_events rejected 2 records, and MAXERROR = 2 fails a load at 2")
    assert warehouse.count("songplays") == 0


def test_the_sql_judges_rows_the_local_copy_never_stages(warehouse):
    """Text the local COPY turns to NULL or never produces ('' and blanks, signs, other
    scripts' digits) judged by the SQL step on rows inserted with SQL."""
    import create_tables

    with contextlib.redirect_stdout(io.StringIO()):
        assert create_tables.main(["--config", str(warehouse.config), "-q"]) == 0
    config = load_config(str(warehouse.config))
    clock = datetime(2024, 1, 1, 12, 0, 0)
    rows = [("10", "ok"), ("", "ok"), (None, "ok"), ("2147483647", "ok"), ("1", "ok"), (" 12", "bad"),
            ("12 ", "bad"), ("+12", "bad"), ("012", "bad"), ("0", "bad"), ("-3", "bad"), ("1e3", "bad"),
            ("10.0", "bad"), ("2147483648", "bad"), ("99999999999", "bad"), ("\u0664\u0662", "bad")]
    with connect(config) as wh:
        for item, (user_id, _) in enumerate(rows):
            wh.execute("insert into staging_events (item_in_session, page, session_id, ts, user_id) "
                       "values (%s, 'Home', 1, %s, %s)", (item, BASE_TS, user_id))
        result = jsoncopy.CopyResult("staging_events", rows=len(rows))
        pipeline.reject_invalid_staged_rows(wh, [result], clock, jsoncopy.CopyOptions(max_errors=100))
        kept = sorted(item for (item,) in wh.query("select item_in_session from staging_events"))
        wh.rollback()
    assert kept == [i for i, (_, verdict) in enumerate(rows) if verdict == "ok"]
    assert sorted(e.raw_excerpt.split(" sessionId=")[0] for e in result.rejected) == sorted(
        f"userId={json.dumps(user_id)}" for user_id, verdict in rows if verdict == "bad")
    assert result.rows == len(kept)


# --- property-based: the two forms of the rules agree, and what they accept converts ------------------

CLOCK = datetime(2024, 1, 1, 12, 0, 0)
LATEST = validvalues.latest_valid_ms(CLOCK)
RULES = validvalues.rules("staging_events", CLOCK)
BIGINT = 2**63

# userIds as staged (text): numbers of any size, with leading zeros, signs, blanks, other
# scripts' digits (U+0664, U+FF11), any text (a NUL is rejected before any rule, so none here).
user_ids = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.tuples(st.integers(0, 2), st.integers(0, 2**33)).map(lambda zn: "0" * zn[0] + str(zn[1])),
    st.text(alphabet="0123456789 +-.e\u0664\uff11", max_size=12),
    st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=12),
    st.sampled_from(["", "1", "0", "01", str(MAX_USER_ID), str(MAX_USER_ID + 1), "9" * 10, "1" * 11]),
).filter(lambda text: len(text.encode()) <= 64)

times = st.one_of(st.integers(-BIGINT, BIGINT - 1), st.integers(q.FIRST_VALID_MS - 2, q.FIRST_VALID_MS + 2),
                  st.integers(LATEST - 2, LATEST + 2), st.integers(q.FIRST_VALID_MS, LATEST))
levels = st.one_of(st.sampled_from(["free", "paid", "gold", "Free", "free ", ""]), st.text(max_size=8)
                   ).filter(lambda text: "\x00" not in text)
registrations = st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False),
                          st.floats(q.FIRST_VALID_MS - 1.0, LATEST + 1.0), times.map(float))


@pytest.fixture(scope="module")
def probe(server, tmp_path_factory):
    """A connection to a database of its own, with a table of the staged columns the rules judge."""
    with fresh_database(server, tmp_path_factory.mktemp("probe")) as database:
        conn = server.connect(database.dbname)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("create temp table probe (n integer, user_id varchar(64), ts bigint, "
                        "registration double precision, level varchar(16))")
        yield conn
        conn.close()


def _conversions(column: str) -> list[str]:
    """The transforms' conversions of a column's value, as sql_queries writes them."""
    if column == "user_id":
        return ["cast(nullif(user_id, '') as integer)"]
    if column == "level":
        return ["level"]  # no conversion: the accepted set is what the gate checks
    source = "ts" if column == "ts" else "cast(registration as bigint)"
    moment = q.START_TIME.format(ts=source)
    parts = ["hour", "day", "week", "month", "year", "dow"]
    return [moment, f"cast({moment} as date)"] + [f"cast(extract({p} from {moment}) as smallint)" for p in parts]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(user_ids, times, registrations, levels),
                min_size=1, max_size=20))
def test_the_sql_and_the_local_copy_agree_and_what_they_accept_converts(probe, rows):
    with probe.cursor() as cur:
        cur.execute("truncate probe")
        for n, row in enumerate(rows):
            cur.execute("insert into probe values (%s, %s, %s, %s, %s)", (n, *row))
        violations = {column: POSTGRES.render(condition)
                      for column, condition in q.STAGED_VALUE_VIOLATIONS["staging_events"].items()}
        flags = ", ".join(f"coalesce({condition}, false)" for condition in violations.values())
        cur.execute(f"select {flags} from probe order by n",
                    [LATEST] * sum(condition.count("%s") for condition in violations.values()))
        judged = cur.fetchall()
        for (user_id, ts, registration, level), sql_flags in zip(rows, judged, strict=True):
            values = {"user_id": user_id, "ts": ts, "registration": registration, "level": level}
            for (column, rule), flagged in zip(RULES.items(), sql_flags, strict=True):
                value = values[column]
                local = value is not None and value != "" and not rule.accepts(value)
                assert flagged == local, (column, value)
        # What the rules accept, the transforms convert without an error.
        for column in RULES:
            expressions = ", ".join(_conversions(column)).replace("%", "%%")  # its modulo, not a parameter
            cur.execute(f"select {expressions} from probe where not coalesce({violations[column]}, false)",
                        [LATEST] * violations[column].count("%s"))


class _Memory(SourceObject):
    def open(self):
        return io.BytesIO(self.body)  # type: ignore[attr-defined]


def _memory(lines: list[bytes]) -> SourceObject:
    data = b"\n".join(lines)
    obj = _Memory("memory://events.json", "events.json", len(data), "1")
    object.__setattr__(obj, "body", data)
    return obj


STAGING_EVENTS = [("user_id", "character varying", 64, True), ("ts", "bigint", None, False),
                  ("registration", "double precision", None, True), ("level", "character varying", 16, True)]
any_json_value = st.one_of(st.none(), st.booleans(), st.integers(-(2**65), 2**65),
                           st.floats(allow_nan=False, allow_infinity=False), user_ids, times, registrations,
                           levels)
GOOD_RECORD = json.dumps({"userId": "1", "ts": q.FIRST_VALID_MS, "registration": None, "level": "free"}).encode()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(any_json_value, any_json_value, any_json_value, any_json_value), min_size=1, max_size=10))
def test_the_local_copy_s_fast_path_and_its_converters_judge_alike(records):
    """The generated row function checks the rules inline for common values; the converters
    check them for the rest: the same rows and the same rejections either way."""
    lines = [json.dumps({"userId": u, "ts": t, "registration": r, "level": v}).encode()
             for u, t, r, v in records] + [GOOD_RECORD]
    paths = [("userId",), ("ts",), ("registration",), ("level",)]
    made = []
    for fast in (True, False):
        copier = jsoncopy.JsonCopy("staging_events", STAGING_EVENTS, paths, jsoncopy.CopyOptions(max_errors=1000),
                                   rules=RULES)
        assert copier.fast_row is not None
        if not fast:
            copier.fast_row = None
        rows = list(copier.rows([_memory(lines)]))
        made.append((rows, [(e.line_number, e.column, e.reason) for e in copier.result.rejected]))
    assert made[0] == made[1]
    rows, rejected = made[0]
    assert len(rows) + len(rejected) == len(records) + 1
    for _, column, reason in rejected:
        assert column in ("user_id", "ts", "registration", "level") and reason.startswith(f"{column}: ")


# --- property-based, end to end: a few values of every cast field through etl.py ---------------------

ACCEPTS_USER_ID = RULES["user_id"].accepts
FIELDS = {  # source key: (its column, whether a value of it loads: its rule, else its column's type)
    "userId": ("user_id", lambda v: v == "" or v.isspace() or ACCEPTS_USER_ID(v)),  # blanks: logged out
    "ts": ("ts", lambda v: q.FIRST_VALID_MS <= v <= LATEST_NOW),
    "registration": ("registration", lambda v: q.FIRST_VALID_MS <= v <= LATEST_NOW),
    "sessionId": ("session_id", lambda v: -BIGINT <= v < BIGINT),
    "itemInSession": ("item_in_session", lambda v: -(2**31) <= v < 2**31),
    "status": ("status", lambda v: -(2**31) <= v < 2**31),
    "length": ("length", math.isfinite),
}

field_values = st.one_of(
    st.tuples(st.just("userId"), user_ids),
    st.tuples(st.just("ts"), st.one_of(st.integers(-BIGINT, BIGINT - 1), st.integers(q.FIRST_VALID_MS, LATEST_NOW))),
    st.tuples(st.just("registration"), st.one_of(st.floats(allow_nan=False, allow_infinity=False),
                                                 st.floats(q.FIRST_VALID_MS, LATEST_NOW))),
    st.tuples(st.sampled_from(["sessionId", "itemInSession", "status"]), st.integers(-(2**64), 2**64)),
    st.tuples(st.just("length"), st.floats(allow_nan=False, allow_infinity=False)),
)


@pytest.fixture(scope="module")
def loaded(server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ranges")
    (folder / "log_data").mkdir()
    (folder / "song_data").mkdir()
    with fresh_database(server, folder) as warehouse:
        write_events(folder, "2018-11-01-events.json", [event()])
        write_song(folder, song())
        assert run_etl(warehouse, create=True)[0] == 0
        yield warehouse


_days = itertools.count(1)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field_values)
def test_a_value_the_rules_accept_lands_and_one_they_reject_is_rejected_naming_its_column(loaded, probe_value):
    key, value = probe_value
    column, loads = FIELDS[key]
    day = next(_days)
    name = f"2019-01-{day:02d}-events.json"
    base = BASE_TS + day * 10**7
    session = 10_000 + day
    write_events(loaded.config.parent, name, [
        event(session_id=session, item=0, ts=base),
        dict(event(user_id="11", session_id=session, item=1, ts=base + 1), **{key: value}),
        event(session_id=session, item=2, ts=base + 2),
    ])
    before = loaded.count("app_events")
    code, out, err = run_etl(loaded)
    assert (code, err) == (0, ""), err
    assert re.search(r"ETL batch \d+ published", out), out
    found = rejections(loaded, name)
    if loads(value):
        assert found == []
        assert loaded.count("app_events") == before + 3
    else:
        assert [(line, col) for line, col, _ in found] == [(2, column)], found
        assert found[0][2].startswith(f"{column}: ")
        assert loaded.count("app_events") == before + 2
