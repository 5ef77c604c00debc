"""Every SQL statement of the warehouse: CREATE, DROP, COPY and INSERT … SELECT.

One text per statement serves both engines, and the logic is never written twice. A statement
is a template with named {placeholders}, sent only as the engine's dialect renders it
(sparkify/dialects.py, Dialect.render), which fills:
- its physical design on that engine, where Redshift and PostgreSQL differ (distribution,
  sort keys, logging): {staging}, {fact}, {dimension}, … (the dialect's physical);
- a fragment several statements share, the same on both (FRAGMENTS): {event_time} (ts as a
  timestamp), {in_batch_window} (start_time within the time window of the staged events), …
  A fragment over an argument is one named fragment per argument in use, its name saying
  which: {staged_matches_catalog} and
  {songplays_match_catalog};
- a value the caller passes to Dialect.render by name: {table}, {role}, {source}, ….
%s and %(name)s stay psycopg2 parameters, filled when the statement runs. Statements generated from
data (the valid ranges here, the quality gate in quality_checks.py) are made by one function
each, from declarations.
Every transform is valid Redshift SQL: no ON CONFLICT, DISTINCT ON, SERIAL, RETURNING or
JSON operators, and dimensions are merged with delete + insert inside the batch's transaction.

Naming: staging tables keep one column per source field, renamed once to snake_case
(userId -> user_id); nothing downstream sees a raw name.
"""

from dataclasses import dataclass, fields

# --- placeholders: shared fragments (each engine's physical design: sparkify/dialects.py) --
# Keys declared on Redshift only. Redshift never enforces a primary or foreign key, but its
# planner uses them (to infer uniqueness, order joins, drop redundant ones) and assumes they
# hold; AWS says to declare them when the ETL enforces them (Redshift Database Developer
# Guide: "Table constraints", "Define primary key and foreign key constraints"). The quality
# gate checks every one of them after each batch (a test pins that). PostgreSQL would enforce
# them, at a cost or breaking the load: a unique B-tree on an event-grain table (songplays,
# app_events, time) costs more than the rest of its insert (2.7 µs a row, growing past
# memory), so their keys are kept unique by the anti-joins and proven by the gate, both
# limited to the batch's time window; and a foreign key would refuse the dimension merges,
# which delete and re-insert songs and users that plays still reference. For PostgreSQL's
# users docs/data-dictionary.md names every join. The dimensions' own primary keys are in
# their CREATE statements, on both engines. In TABLES a table comes after those it references.
INFORMATIONAL_KEYS = {
    "songs": ["foreign key (artist_id) references artists (artist_id)"],
    "time": ["primary key (start_time)"],
    "songplays": ["primary key (songplay_id)",
                  "foreign key (user_id) references users (user_id)",
                  "foreign key (song_id) references songs (song_id)",
                  "foreign key (artist_id) references artists (artist_id)",
                  "foreign key (start_time) references time (start_time)"],
    "app_events": ["primary key (event_id)",
                   "foreign key (user_id) references users (user_id)"],
    "user_levels": ["foreign key (user_id) references users (user_id)"],
}

# JSON start_time from epoch milliseconds without losing them: integer seconds plus the
# remaining milliseconds (ts / 1000.0 would go through a float and can drift by 1 µs).
# mod(), not %: the statements run with psycopg2 parameters, where % introduces one.
START_TIME = ("timestamp 'epoch' + ({ts} / 1000) * interval '1 second'"
              " + mod({ts}, 1000) * interval '1 millisecond'")


def _time_of(ts: str) -> str:
    """START_TIME of an expression in epoch milliseconds."""
    return START_TIME.format(ts=ts)


def time_window(batch: str, column: str = "start_time") -> str:
    """The batch's time window as a condition on column: the events of an event-grain table
    that can share a key with the batch's (equal keys have equal times). The bounds are
    scalar subqueries so PostgreSQL's BRIN index and Redshift's zone maps can skip the
    blocks outside them."""
    return (f"{column} between (select min(start_time) from {batch}) "
            f"and (select max(start_time) from {batch})")


# A play matches the song with its exact (repaired) title, credited artist name and
# duration; if several songs qualify, the smallest song_id, so a play never counts twice.
# Trailing blanks do not count, on either engine: Redshift ignores them when it compares
# VARCHARs (AWS, Redshift Database Developer Guide, "Character types", "Significance of
# trailing blanks") and PostgreSQL does not, so both compare the names rtrim()ed (12 titles
# of the real data end in a space); _matches compares a play's names with these keys.
# _CATALOG_ROWS: every song with its keys; _CATALOG_MATCH: the one a play matches.
_CATALOG_ROWS = """
        select song_id, artist_id, rtrim(title) as title_key, rtrim(artist_name) as artist_key, duration
        from songs
"""
_CATALOG_MATCH = """
    select song_id, artist_id, title_key, artist_key, duration
    from (
        select
            song_id, artist_id, rtrim(title) as title_key, rtrim(artist_name) as artist_key, duration,
            row_number() over (partition by rtrim(title), rtrim(artist_name), duration order by song_id) as choice
        from songs
    ) candidates
    where choice = 1
"""


def _matches(play: str, indent: str) -> str:
    """The catalog row (alias catalog) a play (alias play) matches: names without trailing
    blanks. indent: what comes before each 'and'."""
    return f"\n{indent}and ".join([f"catalog.title_key = rtrim({play}.song_title)",
                                    f"catalog.artist_key = rtrim({play}.artist_name)",
                                    f"catalog.duration = {play}.song_duration"])


# The valid ranges of the staged values the transforms convert (see STAGED_VALUE_VIOLATIONS).
FIRST_VALID_DAY = "2000-01-01"
FIRST_VALID_MS = 946_684_800_000  # 2000-01-01 00:00:00 UTC, in epoch milliseconds
VALID_AHEAD_MS = 86_400_000       # a time may lie up to a day past the run's clock (producers' clocks drift)
USER_ID_MAX = 2_147_483_647       # users.user_id is an integer; user ids start at 1
LEVELS = ("free", "paid")         # a user's level: the accepted values, staged and checked

# The latest valid epoch millisecond is a parameter (%s), a BIGINT the run computes from its
# clock (validvalues.latest_valid_ms). Not EXTRACT(epoch …) of the clock in SQL: on Redshift
# that returns an INTEGER (AWS: "EXTRACT function", return type), which overflows after
# 2038-01-19 03:14:07 UTC.
_LATEST_VALID_MS = "cast(%s as bigint)"

FRAGMENTS = {
    # An event's time, its first and last staged time, and a user's sign-up time.
    # registration is epoch milliseconds staged as a double: cast to bigint first, so % and
    # / are integer arithmetic and the conversion is as exact as start_time's.
    "event_time": _time_of("ts"),
    "first_staged_time": f"(select {_time_of('min(ts)')} from staging_events)",
    "last_staged_time": f"(select {_time_of('max(ts)')} from staging_events)",
    "registration_time": _time_of("cast(registration as bigint)"),
    "time_of_min_ts": _time_of("min(ts)"),
    # A staged event's key, hashed: app_events.event_id, songplays.songplay_id.
    "staged_event_id": ("md5(coalesce(user_id, '') || '|' || cast(session_id as varchar) || '|'"
                        " || cast(item_in_session as varchar) || '|' || cast(ts as varchar))"),
    # The time window of the staged events (batch_window), as a condition on start_time; and
    # the rows of a fact the batch inserted: its batch_id, in that window (for aggregates
    # only: a join planned on a batch_id the statistics have not seen loops, see BATCH_ROWS).
    "in_batch_window": time_window("batch_window"),
    "batch_rows": time_window("batch_window") + " and batch_id = %(batch_id)s",
    # The catalog's rows, the rows plays match on, and the match of a staged play or of songplays.
    "catalog_rows": _CATALOG_ROWS,
    "catalog_match": _CATALOG_MATCH,
    "staged_matches_catalog": _matches("staged", "       "),
    "songplays_match_catalog": _matches("songplays", "  "),
    # The bounds of the valid ranges.
    "first_valid_ms": str(FIRST_VALID_MS),
    "latest_valid_ms": _LATEST_VALID_MS,
    "user_id_max": str(USER_ID_MAX),
    "longest_play_s": "86400",
}
# --- steps: the statements a batch runs in order ---------------------------------------------
@dataclass
class RowsWritten:
    """The rows of the steps whose count the batch needs after them, as psycopg2 reports an
    INSERT's or UPDATE's (on both engines; -1 in a dry run). None: the step has not run."""
    late_matches: int | None = None  # older plays a newly arrived song matched
    unmatched: int | None = None     # plays whose match staged songs called into question
    plays: int | None = None         # plays inserted
    times: int | None = None         # time rows inserted
    events: int | None = None        # app_events inserted


@dataclass(frozen=True)
class Step:
    """A statement the batch runs (a template for Dialect.render), under the label its progress line
    and the dry run show. analyze: the table whose planner statistics it refreshes (the
    pipeline first asks whether that is due). counts: the field of RowsWritten that keeps the
    rows it wrote."""
    label: str
    sql: str
    analyze: tuple[str, ...] = ()
    counts: str | None = None
    needs: str | tuple[str, ...] = ()

    def __post_init__(self):
        if self.counts is not None and self.counts not in {field.name for field in fields(RowsWritten)}:
            raise ValueError(f"{self.label}: counts {self.counts!r} is not a field of RowsWritten")
        needs = (self.needs,) if isinstance(self.needs, str) else self.needs
        if unknown := set(needs) - set(BATCH_CONDITIONS):
            raise ValueError(f"{self.label}: needs {sorted(unknown)}, not among {BATCH_CONDITIONS}")
        object.__setattr__(self, "needs", needs)

    def runs_in(self, conditions: set[str]) -> bool:
        """Whether the step has work in a batch where conditions hold."""
        return set(self.needs) <= conditions


