"""The quality gate: each check a query that returns the rows violating it, declared as data.

The checks run after a batch's transforms, inside its transaction (sparkify/pipeline.py,
run_quality_checks), on the rows the batch wrote or, with etl.py --full-checks and
--rebuild, on every row. Like every statement of the load, each is one text for both
engines (tests/test_redshift_sql.py checks them against Redshift's rules).
"""

from dataclasses import dataclass

from sql_queries import LEVELS, time_window

# Each check is a query that returns the rows violating it: none means it passed. They run
# after the transforms, inside the batch's transaction, so a failure publishes nothing.
# Redshift declares keys but never enforces them; these checks do. After a batch they look
# at the rows the batch wrote (what a batch changes is all it can break, and a day's batch
# then costs a day's work); etl.py --full-checks and --rebuild run them on every row.
# The checks are declared as data, as dbt declares its tests (unique, not_null,
# relationships, accepted_values, and checks of their own), in CHECKS; _check renders one
# for either scope.


@dataclass(frozen=True)
class BatchRows:
    """The rows of a table that a batch writes: those whose column holds a value of the same
    column of source (a table, or a SELECT of the batch's rows). For an event-grain table
    (window: a batch table of the times it bounds): every row in that time window, which holds
    all the rows the batch wrote and whatever shares a key with them (equal keys have equal
    times), and which the engine reads without the rest of the table (BRIN on PostgreSQL, zone
    maps on Redshift). made_from_source: the table's rows are made from source's, column for column, so a NULL is
    found there, before it is written (a NULL key cannot be selected by the key itself)."""
    column: str
    source: str
    window: str | None = None
    made_from_source: bool = True


# The event-grain tables are checked in the batch's time window, every key in it: the rows
# the batch wrote and whatever shares a key with them. Never through the batch's batch_id: a
# new batch_id is a value the planner's statistics have never seen, so it counts on one row
# and loops (141 s of checks for a day on a 10M warehouse). Plays re-matched to a late song
# widen the songplays window to their times. A first load is checked on every row instead
# (EVERY_ROW_CHECKS_SHARE in sparkify/pipeline.py).
BATCH_ROWS = {
    "songplays": BatchRows("songplay_id", "songplays", window="batch_written_times", made_from_source=False),
    "users": BatchRows("user_id", "batch_users"),
    "songs": BatchRows("song_id", "staging_songs"),
    "artists": BatchRows("artist_id", "(select artist_id from artists where batch_id = %(batch_id)s)",
                         made_from_source=False),
    "time": BatchRows("start_time", "time", window="batch_window", made_from_source=False),
    "app_events": BatchRows("event_id", "app_events", window="batch_window", made_from_source=False),
    "user_levels": BatchRows("user_id", "batch_users", made_from_source=False),
}


def _in_source(table: str, alias: str = "") -> str:
    rows = BATCH_ROWS[table]
    return f"{alias}{rows.column} in (select {rows.column} from {rows.source} batch_rows)"


def _scope(table: str, alias: str = "") -> str:
    """The condition that keeps the rows of table (alias: its alias and a dot) a batch wrote."""
    window = BATCH_ROWS[table].window
    return time_window(window, f"{alias}start_time") if window else _in_source(table, alias)


def _where(*conditions: str) -> str:
    kept = [c for c in conditions if c]
    return (" where " + " and ".join(f"({c})" for c in kept)) if kept else ""


@dataclass(frozen=True)
class Unique:
    table: str
    key: str  # a column, or columns: "user_id, valid_from"


@dataclass(frozen=True)
class NotNull:
    table: str
    columns: str  # a column, or columns: "user_id, valid_from"


@dataclass(frozen=True)
class Relationship:
    """Every non-NULL value of table.column is a parent_key of parent."""
    table: str
    column: str
    parent: str
    parent_key: str


@dataclass(frozen=True)
class AcceptedValues:
    """table.column holds one of values, never NULL."""
    table: str
    column: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Custom:
    """A check of its own: sql selects the rows that violate it, violation (if not in sql)
    says which. On a batch it keeps the rows scope_table (aliased scope_alias) had written,
    or, without a scope_table, runs on every row only."""
    name: str
    sql: str
    violation: str = ""
    scope_table: str | None = None
    scope_alias: str = ""


def _columns_name(table: str, columns: str) -> str:
    return f"{table}.{columns}" if "," not in columns else f"{table}.({columns})"


def _unkeyed(column: str) -> str:
    """The column's value as text: equal exactly when the values are (for the key types
    here), and no longer the declared key column, so the planner must read the data. Redshift
    assumes a declared primary or foreign key holds and may answer a GROUP BY of it, or an
    anti-join on it, from the declaration alone (AWS, Redshift Database Developer Guide,
    "Table constraints"); the gate is what proves the keys, so it never asks that way
    (tests/redshift_rules.py, declared_key_reliance)."""
    return f"cast({column} as varchar)"