# What a step can need of a batch (Step.needs; all of them): it staged log files ("events")
# or song files ("songs"); a log file it staged had been loaded before in another version
# ("changed"), or none had ("no change").
BATCH_CONDITIONS = ("events", "songs", "changed", "no change")


analyze = "analyze {tables}"


def _analyze(*tables: str, needs: str | tuple[str, ...] = ()) -> Step:
    return Step(f"analyze {', '.join(tables)}", analyze, analyze=tables, needs=needs)


# The event-grain tables, written in time order: PostgreSQL indexes them with BRIN on
# start_time (sparkify/dialects.py), Redshift sorts them on it.
TIME_ORDERED_TABLES = ["songplays", "app_events", "time"]


# --- DROP ------------------------------------------------------------------------------------
# In creation order: a table after those its Redshift foreign keys reference (the dimensions
# before the facts). Dropped in reverse, so Redshift never drops a referenced table first.
TABLES = ["staging_events", "staging_songs", "etl_lock", "etl_batches", "loaded_objects", "load_errors",
          "schema_drift",
          "song_catalog", "text_repairs", "users", "artists", "songs", "time", "songplays",
          "app_events", "user_levels", "plays_by_user_day", "plays_by_hour", "plays_by_song",
          "events_by_user_day", "session_parts", "matched_plays_by_day", "batch_totals"]
drop_table_queries = [f"drop table if exists {table}" for table in reversed(TABLES)]

# --- CREATE ----------------------------------------------------------------------------------
# Staging: one row per log line, columns in the order of log_json_path.json (COPY with a
# JSONPaths file is positional), then object_id: the loader's key of the line's file
# (loaded_objects.object_id), which the facts keep as their lineage. VARCHAR lengths are bytes on Redshift: names with
# multi-byte (and double-encoded) characters need room. NOT NULL marks the fields an event
# cannot do without: COPY rejects a record that lacks one (and says which).
staging_events_table_create = """
{staging_table} staging_events (
    artist          varchar(1024),
    auth            varchar(32),
    first_name      varchar(256),
    gender          varchar(16),
    item_in_session integer not null,
    last_name       varchar(256),
    length          double precision,
    level           varchar(16),
    location        varchar(1024),
    method          varchar(16),
    page            varchar(64) not null,
    registration    double precision,
    session_id      bigint not null,
    song            varchar(1024),
    status          integer,
    ts              bigint not null,
    user_agent      varchar(1024),
    user_id         varchar(64),
    object_id       integer
) {staging}
"""

# Staging: one row per song object. Column names equal the JSON keys (COPY 'auto').
staging_songs_table_create = """
{staging_table} staging_songs (
    num_songs        integer,
    artist_id        varchar(32),
    artist_latitude  double precision,
    artist_longitude double precision,
    artist_location  varchar(1024),
    artist_name      varchar(1024),
    song_id          varchar(32) not null,
    title            varchar(1024),
    duration         double precision,
    year             integer
) {staging}
"""

# The catalog as loaded: one row per song_id, the latest file's version. Songs and artists
# are derived from it, so a later batch can recompute an artist from all its songs.
song_catalog_table_create = """
create table if not exists song_catalog (
    song_id          varchar(32) not null primary key,
    title            varchar(1024),
    artist_id        varchar(32),
    artist_name      varchar(1024),
    artist_location  varchar(1024),
    artist_latitude  double precision,
    artist_longitude double precision,
    duration         double precision,
    year             integer,
    batch_id         integer not null
) {dimension}
"""

# One row per event text value that was double-encoded UTF-8 ('BjÃƒÂ¶rk'), with its repair
# ('Björk'). Filled by the toolkit after staging; the transforms join it.
text_repairs_table_create = """
create table if not exists text_repairs (
    original varchar(1024) not null primary key,
    repaired varchar(1024) not null
) {dimension}
"""

# One row per ETL run that had something to load: what it loaded and how it ended
# (published, or failed with the reason; a failed batch changed nothing else).
etl_batches_table_create = """
create table if not exists etl_batches (
    batch_id      integer not null primary key,
    started_at    timestamp not null,
    finished_at   timestamp not null,
    outcome       varchar(16) not null,
    new_objects   integer not null,
    staged_rows   bigint not null,
    rejected      integer not null,
    checks_passed integer not null,
    message       varchar(4096)
) {dimension}
"""

# The load lock's table (see etl_lock): one row, read by nobody, so that holding it blocks
# no reader. Not granted to analysts.
etl_lock_table_create = """
create table if not exists etl_lock (
    purpose varchar(64) not null
) {dimension}
"""
etl_lock_row_insert = """
insert into etl_lock (purpose)
select 'etl.py takes this table''s lock for the length of a load'
where not exists (select 1 from etl_lock)
"""

# One row per source object in the warehouse: the version last loaded, by which batch, and
# what it gave. An object whose size or version (ETag, mtime) differs is loaded again.
# object_id: the object's compact key, kept by every fact row it gave (and the same for
# every version of the object).
loaded_objects_table_create = """
create table if not exists loaded_objects (
    object_id   integer not null,
    table_name  varchar(64) not null,
    object_key  varchar(1024) not null,
    url         varchar(2048) not null,
    size        bigint not null,
    version     varchar(256) not null,
    batch_id    integer not null,
    row_count   bigint not null,
    error_count integer not null,
    primary key (table_name, object_key)
) {dimension}
"""

# One row per source record that was rejected (or loaded only after replacing invalid
# characters): where it was, why, and what it looked like.
load_errors_table_create = """
create table if not exists load_errors (
    batch_id    integer not null,
    logged_at   timestamp not null,
    disposition varchar(16) not null,
    table_name  varchar(64) not null,
    source      varchar(1024) not null,
    line_number bigint,
    column_name varchar(128),
    reason      varchar(1024) not null,
    raw_excerpt varchar(1024)
) {staging}
"""

# One row per change a batch found in the shape of its source records (sparkify/drift.py):
# per source object, a new key, a key that vanished, or a value of another JSON type than
# the published batches recorded; for a staging table's first batch, its schema (baseline,
# one row per key and type). The known schema is what the published batches' rows say.
schema_drift_table_create = """
create table if not exists schema_drift (
    batch_id    integer not null,
    seen_at     timestamp not null,
    table_name  varchar(64) not null,
    source      varchar(1024) not null,
    change_kind varchar(16) not null,
    field_path  varchar(256) not null,
    json_type   varchar(16) not null,
    expected    varchar(64),
    records     bigint not null,
    line_number bigint,
    example     varchar(256),
    source_version varchar(256)
) {staging}
"""

# Fact. Grain: one row per song play, i.e. per NextSong event, identified by
# (user_id, session_id, item_in_session, ts); songplay_id is the MD5 of that key, so a
# reloaded event maps to the same row, and a row's duplicates share its start_time.
# song_id/artist_id are NULL when the catalog has no song with the play's title, artist
# name and duration; the play's own (repaired) title, artist name and duration stay on the
# row so such plays still count, and match when the song arrives.
# Lineage, on both facts: batch_id is the batch that inserted the row (etl_batches), object_id
# the source file it came from (loaded_objects.object_id); the view source_files names both.
# Every dimension and history row keeps the batch that last wrote it (batch_id).
songplay_table_create = """
create table if not exists songplays (
    songplay_id     char(32) not null,
    start_time      timestamp not null,
    user_id         integer,
    level           varchar(16),
    song_id         varchar(32),
    artist_id       varchar(32),
    session_id      bigint,
    item_in_session integer,
    location        varchar(1024),
    user_agent      varchar(1024),
    song_title      varchar(1024),
    artist_name     varchar(1024),
    song_duration   double precision,
    batch_id        integer not null,
    object_id       integer not null{songplays_keys}
) {fact}
"""

# Dimension. Grain: one row per user_id (non-empty userId), with the attributes of the
# user's latest event; last_seen_at is that event's time, registered_at the sign-up time it
# carries (the events' registration; NULL when it has none), which cohorts are built on.
user_table_create = """
create table if not exists users (
    user_id       integer not null primary key,
    first_name    varchar(256),
    last_name     varchar(256),
    gender        varchar(16),
    level         varchar(16),
    last_seen_at  timestamp not null,
    registered_at timestamp,
    batch_id      integer not null
) {dimension}
"""

# Dimension. Grain: one row per song_id. year is NULL where the catalog says 0 (unknown);
# artist_name is the name the song is credited to, which is what plays are matched on.
song_table_create = """
create table if not exists songs (
    song_id     varchar(32) not null primary key,
    title       varchar(1024),
    artist_id   varchar(32),
    artist_name varchar(1024),
    year        integer,
    duration    double precision,
    batch_id    integer not null{songs_keys}
) {dimension}
"""

# Dimension. Grain: one row per artist_id. An artist credited under several spellings
# takes the spelling on most of its songs (ties: the alphabetically first), and the
# location of a song carrying that spelling, preferring one with coordinates.
artist_table_create = """
create table if not exists artists (
    artist_id varchar(32) not null primary key,
    name      varchar(1024),
    location  varchar(1024),
    latitude  double precision,
    longitude double precision,
    batch_id  integer not null
) {dimension}
"""

# Dimension. Grain: one row per distinct songplay start_time (millisecond precision).
# weekday: 0 = Sunday … 6 = Saturday; week: ISO week number. All in UTC.
time_table_create = """
create table if not exists time (
    start_time timestamp not null,
    hour       smallint not null,
    day        smallint not null,
    week       smallint not null,
    month      smallint not null,
    year       smallint not null,
    weekday    smallint not null,
    batch_id   integer not null{time_keys}
) {time_dimension}
"""

# Fact. Grain: one row per app event of any page (NextSong, Home, Submit Upgrade, …),
# identified like songplays by (userId, sessionId, itemInSession, ts); user_id is NULL for
# logged-out events. It answers what plays alone cannot: daily active users, whole
# sessions, and when a user's level changed.
app_events_table_create = """
create table if not exists app_events (
    event_id        char(32) not null,
    start_time      timestamp not null,
    user_id         integer,
    level           varchar(16),
    session_id      bigint not null,
    item_in_session integer not null,
    page            varchar(64) not null,
    auth            varchar(32),
    status          integer,
    batch_id        integer not null,
    object_id       integer not null{app_events_keys}
) {fact}
"""

# History (type-2). Grain: one row per stretch of time a user stayed on one level:
# valid_from is the first event on that level, valid_to the first event on the next one
# (NULL while it lasts). Rebuilt for the users of each batch from their app_events.
user_levels_table_create = """
create table if not exists user_levels (
    user_id    integer not null,
    level      varchar(16) not null,
    valid_from timestamp not null,
    valid_to   timestamp,
    batch_id   integer not null,
    primary key (user_id, valid_from){user_levels_keys}
) {dimension}
"""

# Rollups for the insights report, one set of rows per batch: what the batch added to the
# facts, counted by the keys the report groups on; the report sums over batches. A batch
# that replaced a changed file, or undid a play's catalog match, empties them and counts
# every row of the facts again as its own (see _ROLLUPS): they always equal one full load's.

# Plays per UTC day and user, with the attributes the report splits listeners by.
plays_by_user_day_table_create = """
create table if not exists plays_by_user_day (
    batch_id   integer not null,
    day        date not null,
    user_id    integer,
    level      varchar(16),
    location   varchar(1024),
    user_agent varchar(1024),
    plays      bigint not null
) {rollup}
"""

# Plays per UTC hour.
plays_by_hour_table_create = """
create table if not exists plays_by_hour (
    batch_id   integer not null,
    hour_start timestamp not null,
    plays      bigint not null,
    primary key (batch_id, hour_start)
) {rollup}
"""

# Plays per song as played (title and credited artist name, matched to the catalog or not).
plays_by_song_table_create = """
create table if not exists plays_by_song (
    batch_id    integer not null,
    song_title  varchar(1024),
    artist_name varchar(1024),
    plays       bigint not null
) {rollup}
"""

# App events and plays per UTC day and user (NULL: logged out).
events_by_user_day_table_create = """
create table if not exists events_by_user_day (
    batch_id integer not null,
    day      date not null,
    user_id  integer,
    events   bigint not null,
    plays    bigint not null
) {rollup}
"""

# Each session's part in a batch (a session can span two days' files): its first and last
# event, events, songs, its level at item 0 and otherwise, and when its last song ended (its
# start plus its duration; NULL without a play). Parts combine with min, max and sum.
session_parts_table_create = """
create table if not exists session_parts (
    batch_id      integer not null,
    user_id       integer,
    session_id    bigint not null,
    first_at      timestamp not null,
    last_at       timestamp not null,
    events        bigint not null,
    songs         bigint not null,
    opening_level varchar(16),
    any_level     varchar(16),
    played_until  timestamp
) {rollup}
"""

# Plays matched to the catalog per UTC day and song: the batch's new plays that matched, and
# older plays a newly arrived song matched (counted on their own day).
matched_plays_by_day_table_create = """
create table if not exists matched_plays_by_day (
    batch_id  integer not null,
    day       date not null,
    song_id   varchar(32) not null,
    artist_id varchar(32),
    plays     bigint not null
) {rollup}
"""

# Per batch: the rows it added to time, and the plays it matched to the catalog (its new
# plays that matched, and older ones a late song matched). The run summary's totals of
# both, without reading the facts.
batch_totals_table_create = """
create table if not exists batch_totals (
    batch_id  integer not null,
    measure   varchar(32) not null,
    row_count bigint not null,
    primary key (batch_id, measure)
) {rollup}
"""

ROLLUP_TABLES = ["plays_by_user_day", "plays_by_hour", "plays_by_song", "events_by_user_day", "session_parts",
                 "matched_plays_by_day", "batch_totals"]

# In the order of TABLES.
create_table_queries = [
    staging_events_table_create,
    staging_songs_table_create,
    etl_lock_table_create,
    etl_batches_table_create,
    loaded_objects_table_create,
    load_errors_table_create,
    schema_drift_table_create,
    song_catalog_table_create,
    text_repairs_table_create,
    user_table_create,
    artist_table_create,
    song_table_create,
    time_table_create,
    songplay_table_create,
    app_events_table_create,
    user_levels_table_create,
    plays_by_user_day_table_create,
    plays_by_hour_table_create,
    plays_by_song_table_create,
    events_by_user_day_table_create,
    session_parts_table_create,
    matched_plays_by_day_table_create,
    batch_totals_table_create,
]

# --- views for analysts ----------------------------------------------------------------
# One row per song play, with the song and artist as the catalog has them when the play
# matched it (in_catalog), else as the event had them: "top songs" and "top artists" over
# this view count every play, where songplays joined to songs sees only the matched ones.
# The same text on both engines; the toolkit drops its views before its tables and
# re-creates them after (a view pins the tables it reads on both engines).
plays_view_create = """
create view plays as
select
    p.songplay_id,
    p.start_time,
    p.user_id,
    p.level,
    p.session_id,
    p.item_in_session,
    p.location,
    p.user_agent,
    p.song_id,
    p.artist_id,
    coalesce(s.title, p.song_title) as song_title,
    coalesce(a.name, p.artist_name) as artist_name,
    coalesce(s.duration, p.song_duration) as song_duration,
    case when p.song_id is not null then true else false end as in_catalog
from songplays p
left join songs s on s.song_id = p.song_id
left join artists a on a.artist_id = p.artist_id
"""

# The loader's bookkeeping as the report reads it, for analysts: etl_batches, loaded_objects,
# load_errors and text_repairs stay the loader's (a failed batch's message or a rejected
# record's raw text is not the analysts' to read), and these views give the counts only.
# One row: batches by outcome, the last published load, files, rejected and repaired records.
load_summary_view_create = """
create view load_summary as
select
    (select count(*) from etl_batches where outcome = 'published') as batches_published,
    (select count(*) from etl_batches where outcome = 'failed') as batches_failed,
    (select max(finished_at) from etl_batches where outcome = 'published') as last_load_finished,
    (select count(*) from loaded_objects) as source_files,
    (select count(*) from load_errors where disposition = 'rejected') as records_rejected,
    (select count(*) from load_errors where disposition = 'replaced') as records_with_replaced_characters,
    (select count(*) from text_repairs) as names_repaired
"""

# One row per table, disposition and reason of the rejected or repaired records (no record's
# text): how many, and when last.
load_error_reasons_view_create = """
create view load_error_reasons as
select table_name, disposition, reason, count(*) as records, max(logged_at) as last_seen
from load_errors
group by table_name, disposition, reason
"""

# One row per staging table, change, key and type of the schema drift the loads recorded
# (not a first batch's schema, no value's text): in how many files and records, first and
# last seen.
schema_changes_view_create = """
create view schema_changes as
select table_name, change_kind, field_path, json_type, expected, count(distinct source) as files,
       sum(records) as records, min(seen_at) as first_seen, max(seen_at) as last_seen
from schema_drift
where change_kind <> 'baseline'
group by table_name, change_kind, field_path, json_type, expected
"""

# Where a fact row came from and when it was loaded, in one join on its object_id: one row per
# source file, with the batch that loaded its current version (the batch_id its rows carry)
# and when that batch finished. A file's rows are all of one batch: a changed file's earlier
# rows go when its new version loads.
#     select p.*, f.source_file, f.loaded_at from songplays p join source_files f using (object_id)
source_files_view_create = """
create view source_files as
select o.object_id, o.table_name as staging_table, o.url as source_file, o.batch_id,
       b.finished_at as loaded_at, o.row_count, o.error_count
from loaded_objects o
join etl_batches b on b.batch_id = o.batch_id
"""

VIEWS = ["plays", "load_summary", "load_error_reasons", "schema_changes", "source_files"]
create_view_queries = [plays_view_create, load_summary_view_create, load_error_reasons_view_create,
                       schema_changes_view_create, source_files_view_create]
drop_view_queries = [f"drop view if exists {view}" for view in VIEWS]

# --- what is there, before create_tables.py changes it -------------------------------------
# Tables and views of the warehouse's schema (information_schema serves both engines).
existing_relations = """
select table_name from information_schema.tables where table_schema = current_schema()
"""