def _check(check, batch: bool) -> tuple[str, str]:
    """A declared check as (name, SELECT of the rows that violate it), on every row of its
    table, or (batch) on the rows the batch wrote."""
    if isinstance(check, Unique):
        name = f"{_columns_name(check.table, check.key)} is unique"
        columns = [column.strip() for column in check.key.split(",")]
        return (name,
                "select " + ", ".join(f"min({column}) as {column}" for column in columns)
                + f", count(*) as copies from {check.table}"
                f"{_where(_scope(check.table) if batch else '')}"
                " group by " + ", ".join(_unkeyed(column) for column in columns) + " having count(*) > 1")
    if isinstance(check, NotNull):
        nulls = " or ".join(f"{column.strip()} is null" for column in check.columns.split(","))
        rows = BATCH_ROWS[check.table]
        if batch and rows.made_from_source:
            sql = f"select * from {rows.source} batch_rows{_where(nulls)}"
        else:
            sql = f"select * from {check.table}{_where(nulls, _scope(check.table) if batch else '')}"
        return f"{_columns_name(check.table, check.columns)} is not null", sql
    if isinstance(check, Relationship):
        table, column, parent, parent_key = check.table, check.column, check.parent, check.parent_key
        window = BATCH_ROWS[table].window
        # A parent keyed by time can only match inside the child rows' window: say so, so the
        # parent is not read whole.
        parent_window = (f" and {time_window(window, 'parent.start_time')}"
                         if batch and parent_key == "start_time" and window else "")
        return (f"{table}.{column} exists in {parent}",
                f"select child.{column} from {table} child left join {parent} parent "
                f"on {_unkeyed('parent.' + parent_key)} = {_unkeyed('child.' + column)}{parent_window}"
                + _where(f"child.{column} is not null", f"parent.{parent_key} is null",
                         _scope(table, "child.") if batch else ""))
    if isinstance(check, AcceptedValues):
        table, column = check.table, check.column
        listed = ", ".join(f"'{value}'" for value in check.values)
        return (f"{table}.{column} is {' or '.join(check.values)}",
                f"select {column}, count(*) as row_count from {table}"
                + _where(f"{column} is null or {column} not in ({listed})", _scope(table) if batch else "")
                + f" group by {column}")
    if isinstance(check, Custom):
        scope = _scope(check.scope_table, check.scope_alias) if batch and check.scope_table else ""
        return check.name, check.sql + _where(check.violation, scope)
    raise TypeError(f"not a check: {check!r}")


# Each table's key, unique and not null.
TABLE_KEYS = {"songplays": "songplay_id", "users": "user_id", "songs": "song_id", "artists": "artist_id",
              "time": "start_time", "app_events": "event_id", "user_levels": "user_id, valid_from"}

# The level history ends where users stands.
current_level_check = Custom("each user's current level is the level of users", """
select u.user_id, u.level, l.level as history_level
from users u
join user_levels l on l.user_id = u.user_id and l.valid_to is null""",
                             violation="l.level <> u.level", scope_table="users", scope_alias="u.")


# The rollups hold what the facts hold, summed over batches; each fact is read once. Only on
# every row: a batch's rollup rows are counted from the very rows it inserts.
rollups_add_up_check = Custom("summaries add up to the facts", """
with plays as (select count(*) as plays, count(song_id) as matched from songplays),
     events as (select count(*) as events from app_events),
     times as (select count(*) as times from time)
select summary, summarized, in_facts
from (
    select cast('plays_by_user_day' as varchar(32)) as summary,
           (select sum(plays) from plays_by_user_day) as summarized, (select plays from plays) as in_facts
    union all
    select 'plays_by_hour', (select sum(plays) from plays_by_hour), (select plays from plays)
    union all
    select 'plays_by_song', (select sum(plays) from plays_by_song), (select plays from plays)
    union all
    select 'events_by_user_day', (select sum(events) from events_by_user_day), (select events from events)
    union all
    select 'session_parts', (select sum(events) from session_parts), (select events from events)
    union all
    select 'matched_plays_by_day', (select sum(plays) from matched_plays_by_day), (select matched from plays)
    union all
    select 'batch_totals: time rows', (select sum(row_count) from batch_totals where measure = 'time rows'),
           (select times from times)
    union all
    select 'batch_totals: matched plays',
           (select sum(row_count) from batch_totals where measure = 'matched plays'), (select matched from plays)
) totals
where coalesce(summarized, 0) <> in_facts
""")

# In the order they run (and are reported in).
CHECKS = [
    *(Unique(table, key) for table, key in TABLE_KEYS.items()),
    *(NotNull(table, key) for table, key in TABLE_KEYS.items()),
    NotNull("songplays", "start_time"),
    Relationship("songplays", "user_id", "users", "user_id"),
    Relationship("songplays", "start_time", "time", "start_time"),
    Relationship("songplays", "song_id", "songs", "song_id"),
    Relationship("songplays", "artist_id", "artists", "artist_id"),
    Relationship("songs", "artist_id", "artists", "artist_id"),
    AcceptedValues("songplays", "level", LEVELS),
    AcceptedValues("users", "level", LEVELS),
    AcceptedValues("user_levels", "level", LEVELS),
    Relationship("app_events", "user_id", "users", "user_id"),
    Relationship("user_levels", "user_id", "users", "user_id"),
    current_level_check,
    rollups_add_up_check,
]

# Every row: --full-checks, --rebuild, nightly. The rows a batch wrote: every etl.py run (all
# but the custom checks without a scope).
quality_checks = [_check(check, batch=False) for check in CHECKS]
batch_quality_checks = [_check(check, batch=True) for check in CHECKS
                        if not (isinstance(check, Custom) and check.scope_table is None)]