# Views (name, the relation they read) that read a table or view of the current schema:
# DROP TABLE fails on a table a view reads, on both engines. pg_depend and pg_rewrite are
# in Redshift's catalog as in PostgreSQL's.
dependent_views = """
select distinct dependent.relname, source.relname
from pg_depend d
join pg_rewrite r on r.oid = d.objid
join pg_class dependent on dependent.oid = r.ev_class
join pg_class source on source.oid = d.refobjid
join pg_namespace n on n.oid = source.relnamespace
where n.nspname = current_schema() and dependent.oid <> source.oid
order by 1, 2
"""

# --- the analysts' read-only role ------------------------------------------------------
# SELECT on the star schema, the views and the rollups, and nothing else (no staging,
# no bookkeeping, no writes). {role} is the config's ANALYST_ROLE, checked to be a plain
# name. How each engine lists roles and grants to one: sparkify/dialects.py.
# The star schema (the facts and dimensions analysts query, and the level history).
STAR_TABLES = ["songplays", "users", "songs", "artists", "time", "app_events", "user_levels"]
# batch_totals (rows each load added to time, plays it matched) is a summary analysts may read
# too, as its name says.
ANALYST_TABLES = [*STAR_TABLES, *ROLLUP_TABLES, *VIEWS]
role_create = "create role {role}"
# The schema the toolkit's tables are in (unqualified names land in the first of the
# search_path, on both engines).
warehouse_schema = "select current_schema()"

# The CREATE of each table, by name.
CREATE_TABLES = dict(zip(TABLES, create_table_queries, strict=True))

# --- staging -----------------------------------------------------------------------------
# A load stages into temporary copies of the staging tables, its session's own: a temporary
# table comes first in the search path on both engines, so every statement below reads the
# copy by the same name, and the copy is gone when the run ends (AWS, Redshift Database
# Developer Guide, CREATE TABLE: TEMPORARY, "LIKE parent_table"). The permanent tables stay
# empty, there for their shape and their documentation: a reader holding them (or anything
# else it may read) never holds up a load, nothing is emptied with TRUNCATE or DELETE, and
# Redshift has no staging rows to vacuum.
STAGING_TABLES = ["staging_events", "staging_songs"]
staging_copy_queries = [f"create temp table {table} (like {table})" for table in STAGING_TABLES]

# The staging tables whose rows keep the source file they came from, in their last column
# (STAGED_OBJECT_ID, which no JSON key fills): the toolkit's own COPY writes it with each row;
# on Redshift each of their files is a COPY of its own, after which its rows get the id.
STAGED_OBJECT_ID = "object_id"
STAGED_WITH_OBJECT_IDS = ["staging_events"]


def json_columns(table: str, columns: list) -> list:
    """A staging table's columns (in table order) that its JSON fills: all but STAGED_OBJECT_ID."""
    return columns[:-1] if table in STAGED_WITH_OBJECT_IDS else columns


staged_object_id_update = "update {table} set object_id = %(object_id)s where object_id is null"

# PostgreSQL engines: the toolkit reads the JSON itself (Redshift's rules: JSONPaths for the
# events, 'auto' for the songs) and streams rows into the same tables.
copy_from_stdin = "copy {table} ({columns}) from stdin"

# Redshift: COPY straight from S3, in parallel across slices. {source} is a manifest of
# exactly this batch's new files (with MANIFEST) or, without [S3] MANIFEST_PREFIX, the whole
# prefix. Staging gets no compression analysis or statistics update: it is emptied every
# batch. ts stays epoch milliseconds in a BIGINT and the transforms convert it exactly, the
# equivalent of TIMEFORMAT 'epochmillisecs' (which applies only to TIMESTAMP columns).
redshift_copy = """
copy {table} ({columns})
from '{source}'
iam_role '{iam_role}'
format as json '{json}'
{manifest}region '{region}'
maxerror {max_errors}
{conversions}
compupdate off statupdate off
"""

# What a COPY rejected and replaced, and what it read per file, from the SYS monitoring
# views, which provisioned clusters and Redshift Serverless both have; the STL tables
# (stl_load_errors, stl_replacements, stl_load_commits) exist on provisioned clusters only
# (AWS, Redshift Database Developer Guide: "System monitoring (provisioned only)", "System
# view mapping for migrating to SYS monitoring views"). SYS_LOAD_ERROR_DETAIL has no raw
# line, so a record Redshift rejected is kept without its excerpt, and gives a JSON record's
# last line (AWS: SYS_LOAD_ERROR_DETAIL, line_number).
#
# Which COPY: its query_id from SYS_LOAD_HISTORY, one row per COPY, running or finished,
# with its session, table, status and error count (AWS: SYS_LOAD_HISTORY). AWS's pages do
# not establish that pg_last_copy_id() is the SYS views' query_id, and a failed COPY has
# no "last COPY" at all: the newest COPY of this session into this table is the one that
# just ran or failed (each run stages a table once per session). %s: the table. Its
# error_count says how many rejections the detail views must show.
redshift_copy_of_this_session = """
select query_id, error_count, trim(status)
from sys_load_history
where session_id = pg_backend_pid() and trim(table_name) = %s
order by query_id desc
limit 1
"""

# Why that COPY rejected records: file, line, column, reason (and no raw line). %s: its query_id.
redshift_copy_errors = """
select trim(file_name), line_number, trim(column_name), trim(error_message), cast(null as varchar)
from sys_load_error_detail
where query_id = %s
order by file_name, line_number
"""

# Only the first 100 rows per slice that needed a replacement are logged (AWS:
# SYS_COPY_REPLACEMENTS): the run summary and load_errors' comment say so.
redshift_copy_replacements = """
select trim(file_name), line_number, trim(column_name), trim(raw_line)
from sys_copy_replacements
where query_id = %s
order by file_name, line_number
"""

redshift_copy_count = "select pg_last_copy_count()"

# The lines that COPY scanned in each file, before rejections. Redshift counts lines, not
# records (a pretty-printed record is several), and may log a file split across slices in
# more than one row (AWS: SYS_LOAD_DETAIL, splits_scanned; STL_LOAD_COMMITS, is_partial):
# the sum over them is the file's. file_name is character(256) (AWS: SYS_LOAD_DETAIL):
# a longer URL is logged cut to its first 256 bytes (redshift.FILE_NAME_BYTES).
redshift_copy_file_lines = """
select trim(file_name), sum(lines_scanned)
from sys_load_detail
where query_id = %s
group by trim(file_name)
"""

load_error_insert = """
insert into load_errors (batch_id, logged_at, disposition, table_name, source, line_number,
                         column_name, reason, raw_excerpt)
values %s
"""

schema_drift_insert = """
insert into schema_drift (batch_id, seen_at, table_name, source, change_kind, field_path, json_type,
                          expected, records, line_number, example, source_version)
values %s
"""

# The source objects a batch failed under the freeze contract, by the version it saw: held
# back while they are unchanged (and the contract is freeze), so later files still load.
refused_source_versions = """
select distinct d.table_name, d.source, d.source_version
from schema_drift d
join etl_batches b on b.batch_id = d.batch_id
where b.outcome = 'failed' and d.source_version is not null
"""

# The schema of the source records as the published batches recorded it: per staging table,
# each key path and the JSON types it held (absent: some records lacked it).
known_source_schema = """
select distinct d.table_name, d.field_path, d.json_type
from schema_drift d
join etl_batches b on b.batch_id = d.batch_id
where b.outcome = 'published'
"""

# --- etl.py --status: what the bookkeeping says, read without loading ----------------------
# The last batches, newest first (%s: how many).
status_batches = """
select batch_id, started_at, finished_at, outcome, new_objects, staged_rows, rejected, message
from etl_batches
order by batch_id desc
limit %s
"""
# Failed batches since the last published one (or the last few), newest first, with reasons.
status_failed_batches = """
select batch_id, finished_at, message
from etl_batches
where outcome = 'failed'
  and batch_id > (select coalesce(max(batch_id), 0) from etl_batches where outcome = 'published')
order by batch_id desc
limit %s
"""
# The newest event the warehouse holds: what freshness is measured on.
status_latest_event = "select max(start_time) from app_events"
# Drift found since a time (%s), newest first: the changes, not the first batch's schema.
status_recent_drift = """
select seen_at, batch_id, table_name, source, change_kind, field_path, json_type, expected, line_number
from schema_drift
where change_kind <> 'baseline' and seen_at >= %s
order by seen_at desc, batch_id desc
limit %s
"""

# --- the staged values the transforms convert, and their valid ranges ----------------------
# The transforms cast userId to an integer and turn ts and registration (epoch milliseconds)
# into timestamps, whose parts the time table keeps as smallints. A value those conversions
# cannot take (userId "abc" or "3000000000", ts = 2^62, a ts in the year 40,000) fails a
# transform statement, which cannot say which record it came from, and so fails that batch
# and every later one. So each such value has a valid range, checked where its record is
# staged: the local COPY rejects a record that breaks one as it reads it, with its file, line
# and column (sparkify/validvalues.py holds the same rules in Python); Redshift's COPY runs
# none of the toolkit's code, so after it the statements below reject and remove the staged
# rows that break one, before the transforms (valid on both engines, and tested on
# PostgreSQL). Every other staged value lands in a column of its own type, which COPY
# enforces on both engines, and no transform converts it further. The ranges' bounds are
# with the placeholders above (FIRST_VALID_MS, VALID_AHEAD_MS, USER_ID_MAX).

# Per staging table and column: what a staged row that breaks the column's range satisfies.
# Nothing is cast, so a bad value cannot fail its own check: a userId is judged as text (a
# character other than a digit, a leading 0, more than 10 digits, or 10 digits above the
# maximum; Redshift has the POSIX operator ~, AWS: "POSIX operators"; a regular expression
# sees a trailing blank, which Redshift's comparisons ignore). An empty userId (or NULL) is
# a logged-out event.
STAGED_VALUE_VIOLATIONS = {
    "staging_events": {
        "user_id": ("user_id <> '' and (user_id ~ '^0|[^0-9]' or length(user_id) > 10 "
                    "or (length(user_id) = 10 and user_id > '{user_id_max}'))"),
        "ts": "ts < {first_valid_ms} or ts > {latest_valid_ms}",
        "registration": "registration < {first_valid_ms} or registration > {latest_valid_ms}",
        # A level outside the accepted set is a rejected record (the gate's accepted-values
        # check would refuse the whole batch, naming no file or line).
        "level": "level <> '' and level not in (" + ", ".join(f"'{level}'" for level in LEVELS) + ")",
    },
}
# What load_errors keeps of such a row: its key (Redshift does not say which file a staged row
# came from; the key finds it) and the values the ranges judge.
STAGED_ROW_KEYS = {"staging_events": ["user_id", "session_id", "item_in_session", "ts"]}
INVALID_STAGED_ROW_COLUMNS = {
    table: ["column_name"] + list(dict.fromkeys(STAGED_ROW_KEYS[table] + list(rules)))
    for table, rules in STAGED_VALUE_VIOLATIONS.items()
}


def _breaks_a_range(table: str) -> str:
    return "\n   or ".join(f"({condition})" for condition in STAGED_VALUE_VIOLATIONS[table].values())


def _invalid_staged_rows(table: str) -> str:
    cases = "".join(f"\n        when {condition} then '{column}'"
                    for column, condition in STAGED_VALUE_VIOLATIONS[table].items())
    return (f"select\n    case{cases}\n    end as column_name,\n    "
            + ", ".join(INVALID_STAGED_ROW_COLUMNS[table][1:])
            + f"\nfrom {table}\nwhere {_breaks_a_range(table)}\nlimit %s")


# The staged rows that break a range, each with the first column it breaks (%s: the latest
# valid epoch millisecond, once per use; then how many rows at most: MAXERROR + 1 are enough to fail the
# load). Then the same rows go.
invalid_staged_rows = {table: _invalid_staged_rows(table) for table in STAGED_VALUE_VIOLATIONS}
invalid_staged_rows_delete = {table: f"delete from {table}\nwhere {_breaks_a_range(table)}"
                              for table in STAGED_VALUE_VIOLATIONS}

# --- batches and their sources ------------------------------------------------------------
# The load lock (the dialect's load_lock, on etl_lock) is taken first in every run's
# transaction, so two runs never load at once: the second waits until the first commits,
# then finds its objects already loaded.

# Ends a session (both engines). Bounding the wait for the lock, and finding who holds it,
# differ by engine: sparkify/dialects.py.
terminate_session = "select pg_terminate_backend(%s)"

next_batch_id = "select coalesce(max(batch_id), 0) + 1 from etl_batches"

published_batches = "select count(*) from etl_batches where outcome = 'published'"

loaded_object_versions = "select table_name, object_key, size, version, url, object_id from loaded_objects"

# The batch's objects go to a temporary twin first, then replace their rows in one pass
# (one DELETE per object would be 100,000 round trips for a large catalog).
batch_objects_create = [
    "drop table if exists batch_objects",
    "create temp table batch_objects (like loaded_objects)",
]

batch_objects_insert = """
insert into batch_objects (object_id, table_name, object_key, url, size, version, batch_id, row_count, error_count)
values %s
"""

loaded_objects_replace = [
    """
delete from loaded_objects
using batch_objects b
where loaded_objects.table_name = b.table_name and loaded_objects.object_key = b.object_key
""",
    """
insert into loaded_objects (object_id, table_name, object_key, url, size, version, batch_id, row_count,
                            error_count)
select object_id, table_name, object_key, url, size, version, batch_id, row_count, error_count
from batch_objects
""",
]

etl_batch_insert = """
insert into etl_batches (batch_id, started_at, finished_at, outcome, new_objects, staged_rows,
                         rejected, checks_passed, message)
values (%s, %s, %s, %s, %s, %s, %s, %s, %s)
"""

# Whether a batch whose COMMIT was interrupted landed: its row, with the run's own start time
# (another run may have taken the same id if this one's commit did not land).
batch_outcome = "select outcome from etl_batches where batch_id = %s and started_at = %s"

# A full rebuild empties what the loads built (not the history of batches and errors), in
# the run's transaction, then loads every source object again.
REBUILT_TABLES = ["loaded_objects", "song_catalog", "text_repairs", "songplays", "users", "songs",
                  "artists", "time", "app_events", "user_levels", *ROLLUP_TABLES]
rebuild_queries = [f"delete from {table}" for table in REBUILT_TABLES]

# --- text repair -------------------------------------------------------------------------
# Event text with any non-ASCII character that has not been examined yet; the toolkit
# repairs double-encoded UTF-8 in Python and records the repairs in text_repairs.
text_repair_candidates = """
select distinct value from (
    select artist as value from staging_events where octet_length(artist) > length(artist)
    union
    select song as value from staging_events where octet_length(song) > length(song)
) candidates
where value not in (select original from text_repairs)
"""

text_repair_insert = "insert into text_repairs (original, repaired) values %s"

# --- transform: staging -> star schema ---------------------------------------------------
# A batch writes each event once into app_events and each play once into songplays, straight
# from staging, and stamps every row with its batch (batch_id) and its source file
# (object_id, the key loaded_objects gives each file it records). Everything after reads the
# facts back by that stamp: the batch's rows are the facts' rows with its batch_id, inside
# the time window of what it staged, which PostgreSQL reads through its BRIN index and
# Redshift through its sort key. So no copy of the batch's events or plays is written
# besides staging and the facts themselves.
#
# %(batch_id)s is the batch, and %(changed_objects)s the object_ids of the loaded files that
# changed since they were loaded (a tuple), both psycopg2 parameters.
#
# Each Step says what it needs (Step.needs): "events" or "songs" (this batch staged some),
# or "changed" (a loaded log file changed): a daily batch of events runs none of the song
# steps, and none of the replacement steps unless a file changed. The dry run shows them all.

# The time window of the staged events: the bounds every read of the facts below keeps to
# (two rows: the first staged time and the last; NULL when no event was staged).
batch_window_create = """
create temp table batch_window as
select {first_staged_time} as start_time
union all
select {last_staged_time}
"""

# --- replacing changed files: what the files loaded before gave goes, whole ----------------
# A loaded file that changed is staged again in its current version, and every row its
# earlier version wrote goes first: then the facts hold what a full load of the files as they
# now are would (a line removed, a key changed by a corrected ts, a level changed). What those
# rows had fed is recomputed below: time rows no play has any more, the users they were the
# latest events of, their level history, and the rollups.
# The events that go, and their users, times and sessions: the facts' rows of the changed
# files (object_id is not the distribution key: no join, a filter on a list of ids).
batch_replaced_create = """
create temp table batch_replaced as
select event_id, start_time, user_id, page
from app_events
where object_id in %(changed_objects)s
"""

songplays_replaced_delete = "delete from songplays where object_id in %(changed_objects)s"

app_events_replaced_delete = "delete from app_events where object_id in %(changed_objects)s"

# --- songs and artists -------------------------------------------------------------------
# Every artist whose row this batch may change goes first: those of the staged songs, and
# those the staged songs were credited to before (a song can move to another artist id),
# read from the catalog before it changes. Those that still have a song come back below.
artist_table_delete = """
delete from artists
where artist_id in (select artist_id from staging_songs)
   or artist_id in (select artist_id from song_catalog where song_id in (select song_id from staging_songs))
"""

song_catalog_delete = "delete from song_catalog where song_id in (select song_id from staging_songs)"

# One row per song_id; a song staged twice in one batch keeps a deterministic version.
song_catalog_insert = """
insert into song_catalog (song_id, title, artist_id, artist_name, artist_location,
                          artist_latitude, artist_longitude, duration, year, batch_id)
select song_id, title, artist_id, artist_name, artist_location,
       artist_latitude, artist_longitude, duration, year, %(batch_id)s
from (
    select
        staged.*,
        row_number() over (
            partition by song_id
            order by title, artist_id, artist_name, duration, year, artist_location
        ) as version
    from staging_songs staged
    where song_id is not null
) versions
where version = 1
"""

song_table_delete = "delete from songs where song_id in (select song_id from staging_songs)"

song_table_insert = """
insert into songs (song_id, title, artist_id, artist_name, year, duration, batch_id)
select song_id, title, artist_id, artist_name, nullif(year, 0), duration, %(batch_id)s
from song_catalog
where song_id in (select song_id from staging_songs)
"""

# The artists the catalog credits that have no row (those removed above, unless they lost
# their last song): the spelling on most of their songs, ties to the alphabetically first,
# and the location of a song with that spelling, preferring one with coordinates.
artist_table_insert = """
insert into artists (artist_id, name, location, latitude, longitude, batch_id)
select artist_id, artist_name, artist_location, artist_latitude, artist_longitude, %(batch_id)s
from (
    select
        spelled.*,
        row_number() over (
            partition by artist_id
            order by songs_with_spelling desc, artist_name,
                     case when artist_latitude is null then 1 else 0 end,
                     case when artist_location is null then 1 else 0 end,
                     song_id
        ) as preference
    from (
        select
            catalog.*,
            count(*) over (partition by artist_id, artist_name) as songs_with_spelling
        from song_catalog catalog
        where artist_id is not null and artist_id not in (select artist_id from artists)
    ) spelled
) ranked
where preference = 1
"""

# --- users -------------------------------------------------------------------------------
# Each user's latest staged event; it replaces the stored row only if it is newer, so a late
# batch of old events cannot roll a user's level back.
batch_users_create = """
create temp table batch_users as
select user_id, first_name, last_name, gender, level, last_seen_at, registered_at
from (
    select
        cast(user_id as integer) as user_id,
        first_name,
        last_name,
        gender,
        level,
        {event_time} as last_seen_at,
        {registration_time} as registered_at,
        row_number() over (
            partition by user_id order by ts desc, session_id desc, item_in_session desc
        ) as recency
    from staging_events
    where user_id is not null and user_id <> ''
) latest
where recency = 1
"""

# user_levels is brought up to date from the batch alone where it can be: a user whose
# events in this batch all come after every event loaded before (users.last_seen_at, read
# before this batch moves it) only extends the history, and the current stretch stands for
# all of the user's earlier events. A user with an event from before that point (a late
# file, a reloaded one), or one whose events a changed file replaced, gets the whole history
# rebuilt from app_events.
batch_level_users_create = """
create temp table batch_level_users{batch_by_user} as
select b.user_id,
       case when u.user_id is null or b.first_event_at > u.last_seen_at then 1 else 0 end as extends
from (
    select cast(user_id as integer) as user_id, {time_of_min_ts} as first_event_at
    from staging_events
    where user_id is not null and user_id <> ''
    group by user_id
) b
left join users u on u.user_id = b.user_id
"""

batch_level_users_replaced_insert = """
insert into batch_level_users (user_id, extends)
select distinct user_id, 0
from batch_replaced
where user_id is not null and user_id not in (select user_id from batch_level_users)
"""

batch_level_users_replaced_update = """
update batch_level_users set extends = 0
where user_id in (select user_id from batch_replaced)
"""

user_table_delete = """
delete from users
using batch_users newer
where users.user_id = newer.user_id and newer.last_seen_at >= users.last_seen_at
"""

user_table_insert = """
insert into users (user_id, first_name, last_name, gender, level, last_seen_at, registered_at, batch_id)
select b.user_id, b.first_name, b.last_name, b.gender, b.level, b.last_seen_at, b.registered_at, %(batch_id)s
from batch_users b
left join users existing on existing.user_id = b.user_id
where existing.user_id is null
"""

# A changed file can take away a user's latest event (or all of them): such a user's level
# and last_seen_at come from their latest event in app_events as it now is, and a user with
# no event left goes. Names, gender and sign-up time stay as loaded (eventsim gives each user
# one of each).
users_replaced_update = """
update users
set level = latest.level, last_seen_at = latest.start_time, batch_id = %(batch_id)s
from (
    select user_id, level, start_time
    from (
        select user_id, level, start_time,
               row_number() over (
                   partition by user_id order by start_time desc, session_id desc, item_in_session desc
               ) as recency
        from app_events
        where user_id in (select user_id from batch_replaced)
    ) events
    where recency = 1
) latest
where users.user_id = latest.user_id
  and (users.last_seen_at <> latest.start_time or users.level <> latest.level)
"""

users_replaced_delete = """
delete from users
where user_id in (select user_id from batch_replaced)
  and user_id not in (select user_id from app_events
                      where user_id is not null and user_id in (select user_id from batch_replaced))
"""

# --- the facts ---------------------------------------------------------------------------
# Staged songs can change the catalog match of plays loaded before: a new song matches plays
# that had none (a late-arriving song), a changed song may no longer match its plays, and a
# song with a smaller song_id than a play's match becomes the match. So the plays matched to
# a staged song, or whose names and duration are a staged song's, lose their match first,
# and then every play without one is matched against the catalog as it now is; what a full
# load matches is what they then hold. Run before the batch's own plays are inserted (the
# insert matches those against the same catalog), so a first load does not scan the
# millions of plays it has just matched. A play that lost its match makes the batch count
# its rollups again (RowsWritten.unmatched).
songplays_unmatch_staged_songs_update = """
update songplays
set song_id = null, artist_id = null
where song_id in (select song_id from staging_songs)
"""

songplays_unmatch_staged_names_update = """
update songplays
set song_id = null, artist_id = null
from (select distinct rtrim(title) as title_key, rtrim(artist_name) as artist_key, duration
      from staging_songs) staged
where songplays.song_id is not null
  and staged.title_key = rtrim(songplays.song_title)
  and staged.artist_key = rtrim(songplays.artist_name)
  and staged.duration = songplays.song_duration
"""

songplay_late_match_update = """
update songplays
set song_id = catalog.song_id, artist_id = catalog.artist_id
from ({catalog_match}) catalog
where songplays.song_id is null
  and {songplays_match_catalog}
"""

# The times that bound the plays a batch writes: those it inserts (within the staged window)
# and older ones it matched to newly arrived songs. The quality gate checks songplays
# between the first and the last (and every row when a match was undone). Made after the
# late-song update and before the batch's plays are inserted, so a first load reads no
# songplays here.
batch_written_times_create = """
create temp table batch_written_times as
select start_time from batch_window
union all
select min(start_time) from songplays where song_id in (select song_id from staging_songs)
union all
select max(start_time) from songplays where song_id in (select song_id from staging_songs)
"""

# The staged events, one per key: its key hashed into event_id, its time converted. Of the
# copies of one key staged in this batch, the first in a fixed order counts; a key the facts
# hold already (from another file: a changed file's own rows went above) keeps its stored
# row. The copies are numbered in ts order, which also puts the rows in time order: each
# BRIN block range (and Redshift's sorted region) then spans minutes, and PostgreSQL's
# statistics see start_time correlate with the physical order, which is what makes its
# planner read a batch's window through the BRIN index. Whatever joins a fact needs come
# below the numbering (staged_plays), so its one sort is the last thing that orders the
# rows: a hash join above it returns its rows in as many runs as the join has batches.
def _staged_events(source: str = "staging_events staged", columns: str = "", last_in_order: str = "") -> str:
    return f"""
    select
        {{staged_event_id}} as event_id,
        {{event_time}} as start_time,
        cast(nullif(user_id, '') as integer) as user_id,
        level, session_id, item_in_session, page, auth, status, location, user_agent, song, artist, length, ts,
        object_id,{columns}
        row_number() over (
            partition by ts, staged.user_id, session_id, item_in_session
            order by page, song, level, status, object_id{last_in_order}
        ) as copy_number
    from {source}"""


def _new_events(fact: str, key: str, columns: str, where: str = "", staged: str = _staged_events()) -> str:
    """The staged events (alias e: staged's columns, first copies only) whose key fact does
    not hold, in time order: anti-joined on the key and, redundantly, on user_id, the facts'
    distribution key (see below), and the logged-out ones by their key alone among the
    window's logged-out rows."""
    return f"""select {columns}
from ({staged}
) e
left join (select {key}, user_id from {fact} where {{in_batch_window}}) existing
    on existing.{key} = e.event_id and existing.user_id = e.user_id
where e.copy_number = 1{where} and existing.{key} is null
  and (e.user_id is not null
       or e.event_id not in (select {key} from {fact} where user_id is null and {{in_batch_window}}))
order by e.ts"""


# Every join between tables distributed on user_id equates user_id as well as the event's
# key, so Redshift joins each slice's rows where they are (AWS, Redshift Database Developer
# Guide, "Creating a temporary staging table": "add a redundant join predicate on the
# distribution key columns to enable a collocated join"; tests/redshift_rules.py,
# missing_distkey_predicates). Equal keys have equal users, so the predicate changes no
# answer, except that it never holds for a logged-out event (user_id NULL on both sides):
# those, few, are matched by their key alone among the logged-out rows.
app_events_insert = """
insert into app_events (event_id, start_time, user_id, level, session_id, item_in_session, page, auth, status,
                        batch_id, object_id)
""" + _new_events("app_events", "event_id",
                  "e.event_id, e.start_time, e.user_id, e.level, e.session_id, e.item_in_session, e.page, "
                  "e.auth, e.status, %(batch_id)s, e.object_id")

# The plays: the NextSong events among the same first copies, their names repaired, matched
# to the catalog (the smallest song_id when several songs qualify). song_id/artist_id stay
# NULL when none does; the play keeps its own names, so it still counts, and matches when the
# song arrives. The names are repaired and matched before the copies are numbered (only a
# NextSong event's: the others have no song), so the numbering's sort puts the plays in
# time order whatever plan the joins get. The sort carries a repair only where there is one
# (a NULL costs a row no bytes) and the staged name beside it, which the numbering needs.
# A play is joined to every song that qualifies and the same numbering keeps the smallest
# song_id (its last key: it orders only the rows of one staged copy), so the join reads the
# songs table itself, whose size the planner knows, and hashes the catalog, not the events.
_STAGED_PLAYS = _staged_events("""(
        select s.*, s.length as song_duration,
               repaired_song.repaired as repaired_title,
               repaired_artist.repaired as repaired_artist_name,
               coalesce(repaired_song.repaired, s.song) as song_title,
               coalesce(repaired_artist.repaired, s.artist) as artist_name
        from staging_events s
        left join text_repairs repaired_song on repaired_song.original = s.song and s.page = 'NextSong'
        left join text_repairs repaired_artist on repaired_artist.original = s.artist and s.page = 'NextSong'
    ) staged
    left join ({catalog_rows}) catalog
        on staged.page = 'NextSong'
       and {staged_matches_catalog}""", columns="""
        repaired_title, repaired_artist_name, catalog.song_id, catalog.artist_id,""",
                               last_in_order=", catalog.song_id")

songplay_table_insert = """
insert into songplays (songplay_id, start_time, user_id, level, song_id, artist_id,
                       session_id, item_in_session, location, user_agent,
                       song_title, artist_name, song_duration, batch_id, object_id)
""" + _new_events(
    "songplays", "songplay_id",
    "e.event_id, e.start_time, e.user_id, e.level, e.song_id, e.artist_id, e.session_id, e.item_in_session,\n"
    "       e.location, e.user_agent, coalesce(e.repaired_title, e.song), coalesce(e.repaired_artist_name, e.artist),\n"
    "       e.length, %(batch_id)s, e.object_id",
    where=" and e.page = 'NextSong'", staged=_STAGED_PLAYS)

# One row per distinct start_time of the plays in the batch's window that time lacks (the
# plays of earlier batches in it have theirs already). The window alone, not the batch_id
# too: a new batch_id is a value the planner's statistics have never seen, so it counts
# on one row and loops (188 s for a day on a 10M warehouse, against 2 s).
time_table_insert = """
insert into time (start_time, hour, day, week, month, year, weekday, batch_id)
select
    p.start_time,
    extract(hour from p.start_time),
    extract(day from p.start_time),
    extract(week from p.start_time),
    extract(month from p.start_time),
    extract(year from p.start_time),
    extract(dow from p.start_time),
    %(batch_id)s
from (select distinct start_time from songplays where {in_batch_window}) p
left join (select start_time from time where {in_batch_window}) existing
    on existing.start_time = p.start_time
where existing.start_time is null
order by p.start_time
"""

# The times of the replaced plays that no play has any more.
time_replaced_delete = """
delete from time
where start_time in (select start_time from batch_replaced where page = 'NextSong')
  and start_time not in (select start_time from songplays
                         where start_time in (select start_time from batch_replaced where page = 'NextSong'))
"""

# --- the level history -------------------------------------------------------------------
# The current stretch of each extending user, kept before it is recomputed: it stands for
# all of the user's earlier events, as one event at its start (one row per such user).
batch_open_stretches_create = """
create temp table batch_open_stretches{batch_by_user} as
select l.user_id, l.level, l.valid_from as start_time,
       cast(0 as bigint) as session_id, 0 as item_in_session
from user_levels l
join batch_level_users b on b.user_id = l.user_id and b.extends = 1
where l.valid_to is null
"""

# The level-carrying events each stretch is computed from: for an extending user, the
# current stretch and the batch's events (those in its window: every event of theirs after
# the stretch began); for any other user, every event in app_events (which holds this
# batch's by now). Read where they are, not copied.
_LEVEL_EVENTS = """
        select user_id, level, start_time, session_id, item_in_session from batch_open_stretches
        union all
        select e.user_id, e.level, e.start_time, e.session_id, e.item_in_session
        from (select * from app_events where {in_batch_window}) e
        join batch_level_users b on b.user_id = e.user_id and b.extends = 1
        where e.level is not null
        union all
        select a.user_id, a.level, a.start_time, a.session_id, a.item_in_session
        from app_events a
        join batch_level_users b on b.user_id = a.user_id and b.extends = 0
        where a.level is not null"""

# The stretches recomputed below: the current one of an extending user, all of another's.
user_levels_delete = """
delete from user_levels
using batch_level_users b
where user_levels.user_id = b.user_id and (b.extends = 0 or user_levels.valid_to is null)
"""

# Gaps and islands: an event starts a new stretch when its level differs from the user's
# previous event; each stretch lasts until the next one starts. Events of one user at one
# instant (two sessions can share a millisecond) count once, as the last of them in
# (session, item) order, the order users.level is chosen by: two stretches can never start
# at the same time, which would break the key (user_id, valid_from) and fail every load.
user_levels_insert = """
insert into user_levels (user_id, level, valid_from, valid_to, batch_id)
select user_id, level, valid_from,
       lead(valid_from) over (partition by user_id order by valid_from) as valid_to,
       %(batch_id)s
from (
    select user_id, level, start_time as valid_from
    from (
        select
            user_id, level, start_time,
            lag(level) over (partition by user_id order by start_time) as previous_level
        from (
            select
                user_id, level, start_time,
                row_number() over (
                    partition by user_id, start_time order by session_id desc, item_in_session desc
                ) as latest_first
            from (""" + _LEVEL_EVENTS + """
            ) level_events
        ) instants
        where latest_first = 1
    ) ordered
    where previous_level is null or previous_level <> level
) stretches
"""

# Planner statistics for freshly written tables: without them PostgreSQL guesses a handful
# of rows and picks nested loops that take seconds instead of milliseconds, or hash
# aggregates sized for 200 groups that get millions. Redshift's ANALYZE skips a table whose
# rows changed by less than analyze_threshold_percent (10) since its last ANALYZE;
# PostgreSQL samples it regardless (2.4 s for the three event tables after a day on a
# 10M-event warehouse), so there the pipeline first asks analyze_due, with the same rule.
# The ANALYZE steps are the _analyze(table, ...) entries of transform_steps and totals_steps.
ANALYZE_THRESHOLD = 0.10  # Redshift's analyze_threshold_percent, as a fraction
# Tables a batch empties or creates and then fills: all their rows changed since their
# last ANALYZE, so it is always due.
REWRITTEN_EACH_BATCH = ["staging_events", "staging_songs"]
# For the facts ROLLUP_ROW_COUNTS counts: the field of RowsWritten that keeps the rows the
# batch adds to them (the rollups get them only after the transforms).
ROWS_ADDED_BY = {"songplays": "plays", "time": "times", "app_events": "events"}
# PostgreSQL only, one statement per ANALYZE step (analyze_due, below, fills {rows_now}: each
# table's name and the rows it holds now, as the batch counts them; %(threshold)s:
# ANALYZE_THRESHOLD): the tables whose rows differ by the threshold or more from reltuples,
# the count the last ANALYZE recorded (growth since then, over all batches, as Redshift
# counts it), or of which this transaction updated or deleted that share. reltuples is
# never trusted alone: a VACUUM of another process rewrites it (after a killed load it says
# 0 for a table whose pages the rerun fills), and 0 or -1 (no statistics) always means
# ANALYZE. Neither relpages (the rerun's rows fit in the killed load's pages) nor the
# cumulative counters (they count the rows a batch inserted before its own ANALYZE) can serve.
_ANALYZE_DUE = """
select counted.table_name
from ({rows_now}) counted
join pg_class c on c.oid = to_regclass(counted.table_name)
where c.reltuples <= 0
   or abs(counted.row_count - c.reltuples) >= %(threshold)s * c.reltuples
   or pg_stat_get_xact_tuples_updated(c.oid) + pg_stat_get_xact_tuples_deleted(c.oid) >= %(threshold)s * c.reltuples
"""

# --- rollups of what the batch added ------------------------------------------------------
# A batch's rollup rows count the facts' rows it wrote (its batch_id, in its window), by the
# keys the report groups on; the report sums over batches. A batch that replaced a changed
# file instead empties the rollups and counts every row of the facts once, as its own: the
# rows the earlier versions fed are gone from the facts, and min/max parts (a session's first
# and last event) cannot be taken back by a difference. So the rollups always equal one full
# load's. {rollup_rows} is the condition on the facts' rows (the batch's, or every row).
_ROLLUPS = {
    "plays_by_user_day": """
insert into plays_by_user_day (batch_id, day, user_id, level, location, user_agent, plays)
select %(batch_id)s, cast(start_time as date), user_id, level, location, user_agent, count(*)
from songplays
where {rollup_rows}
group by cast(start_time as date), user_id, level, location, user_agent
""",
    "plays_by_hour": """
insert into plays_by_hour (batch_id, hour_start, plays)
select %(batch_id)s, date_trunc('hour', start_time), count(*)
from songplays
where {rollup_rows}
group by date_trunc('hour', start_time)
""",
    "plays_by_song": """
insert into plays_by_song (batch_id, song_title, artist_name, plays)
select %(batch_id)s, song_title, artist_name, count(*)
from songplays
where {rollup_rows}
group by song_title, artist_name
""",
    "events_by_user_day": """
insert into events_by_user_day (batch_id, day, user_id, events, plays)
select %(batch_id)s, cast(start_time as date), user_id, count(*), sum(case when page = 'NextSong' then 1 else 0 end)
from app_events
where {rollup_rows}
group by cast(start_time as date), user_id
""",
    # The session's events, and beside them its plays, for when each ended (a play is one of
    # the events, at the same time and level: the plays' rows move no bound or level). A
    # duration counts between 0 and a day: a logged length of ±1e308 seconds would overflow.
    "session_parts": """
insert into session_parts (batch_id, user_id, session_id, first_at, last_at, events, songs,
                           opening_level, any_level, played_until)
select %(batch_id)s, user_id, session_id, min(start_time), max(start_time), sum(counted),
       sum(case when page = 'NextSong' then counted else 0 end),
       min(case when item_in_session = 0 then level end), max(level), max(ended_at)
from (
    select user_id, session_id, start_time, page, item_in_session, level, 1 as counted,
           cast(null as timestamp) as ended_at
    from app_events
    where {rollup_rows}
    union all
    select user_id, session_id, start_time, 'NextSong', item_in_session, level, 0,
           date_trunc('second', start_time)
               + greatest(least(coalesce(song_duration, 0), {longest_play_s}), 0) * interval '1 second'
    from songplays
    where {rollup_rows}
) events
group by user_id, session_id
""",
    "matched_plays_by_day": """
insert into matched_plays_by_day (batch_id, day, song_id, artist_id, plays)
select %(batch_id)s, cast(start_time as date), song_id, artist_id, count(*)
from songplays
where {rollup_rows} and song_id is not null
group by cast(start_time as date), song_id, artist_id
""",
}
# The rows a batch counts into the rollups (its own), or, after a replacement, every row.
rollup_inserts = [
    Step(f"{rollup}: add the batch", sql.replace("{rollup_rows}", "{batch_rows}"), needs=("events", "no change"))
    for rollup, sql in _ROLLUPS.items()
]
rollup_recomputes = [
    step
    for rollup, sql in _ROLLUPS.items()
    for step in (Step(f"{rollup}: empty, to count again", f"delete from {rollup}", needs="changed"),
                 Step(f"{rollup}: count every row", sql.replace("{rollup_rows}", "1 = 1"), needs="changed"))
]

# The older plays the late-song update is about to match, by day and song (afterwards they
# cannot be told from plays matched before).
matched_plays_by_day_late_insert = """
insert into matched_plays_by_day (batch_id, day, song_id, artist_id, plays)
select %(batch_id)s, cast(songplays.start_time as date), catalog.song_id, catalog.artist_id, count(*)
from songplays
join ({catalog_match}) catalog
  on {songplays_match_catalog}
where songplays.song_id is null
group by cast(songplays.start_time as date), catalog.song_id, catalog.artist_id
"""

# batch_totals: the rows the batch added to time (%(times)s, the insert's count), and the
# plays it matched to the catalog: its new plays that matched, and older ones a late song
# matched (%(late_matches)s, the update's count; a batch that undid a match counts again).
time_rows_added_insert = """
insert into batch_totals (batch_id, measure, row_count) values (%(batch_id)s, 'time rows', %(times)s)
"""

matched_plays_added_insert = """
insert into batch_totals (batch_id, measure, row_count)
select %(batch_id)s, 'matched plays', count(*) + %(late_matches)s
from songplays
where {batch_rows} and song_id is not null
"""

# After a replacement: the totals of time rows and matched plays, counted whole, as the
# batch's.
batch_totals_recompute = [
    "delete from batch_totals",
    "insert into batch_totals (batch_id, measure, row_count) "
    "select %(batch_id)s, 'time rows', count(*) from time",
    "insert into batch_totals (batch_id, measure, row_count) "
    "select %(batch_id)s, 'matched plays', count(*) from songplays where song_id is not null",
]

# Run in this order after staging.
transform_steps = [
    _analyze("staging_events", "staging_songs"),
    Step("batch: time window of the staged events", batch_window_create),
    Step("batch: events of the changed files", batch_replaced_create, needs="changed"),
    Step("songplays: remove the changed files' plays", songplays_replaced_delete, needs="changed"),
    Step("app_events: remove the changed files' events", app_events_replaced_delete, needs="changed"),
    Step("artists: remove those the staged songs touch", artist_table_delete, needs="songs"),
    Step("song_catalog: remove replaced", song_catalog_delete, needs="songs"),
    Step("song_catalog: insert", song_catalog_insert, needs="songs"),
    Step("songs: remove replaced", song_table_delete, needs="songs"),
    Step("songs: insert", song_table_insert, needs="songs"),
    _analyze("songs", needs="songs"),
    Step("artists: insert those without a row", artist_table_insert, needs="songs"),
    Step("batch: users", batch_users_create),  # the quality gate's scope of users, even when empty
    Step("batch: users whose level history extends", batch_level_users_create, needs="events"),
    Step("batch: users of the changed files' events", batch_level_users_replaced_insert, needs="changed"),
    Step("batch: users of the changed files' events rebuild their history", batch_level_users_replaced_update,
         needs="changed"),
    Step("users: remove superseded", user_table_delete, needs="events"),
    Step("users: insert", user_table_insert, needs="events"),
    _analyze("users", needs="events"),
    Step("songplays: unmatch the plays of staged songs", songplays_unmatch_staged_songs_update, counts="unmatched",
         needs="songs"),
    Step("songplays: unmatch the plays with staged songs' names", songplays_unmatch_staged_names_update,
         counts="unmatched", needs="songs"),
    Step("matched_plays_by_day: add the late songs' matches", matched_plays_by_day_late_insert, needs="songs"),
    Step("songplays: match late songs", songplay_late_match_update, counts="late_matches", needs="songs"),
    Step("batch: times of the plays written", batch_written_times_create),
    Step("songplays: insert new plays", songplay_table_insert, counts="plays", needs="events"),
    _analyze("songplays", needs="events"),
    Step("time: insert", time_table_insert, counts="times", needs="events"),
    Step("time: remove the times no play has any more", time_replaced_delete, needs="changed"),
    _analyze("time", needs="events"),
    Step("app_events: insert new events", app_events_insert, counts="events", needs="events"),
    _analyze("app_events", needs="events"),
    Step("users: latest event after the changed files", users_replaced_update, needs="changed"),
    Step("users: remove those with no event left", users_replaced_delete, needs="changed"),
    Step("batch: current level stretches of the extending users", batch_open_stretches_create, needs="events"),
    Step("user_levels: remove recomputed stretches", user_levels_delete, needs="events"),
    Step("user_levels: insert", user_levels_insert, needs="events"),
    _analyze("user_levels", needs="events"),
]

# After the transforms: the rollups and the batch's totals, one set or the other.
totals_steps = [
    *rollup_inserts,
    Step("batch_totals: time rows", time_rows_added_insert, needs=("events", "no change")),
    Step("batch_totals: matched plays", matched_plays_added_insert, needs="no change"),
    *rollup_recomputes,
    *(Step("batch_totals: count again", sql, needs="changed") for sql in batch_totals_recompute),
    # The report reads the rollups right after a load: without statistics PostgreSQL's
    # planner guessed a handful of rows and looped (upgrade_engagement 310 s instead of 1.4 s
    # on the 10M warehouse, until autovacuum came by). Same rule as every ANALYZE here.
    _analyze(*(table for table in ROLLUP_TABLES if table != "batch_totals")),  # that one: two rows a batch
]

replaced_events_count = "select count(*) from batch_replaced"

# --- the run summary's counts ---------------------------------------------------------------
row_count = "select count(*) from {table}"


# The largest facts are counted from their rollups (a fraction of their size; the full
# checks prove the two agree).
ROLLUP_ROW_COUNTS = {
    "songplays": "select cast(coalesce(sum(plays), 0) as bigint) from plays_by_song",
    "app_events": "select cast(coalesce(sum(events), 0) as bigint) from events_by_user_day",
    "time": "select cast(coalesce(sum(row_count), 0) as bigint) from batch_totals where measure = 'time rows'",
}

# The rows a table holds at this point of the batch: a fact's rollups count its earlier rows
# (a fraction of its size), plus %(rows_added)s, this batch's insert; any other table is
# counted.
def _rows_now(table: str) -> str:
    rows = (f"({ROLLUP_ROW_COUNTS[table]}) + %(rows_added)s" if table in ROLLUP_ROW_COUNTS
            else f"(select count(*) from {table})")
    return f"select cast('{table}' as varchar(64)) as table_name, {rows} as row_count"


# Which tables of an ANALYZE step are due (see _ANALYZE_DUE), for each step that asks: those
# of the tables a batch empties or creates are always due. A fact is analyzed alone: the rows
# the batch adds are those of one fact.
_ANALYZE_STEPS = [step.analyze for step in [*transform_steps, *totals_steps] if step.analyze]
if any(len(tables) > 1 and set(tables) & ROWS_ADDED_BY.keys() for tables in _ANALYZE_STEPS):
    raise ValueError("a fact's ANALYZE step names no other table")
analyze_due = {tables: _ANALYZE_DUE.format(rows_now="\n    union all\n    ".join(map(_rows_now, tables)))
               for tables in _ANALYZE_STEPS if not set(tables) & set(REWRITTEN_EACH_BATCH)}

songplays_matched = ("select cast(coalesce(sum(row_count), 0) as bigint) from batch_totals "
                     "where measure = 'matched plays'")

# Plays of this batch that match the catalog under a repaired name: staged with a title or an
# artist name that text_repairs repairs.
batch_plays_recovered_by_repair = """
select count(*)
from songplays
where {batch_rows} and song_id is not null
  and songplay_id in (select {staged_event_id} from staging_events
                      where song in (select original from text_repairs)
                         or artist in (select original from text_repairs))
"""
