-- ===== python create_tables.py --dry-run
-- Dry run on redshift://sparkify_etl:***@sparkify-dwh.c0ffee123abc.us-west-2.redshift.amazonaws.com:5439/sparkify: the statements a run sends, in order.
-- Nothing was executed. Secrets are masked as ***.
select table_name from information_schema.tables where table_schema = current_schema();
select distinct dependent.relname, source.relname
from pg_depend d
join pg_rewrite r on r.oid = d.objid
join pg_class dependent on dependent.oid = r.ev_class
join pg_class source on source.oid = d.refobjid
join pg_namespace n on n.oid = source.relnamespace
where n.nspname = current_schema() and dependent.oid <> source.oid
order by 1, 2;
drop view if exists plays;
drop view if exists load_summary;
drop view if exists load_error_reasons;
drop view if exists schema_changes;
drop view if exists source_files;
drop table if exists batch_totals;
drop table if exists matched_plays_by_day;
drop table if exists session_parts;
drop table if exists events_by_user_day;
drop table if exists plays_by_song;
drop table if exists plays_by_hour;
drop table if exists plays_by_user_day;
drop table if exists user_levels;
drop table if exists app_events;
drop table if exists songplays;
drop table if exists time;
drop table if exists songs;
drop table if exists artists;
drop table if exists users;
drop table if exists text_repairs;
drop table if exists song_catalog;
drop table if exists schema_drift;
drop table if exists load_errors;
drop table if exists loaded_objects;
drop table if exists etl_batches;
drop table if exists etl_lock;
drop table if exists staging_songs;
drop table if exists staging_events;
create table staging_events (
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
) diststyle even;
create table staging_songs (
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
) diststyle even;
create table if not exists etl_lock (
    purpose varchar(64) not null
) diststyle all;
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
) diststyle all;
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
) diststyle all;
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
) diststyle even;
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
) diststyle even;
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
) diststyle all;
create table if not exists text_repairs (
    original varchar(1024) not null primary key,
    repaired varchar(1024) not null
) diststyle all;
create table if not exists users (
    user_id       integer not null primary key,
    first_name    varchar(256),
    last_name     varchar(256),
    gender        varchar(16),
    level         varchar(16),
    last_seen_at  timestamp not null,
    registered_at timestamp,
    batch_id      integer not null
) diststyle all;
create table if not exists artists (
    artist_id varchar(32) not null primary key,
    name      varchar(1024),
    location  varchar(1024),
    latitude  double precision,
    longitude double precision,
    batch_id  integer not null
) diststyle all;
create table if not exists songs (
    song_id     varchar(32) not null primary key,
    title       varchar(1024),
    artist_id   varchar(32),
    artist_name varchar(1024),
    year        integer,
    duration    double precision,
    batch_id    integer not null,
    foreign key (artist_id) references artists (artist_id)
) diststyle all;
create table if not exists time (
    start_time timestamp not null,
    hour       smallint not null,
    day        smallint not null,
    week       smallint not null,
    month      smallint not null,
    year       smallint not null,
    weekday    smallint not null,
    batch_id   integer not null,
    primary key (start_time)
) diststyle all sortkey (start_time);
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
    object_id       integer not null,
    primary key (songplay_id),
    foreign key (user_id) references users (user_id),
    foreign key (song_id) references songs (song_id),
    foreign key (artist_id) references artists (artist_id),
    foreign key (start_time) references time (start_time)
) diststyle key distkey (user_id) compound sortkey (start_time);
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
    object_id       integer not null,
    primary key (event_id),
    foreign key (user_id) references users (user_id)
) diststyle key distkey (user_id) compound sortkey (start_time);
create table if not exists user_levels (
    user_id    integer not null,
    level      varchar(16) not null,
    valid_from timestamp not null,
    valid_to   timestamp,
    batch_id   integer not null,
    primary key (user_id, valid_from),
    foreign key (user_id) references users (user_id)
) diststyle all;
create table if not exists plays_by_user_day (
    batch_id   integer not null,
    day        date not null,
    user_id    integer,
    level      varchar(16),
    location   varchar(1024),
    user_agent varchar(1024),
    plays      bigint not null
) diststyle even;
create table if not exists plays_by_hour (
    batch_id   integer not null,
    hour_start timestamp not null,
    plays      bigint not null,
    primary key (batch_id, hour_start)
) diststyle even;
create table if not exists plays_by_song (
    batch_id    integer not null,
    song_title  varchar(1024),
    artist_name varchar(1024),
    plays       bigint not null
) diststyle even;
create table if not exists events_by_user_day (
    batch_id integer not null,
    day      date not null,
    user_id  integer,
    events   bigint not null,
    plays    bigint not null
) diststyle even;
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
) diststyle even;
create table if not exists matched_plays_by_day (
    batch_id  integer not null,
    day       date not null,
    song_id   varchar(32) not null,
    artist_id varchar(32),
    plays     bigint not null
) diststyle even;
create table if not exists batch_totals (
    batch_id  integer not null,
    measure   varchar(32) not null,
    row_count bigint not null,
    primary key (batch_id, measure)
) diststyle even;
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
left join artists a on a.artist_id = p.artist_id;
create view load_summary as
select
    (select count(*) from etl_batches where outcome = 'published') as batches_published,
    (select count(*) from etl_batches where outcome = 'failed') as batches_failed,
    (select max(finished_at) from etl_batches where outcome = 'published') as last_load_finished,
    (select count(*) from loaded_objects) as source_files,
    (select count(*) from load_errors where disposition = 'rejected') as records_rejected,
    (select count(*) from load_errors where disposition = 'replaced') as records_with_replaced_characters,
    (select count(*) from text_repairs) as names_repaired;
create view load_error_reasons as
select table_name, disposition, reason, count(*) as records, max(logged_at) as last_seen
from load_errors
group by table_name, disposition, reason;
create view schema_changes as
select table_name, change_kind, field_path, json_type, expected, count(distinct source) as files,
       sum(records) as records, min(seen_at) as first_seen, max(seen_at) as last_seen
from schema_drift
where change_kind <> 'baseline'
group by table_name, change_kind, field_path, json_type, expected;
create view source_files as
select o.object_id, o.table_name as staging_table, o.url as source_file, o.batch_id,
       b.finished_at as loaded_at, o.row_count, o.error_count
from loaded_objects o
join etl_batches b on b.batch_id = o.batch_id;
insert into etl_lock (purpose)
select 'etl.py takes this table''s lock for the length of a load'
where not exists (select 1 from etl_lock);
comment on table staging_events is 'Grain: one row per log line of the files the current batch loads. Staging: the event logs (log_data) as loaded, one column per JSON field renamed to snake_case. Each load stages into a temporary copy of this table, its session''s own, so this one stays empty. Empty or blank strings load as NULL.';
comment on column staging_events.artist is 'Artist name of the played song (field artist), as logged: may be double-encoded UTF-8; NULL when the page is not NextSong.';
comment on column staging_events.auth is 'Authentication state (field auth), e.g. Logged In, Logged Out.';
comment on column staging_events.first_name is 'User''s first name (field firstName); NULL for logged-out events.';
comment on column staging_events.gender is 'User''s gender, F or M (field gender); NULL for logged-out events.';
comment on column staging_events.item_in_session is 'Position of the event in its session, from 0 (field itemInSession).';
comment on column staging_events.last_name is 'User''s last name (field lastName); NULL for logged-out events.';
comment on column staging_events.length is 'Duration of the played song in seconds (field length); NULL when the page is not NextSong.';
comment on column staging_events.level is 'Subscription level at the event, free or paid (field level).';
comment on column staging_events.location is 'User''s metropolitan area and state, e.g. Phoenix-Mesa-Scottsdale, AZ (field location); NULL for logged-out events.';
comment on column staging_events.method is 'HTTP method of the request, GET or PUT (field method).';
comment on column staging_events.page is 'Page of the app the event is on, e.g. NextSong (a song play), Home, Submit Upgrade (field page).';
comment on column staging_events.registration is 'When the user signed up, epoch milliseconds (field registration); NULL for logged-out events.';
comment on column staging_events.session_id is 'Session id (field sessionId); unique per user only: session ids repeat across users.';
comment on column staging_events.song is 'Title of the played song (field song), as logged: may be double-encoded UTF-8; NULL when the page is not NextSong.';
comment on column staging_events.status is 'HTTP status of the request, e.g. 200 (field status).';
comment on column staging_events.ts is 'Time of the event, epoch milliseconds UTC (field ts).';
comment on column staging_events.user_agent is 'Browser user agent (field userAgent); NULL for logged-out events.';
comment on column staging_events.user_id is 'User id as logged, text (field userId); NULL for logged-out events (an empty userId).';
comment on column staging_events.object_id is 'The line''s file (loaded_objects.object_id), written by the loader, not read from the JSON.';
comment on table staging_songs is 'Grain: one row per song object of the files the current batch loads. Staging: the song catalog (song_data) as loaded, column names equal to the JSON keys. Each load stages into a temporary copy of this table, its session''s own, so this one stays empty. Empty or blank strings load as NULL.';
comment on column staging_songs.num_songs is 'Songs in the source object (always 1 in the dataset).';
comment on column staging_songs.artist_id is 'Artist id (key artist_id), e.g. ARJIE2Y1187B994AB7.';
comment on column staging_songs.artist_latitude is 'Artist''s latitude in degrees (key artist_latitude); NULL when unknown.';
comment on column staging_songs.artist_longitude is 'Artist''s longitude in degrees (key artist_longitude); NULL when unknown.';
comment on column staging_songs.artist_location is 'Artist''s location as free text (key artist_location); NULL when empty.';
comment on column staging_songs.artist_name is 'Name the song is credited to (key artist_name).';
comment on column staging_songs.song_id is 'Song id (key song_id), e.g. SOUPIRU12A6D4FA1E1; never NULL.';
comment on column staging_songs.title is 'Song title (key title).';
comment on column staging_songs.duration is 'Song duration in seconds (key duration).';
comment on column staging_songs.year is 'Release year (key year); 0 when unknown.';
comment on table etl_lock is 'Grain: a single row (the load lock). Bookkeeping: etl.py locks this table for the length of a load, so two loads never run at once; nobody reads it, so the lock never blocks a reader.';
comment on column etl_lock.purpose is 'What the table is for, in words.';
comment on table etl_batches is 'Grain: one row per ETL run that had something to load. Bookkeeping: what the run loaded and how it ended; a failed batch changed nothing else.';
comment on column etl_batches.batch_id is 'Batch number, 1, 2, ... in run order.';
comment on column etl_batches.started_at is 'When the run started, UTC.';
comment on column etl_batches.finished_at is 'When the run published or failed, UTC.';
comment on column etl_batches.outcome is 'published, or failed (the gate or too many rejected records stopped it).';
comment on column etl_batches.new_objects is 'Source files that were new or changed since last loaded.';
comment on column etl_batches.staged_rows is 'Rows staged from those files; 0 for a failed batch.';
comment on column etl_batches.rejected is 'Source records rejected (see load_errors).';
comment on column etl_batches.checks_passed is 'Quality checks passed; 0 for a failed batch.';
comment on column etl_batches.message is 'Why the batch failed; NULL when published.';
comment on table loaded_objects is 'Grain: one row per source file in the warehouse, by staging table and key. Bookkeeping: the version last loaded; a file whose size or version differs is loaded again.';
comment on column loaded_objects.object_id is 'The file''s key, the same for every version of it: the facts'' rows keep it (songplays.object_id, app_events.object_id).';
comment on column loaded_objects.table_name is 'Staging table the file loads into: staging_events or staging_songs.';
comment on column loaded_objects.object_key is 'Path of the file under its prefix (LOG_DATA or SONG_DATA).';
comment on column loaded_objects.url is 'Full location of the file: an s3:// URL or a local path.';
comment on column loaded_objects.size is 'File size in bytes when loaded.';
comment on column loaded_objects.version is 'File version when loaded: the S3 ETag, or a local file''s modification time in nanoseconds since the epoch.';
comment on column loaded_objects.batch_id is 'The batch that last loaded the file (etl_batches.batch_id).';
comment on column loaded_objects.row_count is 'Rows the file gave that batch (its rejected records not counted). Loaded by Redshift: lines, not rows (the lines COPY scanned in the file less its rejected records; a record over several lines counts each of them).';
comment on column loaded_objects.error_count is 'Records of the file that batch rejected.';
comment on table load_errors is 'Grain: one row per source record that was rejected, or loaded only after replacing invalid UTF-8. Bookkeeping: where it was, why, and what it looked like; kept for failed batches too.';
comment on column load_errors.batch_id is 'The batch that met the record (etl_batches.batch_id).';
comment on column load_errors.logged_at is 'When the batch recorded it, UTC.';
comment on column load_errors.disposition is 'rejected (not loaded), or replaced (loaded with each invalid character replaced by ?). Redshift logs replaced rows only for the first 100 per slice of a COPY: there, more may have been replaced than are listed.';
comment on column load_errors.table_name is 'Staging table the record was loading into.';
comment on column load_errors.source is 'The file (URL or path) holding the record; for a staged row rejected after Redshift''s COPY, which does not say its file, the staging table and ''after COPY''.';
comment on column load_errors.line_number is 'Line of the record in the file, from 1; NULL when the whole file failed, or for a staged row rejected after COPY.';
comment on column load_errors.column_name is 'Column whose value failed; NULL when the record as a whole did.';
comment on column load_errors.reason is 'Why, in words.';
comment on column load_errors.raw_excerpt is 'The start of the record as it was in the file; for a staged row rejected after COPY, its key (userId, sessionId, itemInSession, ts); empty for a record Redshift''s COPY rejected (SYS_LOAD_ERROR_DETAIL keeps no raw line).';
comment on table schema_drift is 'Grain: one row per change in the shape of the source records a batch found, per source object: a new key, a vanished key, or a value of another JSON type; for a staging table''s first batch, its schema (one baseline row per key and type). Bookkeeping: the known schema is what published batches recorded; kept for failed batches too.';
comment on column schema_drift.batch_id is 'The batch that found it (etl_batches.batch_id).';
comment on column schema_drift.seen_at is 'When that batch saw it, UTC: the first-seen time of a change is its earliest row.';
comment on column schema_drift.table_name is 'Staging table the records were loading into.';
comment on column schema_drift.source is 'The file (URL or path) whose records changed; past 20 files for one change, one row says how many more.';
comment on column schema_drift.change_kind is 'new_key, vanished_key, type_change, refused_value (a value outside what the schema accepts, under the freeze contract), or baseline (the first batch''s schema).';
comment on column schema_drift.field_path is 'The key, as a path: a.b for a key of a nested object, a[] for an array''s elements.';
comment on column schema_drift.json_type is 'The JSON type found: string, number, boolean, object, array, null; absent for a vanished key (and for a baseline key some records lacked).';
comment on column schema_drift.expected is 'The types the known schema had for the key; NULL for a new key.';
comment on column schema_drift.records is 'Records of the file with the change (for a vanished key: without the key).';
comment on column schema_drift.line_number is 'First line of the file with the change, from 1.';
comment on column schema_drift.example is 'The first value found, as JSON; NULL for a vanished key.';
comment on column schema_drift.source_version is 'The file''s version the change was seen in (as in loaded_objects); a file a batch failed under the freeze contract is held back while this is its version.';
comment on table song_catalog is 'Grain: one row per song_id, the version of the latest file that had it. Bookkeeping: the song catalog as loaded, kept so a later batch can recompute songs and artists from every song.';
comment on column song_catalog.song_id is 'Song id (staging_songs.song_id).';
comment on column song_catalog.title is 'Song title.';
comment on column song_catalog.artist_id is 'Artist id the song is credited to.';
comment on column song_catalog.artist_name is 'Name the song is credited to.';
comment on column song_catalog.artist_location is 'Artist''s location as free text; NULL when empty.';
comment on column song_catalog.artist_latitude is 'Artist''s latitude in degrees; NULL when unknown.';
comment on column song_catalog.artist_longitude is 'Artist''s longitude in degrees; NULL when unknown.';
comment on column song_catalog.duration is 'Song duration in seconds.';
comment on column song_catalog.year is 'Release year as the file gives it; 0 when unknown.';
comment on column song_catalog.batch_id is 'The ETL batch that last wrote the row (etl_batches.batch_id).';
comment on table text_repairs is 'Grain: one row per event text value (song title or artist name) that was double-encoded UTF-8. Bookkeeping: filled by the toolkit after staging; the transforms use the repaired text.';
comment on column text_repairs.original is 'The text as logged: UTF-8 that was read as Latin-1 and encoded again, twice.';
comment on column text_repairs.repaired is 'The text it stands for, decoded back to the original UTF-8.';
comment on table users is 'Grain: one row per user (a non-empty userId in any event). Dimension: the attributes of the user''s latest event; for the level at a given time use user_levels, for the level of a play songplays.level.';
comment on column users.user_id is 'User id (the events'' userId, as an integer).';
comment on column users.first_name is 'First name at the latest event.';
comment on column users.last_name is 'Last name at the latest event.';
comment on column users.gender is 'Gender, F or M, at the latest event.';
comment on column users.level is 'Subscription level at the latest event: free or paid.';
comment on column users.last_seen_at is 'Time of the user''s latest event, UTC.';
comment on column users.registered_at is 'When the user signed up, UTC (the events'' registration, epoch milliseconds); NULL when the events give none.';
comment on column users.batch_id is 'The ETL batch that last wrote the row (etl_batches.batch_id).';
comment on table artists is 'Grain: one row per artist_id in the song catalog. Dimension: an artist credited under several spellings takes the spelling on most of its songs (ties: the alphabetically first), and the location of a song carrying it, preferring one with coordinates.';
comment on column artists.artist_id is 'Artist id (song_data''s artist_id).';
comment on column artists.name is 'Artist name (the chosen spelling).';
comment on column artists.location is 'Location as free text; NULL when the catalog gives none.';
comment on column artists.latitude is 'Latitude in degrees; NULL when the catalog gives none.';
comment on column artists.longitude is 'Longitude in degrees; NULL when the catalog gives none.';
comment on column artists.batch_id is 'The ETL batch that last wrote the row (etl_batches.batch_id).';
comment on table songs is 'Grain: one row per song_id in the song catalog. Dimension: plays are matched to it on title, artist_name and duration.';
comment on column songs.song_id is 'Song id (song_data''s song_id).';
comment on column songs.title is 'Song title.';
comment on column songs.artist_id is 'The artist the song is credited to (artists.artist_id).';
comment on column songs.artist_name is 'Name the song is credited to, which plays are matched on (may differ from artists.name).';
comment on column songs.year is 'Release year; NULL where the catalog says 0 (unknown).';
comment on column songs.duration is 'Song duration in seconds.';
comment on column songs.batch_id is 'The ETL batch that last wrote the row (etl_batches.batch_id).';
comment on table time is 'Grain: one row per distinct start_time of a song play, to the millisecond. Dimension: the parts of that time, all in UTC.';
comment on column time.start_time is 'Time of the play, UTC, millisecond precision (songplays.start_time).';
comment on column time.hour is 'Hour of the day, 0-23.';
comment on column time.day is 'Day of the month, 1-31.';
comment on column time.week is 'ISO week number, 1-53, with no ISO year beside it: 2018-12-31 is in week 1. Group weeks by date_trunc(''week'', start_time) (the Monday), which keeps the year.';
comment on column time.month is 'Month, 1-12.';
comment on column time.year is 'Year, e.g. 2018.';
comment on column time.weekday is 'Day of the week: 0 = Sunday ... 6 = Saturday (PostgreSQL''s and Redshift''s dow; not ISO''s 1 = Monday ... 7 = Sunday, nor Python''s 0 = Monday).';
comment on column time.batch_id is 'The ETL batch that last wrote the row (etl_batches.batch_id).';
comment on table songplays is 'Grain: one row per song play, i.e. per NextSong event, identified by (userId, sessionId, itemInSession, ts). Fact: the play''s own title, artist name and duration stay on the row, so a play counts whether or not it matched the catalog.';
comment on column songplays.songplay_id is 'MD5 of the event key (userId|sessionId|itemInSession|ts), 32 hex digits: a reloaded event maps to the same row. Equals app_events.event_id.';
comment on column songplays.start_time is 'Time of the play, UTC, millisecond precision (the event''s ts).';
comment on column songplays.user_id is 'The user who played (users.user_id).';
comment on column songplays.level is 'The user''s subscription level at the play: free or paid.';
comment on column songplays.song_id is 'The catalog''s song with the play''s title, artist name and duration (songs.song_id); NULL when the catalog has none (set when the song arrives).';
comment on column songplays.artist_id is 'That song''s artist (artists.artist_id); NULL when the play matched no song.';
comment on column songplays.session_id is 'Session id; unique per user only.';
comment on column songplays.item_in_session is 'Position of the event in its session, from 0.';
comment on column songplays.location is 'User''s metropolitan area and state at the play.';
comment on column songplays.user_agent is 'Browser user agent at the play, as logged: most values keep the double quotes around them ("Mozilla/5.0 ..."); trim them (btrim(user_agent, ''"'')) before matching the start.';
comment on column songplays.song_title is 'Song title as played (the event''s song, double-encoded UTF-8 repaired).';
comment on column songplays.artist_name is 'Artist name as played (the event''s artist, double-encoded UTF-8 repaired).';
comment on column songplays.song_duration is 'Song duration in seconds as played (the event''s length).';
comment on column songplays.batch_id is 'The ETL batch that added the row (etl_batches.batch_id).';
comment on column songplays.object_id is 'The source file the row came from (loaded_objects.object_id; the view source_files names it and when it was loaded).';
comment on table app_events is 'Grain: one row per app event of any page (NextSong, Home, Submit Upgrade, ...), identified like songplays by (userId, sessionId, itemInSession, ts). Fact: daily active users, whole sessions and level changes.';
comment on column app_events.event_id is 'MD5 of the event key (userId|sessionId|itemInSession|ts), 32 hex digits; equals songplays.songplay_id for a NextSong event.';
comment on column app_events.start_time is 'Time of the event, UTC, millisecond precision (the event''s ts).';
comment on column app_events.user_id is 'The user (users.user_id); NULL for logged-out events.';
comment on column app_events.level is 'The subscription level at the event: free or paid.';
comment on column app_events.session_id is 'Session id; unique per user only.';
comment on column app_events.item_in_session is 'Position of the event in its session, from 0.';
comment on column app_events.page is 'Page of the app, e.g. NextSong, Home, Submit Upgrade.';
comment on column app_events.auth is 'Authentication state, e.g. Logged In, Logged Out.';
comment on column app_events.status is 'HTTP status of the request, e.g. 200.';
comment on column app_events.batch_id is 'The ETL batch that added the row (etl_batches.batch_id).';
comment on column app_events.object_id is 'The source file the row came from (loaded_objects.object_id; the view source_files names it and when it was loaded).';
comment on table user_levels is 'Grain: one row per stretch of time a user stayed on one level (type-2 history). History: brought up to date for the users of each batch from their app_events.';
comment on column user_levels.user_id is 'The user (users.user_id).';
comment on column user_levels.level is 'Subscription level during the stretch: free or paid.';
comment on column user_levels.valid_from is 'First event on this level, UTC (inclusive).';
comment on column user_levels.valid_to is 'First event on the next level, UTC (exclusive); NULL while the stretch lasts.';
comment on column user_levels.batch_id is 'The ETL batch that last wrote the row (etl_batches.batch_id).';
comment on table plays_by_user_day is 'Grain: one row per batch, UTC day, user and the user''s level, location and user agent at the plays. Summary of the plays a batch added, for the insights report. One set of rows per batch (a batch that replaced a changed source file counts every row again, as its own): sum over batches for totals.';
comment on column plays_by_user_day.batch_id is 'The ETL batch that added the row (etl_batches.batch_id).';
comment on column plays_by_user_day.day is 'UTC date of the plays.';
comment on column plays_by_user_day.user_id is 'The user (users.user_id).';
comment on column plays_by_user_day.level is 'Subscription level at the plays: free or paid.';
comment on column plays_by_user_day.location is 'User''s metropolitan area and state at the plays.';
comment on column plays_by_user_day.user_agent is 'Browser user agent at the plays.';
comment on column plays_by_user_day.plays is 'Song plays the batch added for this group.';
comment on table plays_by_hour is 'Grain: one row per batch and UTC hour. Summary of the plays a batch added, for the insights report. One set of rows per batch (a batch that replaced a changed source file counts every row again, as its own): sum over batches for totals.';
comment on column plays_by_hour.batch_id is 'The ETL batch that added the row (etl_batches.batch_id).';
comment on column plays_by_hour.hour_start is 'Start of the hour, UTC.';
comment on column plays_by_hour.plays is 'Song plays the batch added in that hour.';
comment on table plays_by_song is 'Grain: one row per batch and song as played (title and credited artist name, matched to the catalog or not). Summary of the plays a batch added, for the insights report. One set of rows per batch (a batch that replaced a changed source file counts every row again, as its own): sum over batches for totals.';
comment on column plays_by_song.batch_id is 'The ETL batch that added the row (etl_batches.batch_id).';
comment on column plays_by_song.song_title is 'Song title as played (songplays.song_title).';
comment on column plays_by_song.artist_name is 'Artist name as played (songplays.artist_name).';
comment on column plays_by_song.plays is 'Plays of that song the batch added.';
comment on table events_by_user_day is 'Grain: one row per batch, UTC day and user (or logged out). Summary of the app events a batch added, for daily active users. One set of rows per batch (a batch that replaced a changed source file counts every row again, as its own): sum over batches for totals.';
comment on column events_by_user_day.batch_id is 'The ETL batch that added the row (etl_batches.batch_id).';
comment on column events_by_user_day.day is 'UTC date of the events.';
comment on column events_by_user_day.user_id is 'The user (users.user_id); NULL for the logged-out events.';
comment on column events_by_user_day.events is 'App events the batch added.';
comment on column events_by_user_day.plays is 'Of those, song plays (NextSong events).';
comment on table session_parts is 'Grain: one row per batch and session (user and session id): the part of the session the batch added, as a session can span two days'' files. Summary for session length and depth: combine a session''s parts with min, max and sum. One set of rows per batch (a batch that replaced a changed source file counts every row again, as its own): sum over batches for totals.';
comment on column session_parts.batch_id is 'The ETL batch that added the row (etl_batches.batch_id).';
comment on column session_parts.user_id is 'The user (users.user_id); NULL for logged-out events.';
comment on column session_parts.session_id is 'Session id; unique per user only.';
comment on column session_parts.first_at is 'The part''s first event, UTC.';
comment on column session_parts.last_at is 'The part''s last event, UTC.';
comment on column session_parts.events is 'App events in the part.';
comment on column session_parts.songs is 'Song plays (NextSong events) in the part.';
comment on column session_parts.opening_level is 'Level at the session''s first event (item 0); NULL when item 0 is in another part.';
comment on column session_parts.any_level is 'paid if any event of the part was on the paid level, else free.';
comment on column session_parts.played_until is 'When the part''s last song ended, UTC: the latest end of its plays, each play''s start_time (to the second) plus its song_duration (counted from 0 to a day); NULL when the part has no play.';
comment on table matched_plays_by_day is 'Grain: one row per batch, UTC day and catalog song. Summary of the plays matched to the catalog: those a batch added that matched, and older ones a song that arrived in the batch matched (on the play''s own day). One set of rows per batch (a batch that replaced a changed source file counts every row again, as its own): sum over batches for totals.';
comment on column matched_plays_by_day.batch_id is 'The ETL batch that added the row (etl_batches.batch_id).';
comment on column matched_plays_by_day.day is 'UTC date of the plays.';
comment on column matched_plays_by_day.song_id is 'The song the plays matched (songs.song_id).';
comment on column matched_plays_by_day.artist_id is 'That song''s artist (artists.artist_id) when the plays matched it.';
comment on column matched_plays_by_day.plays is 'Plays matched.';
comment on table batch_totals is 'Grain: one row per batch and measure. Summary: what a batch added to time and to the plays matched to the catalog, so the run summary''s totals need no scan of the facts. One set of rows per batch (a batch that replaced a changed source file counts every row again, as its own): sum over batches for totals.';
comment on column batch_totals.batch_id is 'The ETL batch that added the row (etl_batches.batch_id).';
comment on column batch_totals.measure is 'time rows (rows added to time), or matched plays (plays the batch matched to the catalog: its own, and older plays a newly arrived song matched).';
comment on column batch_totals.row_count is 'The count.';
comment on view plays is 'Grain: one row per song play, like songplays. View for analysts: the song and artist as the catalog has them when the play matched it (in_catalog), else as the event had them, so top songs and top artists over it count every play.';
comment on column plays.songplay_id is 'The play (songplays.songplay_id).';
comment on column plays.start_time is 'Time of the play, UTC, millisecond precision.';
comment on column plays.user_id is 'The user who played (users.user_id).';
comment on column plays.level is 'The user''s subscription level at the play: free or paid.';
comment on column plays.session_id is 'Session id; unique per user only.';
comment on column plays.item_in_session is 'Position of the event in its session, from 0.';
comment on column plays.location is 'User''s metropolitan area and state at the play.';
comment on column plays.user_agent is 'Browser user agent at the play.';
comment on column plays.song_id is 'The matched song (songs.song_id); NULL when the play matched no song.';
comment on column plays.artist_id is 'The matched song''s artist (artists.artist_id); NULL when it matched none.';
comment on column plays.song_title is 'The catalog''s title when matched, else the title as played.';
comment on column plays.artist_name is 'The artist''s name in artists when matched, else the name as played: an artist whose catalog spelling differs from the events'' is split in two when grouped by this column; group by artist_id for matched plays, or use songplays.artist_name (always as played).';
comment on column plays.song_duration is 'Duration in seconds: the catalog''s when matched, else as played.';
comment on column plays.in_catalog is 'true when the play matched a song of the catalog.';
comment on view load_summary is 'Grain: one row for the whole warehouse. View for analysts (and the insights report): the loader''s bookkeeping as counts, over every load; the bookkeeping tables themselves stay the loader''s.';
comment on column load_summary.batches_published is 'ETL batches that published their data (etl_batches).';
comment on column load_summary.batches_failed is 'ETL batches that failed and changed nothing else.';
comment on column load_summary.last_load_finished is 'When the last published batch finished, UTC; NULL before the first.';
comment on column load_summary.source_files is 'Source files loaded (loaded_objects), each in its latest version.';
comment on column load_summary.records_rejected is 'Source records rejected by a load (load_errors), with their reasons.';
comment on column load_summary.records_with_replaced_characters is 'Records loaded after replacing invalid UTF-8 characters.';
comment on column load_summary.names_repaired is 'Distinct double-encoded names repaired (text_repairs).';
comment on view load_error_reasons is 'Grain: one row per staging table, disposition and reason of the records a load rejected or repaired. View for analysts (and the insights report): counts only, never a record''s text.';
comment on column load_error_reasons.table_name is 'The staging table the record was for.';
comment on column load_error_reasons.disposition is 'rejected (not loaded) or replaced (loaded with invalid characters replaced).';
comment on column load_error_reasons.reason is 'Why, as the load said it.';
comment on column load_error_reasons.records is 'How many records.';
comment on column load_error_reasons.last_seen is 'When the last of them was logged, UTC.';
comment on view schema_changes is 'Grain: one row per staging table, change, key and type of the schema drift the loads recorded (schema_drift without a first batch''s schema). View for analysts (and the insights report): counts only, never a value.';
comment on column schema_changes.table_name is 'The staging table the records were for.';
comment on column schema_changes.change_kind is 'new_key, vanished_key, type_change or refused_value.';
comment on column schema_changes.field_path is 'The key, as a path (a.b nested, a[] an array''s elements).';
comment on column schema_changes.json_type is 'The JSON type found (absent for a vanished key).';
comment on column schema_changes.expected is 'The types the known schema had for the key; NULL for a new key.';
comment on column schema_changes.files is 'Source files with the change.';
comment on column schema_changes.records is 'Records with the change.';
comment on column schema_changes.first_seen is 'When a batch first saw it, UTC.';
comment on column schema_changes.last_seen is 'When a batch last saw it, UTC.';
comment on view source_files is 'Grain: one row per source file in the warehouse. View: where a fact row came from and when it was loaded, joined on the row''s object_id: select p.*, f.source_file, f.loaded_at from songplays p join source_files f using (object_id).';
comment on column source_files.object_id is 'The file''s key (songplays.object_id, app_events.object_id).';
comment on column source_files.staging_table is 'staging_events (log files) or staging_songs (song files).';
comment on column source_files.source_file is 'Full location of the file: an s3:// URL or a local path.';
comment on column source_files.batch_id is 'The batch that loaded the file''s current version: the batch_id its rows carry.';
comment on column source_files.loaded_at is 'When that batch finished, UTC.';
comment on column source_files.row_count is 'Rows the file gave (see loaded_objects.row_count).';
comment on column source_files.error_count is 'Records of the file that batch rejected.';
commit;
select count(*) from svv_roles where role_name = 'sparkify_analyst';
select (select count(*) from pg_user where usename = current_user and usesuper)
     + (select count(*) from svv_system_privileges where system_privilege = 'CREATE ROLE');
create role sparkify_analyst;
commit;
select current_schema();
grant usage on schema public to role sparkify_analyst;
grant select on songplays, users, songs, artists, time, app_events, user_levels, plays_by_user_day, plays_by_hour, plays_by_song, events_by_user_day, session_parts, matched_plays_by_day, batch_totals, plays, load_summary, load_error_reasons, schema_changes, source_files to role sparkify_analyst;
commit;

-- ===== python etl.py --dry-run
-- Dry run on redshift://sparkify_etl:***@sparkify-dwh.c0ffee123abc.us-west-2.redshift.amazonaws.com:5439/sparkify: the statements a run sends, in order.
-- Nothing was executed. Secrets are masked as ***.
select pid, application_name, txn_owner, 'holding it' as state, txn_start, cast(null as varchar)
from (
    select t.pid, trim(c.application_name) as application_name, trim(t.txn_owner) as txn_owner, t.txn_start,
           row_number() over (partition by t.pid order by c.record_time desc) as newest
    from svv_transactions t
    left join sys_connection_log c
      on c.session_id = t.pid and c.record_time <= t.txn_start and trim(c.event) = 'initiating session'
    where t.lockable_object_type = 'relation' and t.granted and t.pid <> pg_backend_pid()
      and t.relation = (select oid from pg_class where relname = 'etl_lock'
                        and relnamespace = (select oid from pg_namespace where nspname = current_schema()))
) holders
where newest = 1
order by pid;
set statement_timeout to 60000;
-- load lock
lock table etl_lock;
reset statement_timeout;
select coalesce(max(batch_id), 0) + 1 from etl_batches;
select table_name, object_key, size, version, url, object_id from loaded_objects;
-- stage only the files that are new or changed since loaded_objects was written
create temp table staging_events (like staging_events);
create temp table staging_songs (like staging_songs);
-- read the first 64 KiB of s3://udacity-dend/log_data/<each new or changed file> (one ranged S3 GET) to find schema drift
-- write s3://sparkify-etl-work/manifests/batch-000001/staging_events-000000.manifest: a manifest of this batch's new files
-- copy staging_events: <key>
copy staging_events (artist, auth, first_name, gender, item_in_session, last_name, length, level, location, method, page, registration, session_id, song, status, ts, user_agent, user_id)
from 's3://sparkify-etl-work/manifests/batch-000001/staging_events-000000.manifest'
iam_role '***'
format as json 's3://udacity-dend/log_json_path.json'
manifest region 'us-west-2'
maxerror 100
acceptinvchars as '?' blanksasnull emptyasnull
compupdate off statupdate off;
select pg_last_copy_count();
select query_id, error_count, trim(status)
from sys_load_history
where session_id = pg_backend_pid() and trim(table_name) = 'staging_events'
order by query_id desc
limit 1;
select trim(file_name), line_number, trim(column_name), trim(error_message), cast(null as varchar)
from sys_load_error_detail
where query_id = :query_id
order by file_name, line_number;
select trim(file_name), line_number, trim(column_name), trim(raw_line)
from sys_copy_replacements
where query_id = :query_id
order by file_name, line_number;
select trim(file_name), sum(lines_scanned)
from sys_load_detail
where query_id = :query_id
group by trim(file_name);
-- staging_events: the object_id of the rows of <key>
update staging_events set object_id = :object_id where object_id is null;
-- read the first 64 KiB of s3://udacity-dend/song_data/<each new or changed file> (one ranged S3 GET) to find schema drift
-- write s3://sparkify-etl-work/manifests/batch-000001/staging_songs.manifest: a manifest of this batch's new files
-- copy staging_songs
copy staging_songs (num_songs, artist_id, artist_latitude, artist_longitude, artist_location, artist_name, song_id, title, duration, year)
from 's3://sparkify-etl-work/manifests/batch-000001/staging_songs.manifest'
iam_role '***'
format as json 'auto'
manifest region 'us-west-2'
maxerror 100
acceptinvchars as '?' blanksasnull emptyasnull
compupdate off statupdate off;
select pg_last_copy_count();
select query_id, error_count, trim(status)
from sys_load_history
where session_id = pg_backend_pid() and trim(table_name) = 'staging_songs'
order by query_id desc
limit 1;
select trim(file_name), line_number, trim(column_name), trim(error_message), cast(null as varchar)
from sys_load_error_detail
where query_id = :query_id
order by file_name, line_number;
select trim(file_name), line_number, trim(column_name), trim(raw_line)
from sys_copy_replacements
where query_id = :query_id
order by file_name, line_number;
select trim(file_name), sum(lines_scanned)
from sys_load_detail
where query_id = :query_id
group by trim(file_name);
-- staging_events: find values out of range
select
    case
        when user_id <> '' and (user_id ~ '^0|[^0-9]' or length(user_id) > 10 or (length(user_id) = 10 and user_id > '2147483647')) then 'user_id'
        when ts < 946684800000 or ts > cast(:latest_valid_ms as bigint) then 'ts'
        when registration < 946684800000 or registration > cast(:latest_valid_ms as bigint) then 'registration'
        when level <> '' and level not in ('free', 'paid') then 'level'
    end as column_name,
    user_id, session_id, item_in_session, ts, registration, level
from staging_events
where (user_id <> '' and (user_id ~ '^0|[^0-9]' or length(user_id) > 10 or (length(user_id) = 10 and user_id > '2147483647')))
   or (ts < 946684800000 or ts > cast(:latest_valid_ms as bigint))
   or (registration < 946684800000 or registration > cast(:latest_valid_ms as bigint))
   or (level <> '' and level not in ('free', 'paid'))
limit 100;
-- staging_events: remove rejected rows
delete from staging_events
where (user_id <> '' and (user_id ~ '^0|[^0-9]' or length(user_id) > 10 or (length(user_id) = 10 and user_id > '2147483647')))
   or (ts < 946684800000 or ts > cast(:latest_valid_ms as bigint))
   or (registration < 946684800000 or registration > cast(:latest_valid_ms as bigint))
   or (level <> '' and level not in ('free', 'paid'));
select distinct d.table_name, d.field_path, d.json_type
from schema_drift d
join etl_batches b on b.batch_id = d.batch_id
where b.outcome = 'published';
select distinct value from (
    select artist as value from staging_events where octet_length(artist) > length(artist)
    union
    select song as value from staging_events where octet_length(song) > length(song)
) candidates
where value not in (select original from text_repairs);
-- text repairs: one row per value found at run time
insert into text_repairs (original, repaired) values (:original, :repaired);
-- analyze staging_events
analyze staging_events;
-- analyze staging_songs
analyze staging_songs;
-- batch: time window of the staged events
create temp table batch_window as
select (select timestamp 'epoch' + (min(ts) / 1000) * interval '1 second' + mod(min(ts), 1000) * interval '1 millisecond' from staging_events) as start_time
union all
select (select timestamp 'epoch' + (max(ts) / 1000) * interval '1 second' + mod(max(ts), 1000) * interval '1 millisecond' from staging_events);
-- batch: events of the changed files [only when a loaded log file changed]
create temp table batch_replaced as
select event_id, start_time, user_id, page
from app_events
where object_id in (:changed_object_id);
-- songplays: remove the changed files' plays [only when a loaded log file changed]
delete from songplays where object_id in (:changed_object_id);
-- app_events: remove the changed files' events [only when a loaded log file changed]
delete from app_events where object_id in (:changed_object_id);
-- artists: remove those the staged songs touch [only when song files are staged]
delete from artists
where artist_id in (select artist_id from staging_songs)
   or artist_id in (select artist_id from song_catalog where song_id in (select song_id from staging_songs));
-- song_catalog: remove replaced [only when song files are staged]
delete from song_catalog where song_id in (select song_id from staging_songs);
-- song_catalog: insert [only when song files are staged]
insert into song_catalog (song_id, title, artist_id, artist_name, artist_location,
                          artist_latitude, artist_longitude, duration, year, batch_id)
select song_id, title, artist_id, artist_name, artist_location,
       artist_latitude, artist_longitude, duration, year, 1
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
where version = 1;
-- songs: remove replaced [only when song files are staged]
delete from songs where song_id in (select song_id from staging_songs);
-- songs: insert [only when song files are staged]
insert into songs (song_id, title, artist_id, artist_name, year, duration, batch_id)
select song_id, title, artist_id, artist_name, nullif(year, 0), duration, 1
from song_catalog
where song_id in (select song_id from staging_songs);
-- analyze songs [only when song files are staged]
analyze songs;
-- artists: insert those without a row [only when song files are staged]
insert into artists (artist_id, name, location, latitude, longitude, batch_id)
select artist_id, artist_name, artist_location, artist_latitude, artist_longitude, 1
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
where preference = 1;
-- batch: users
create temp table batch_users as
select user_id, first_name, last_name, gender, level, last_seen_at, registered_at
from (
    select
        cast(user_id as integer) as user_id,
        first_name,
        last_name,
        gender,
        level,
        timestamp 'epoch' + (ts / 1000) * interval '1 second' + mod(ts, 1000) * interval '1 millisecond' as last_seen_at,
        timestamp 'epoch' + (cast(registration as bigint) / 1000) * interval '1 second' + mod(cast(registration as bigint), 1000) * interval '1 millisecond' as registered_at,
        row_number() over (
            partition by user_id order by ts desc, session_id desc, item_in_session desc
        ) as recency
    from staging_events
    where user_id is not null and user_id <> ''
) latest
where recency = 1;
-- batch: users whose level history extends [only when log files are staged]
create temp table batch_level_users diststyle key distkey (user_id) as
select b.user_id,
       case when u.user_id is null or b.first_event_at > u.last_seen_at then 1 else 0 end as extends
from (
    select cast(user_id as integer) as user_id, timestamp 'epoch' + (min(ts) / 1000) * interval '1 second' + mod(min(ts), 1000) * interval '1 millisecond' as first_event_at
    from staging_events
    where user_id is not null and user_id <> ''
    group by user_id
) b
left join users u on u.user_id = b.user_id;
-- batch: users of the changed files' events [only when a loaded log file changed]
insert into batch_level_users (user_id, extends)
select distinct user_id, 0
from batch_replaced
where user_id is not null and user_id not in (select user_id from batch_level_users);
-- batch: users of the changed files' events rebuild their history [only when a loaded log file changed]
update batch_level_users set extends = 0
where user_id in (select user_id from batch_replaced);
-- users: remove superseded [only when log files are staged]
delete from users
using batch_users newer
where users.user_id = newer.user_id and newer.last_seen_at >= users.last_seen_at;
-- users: insert [only when log files are staged]
insert into users (user_id, first_name, last_name, gender, level, last_seen_at, registered_at, batch_id)
select b.user_id, b.first_name, b.last_name, b.gender, b.level, b.last_seen_at, b.registered_at, 1
from batch_users b
left join users existing on existing.user_id = b.user_id
where existing.user_id is null;
-- analyze users [only when log files are staged]
analyze users;
-- songplays: unmatch the plays of staged songs [only when song files are staged]
update songplays
set song_id = null, artist_id = null
where song_id in (select song_id from staging_songs);
-- songplays: unmatch the plays with staged songs' names [only when song files are staged]
update songplays
set song_id = null, artist_id = null
from (select distinct rtrim(title) as title_key, rtrim(artist_name) as artist_key, duration
      from staging_songs) staged
where songplays.song_id is not null
  and staged.title_key = rtrim(songplays.song_title)
  and staged.artist_key = rtrim(songplays.artist_name)
  and staged.duration = songplays.song_duration;
-- matched_plays_by_day: add the late songs' matches [only when song files are staged]
insert into matched_plays_by_day (batch_id, day, song_id, artist_id, plays)
select 1, cast(songplays.start_time as date), catalog.song_id, catalog.artist_id, count(*)
from songplays
join (
    select song_id, artist_id, title_key, artist_key, duration
    from (
        select
            song_id, artist_id, rtrim(title) as title_key, rtrim(artist_name) as artist_key, duration,
            row_number() over (partition by rtrim(title), rtrim(artist_name), duration order by song_id) as choice
        from songs
    ) candidates
    where choice = 1
) catalog
  on catalog.title_key = rtrim(songplays.song_title)
  and catalog.artist_key = rtrim(songplays.artist_name)
  and catalog.duration = songplays.song_duration
where songplays.song_id is null
group by cast(songplays.start_time as date), catalog.song_id, catalog.artist_id;
-- songplays: match late songs [only when song files are staged]
update songplays
set song_id = catalog.song_id, artist_id = catalog.artist_id
from (
    select song_id, artist_id, title_key, artist_key, duration
    from (
        select
            song_id, artist_id, rtrim(title) as title_key, rtrim(artist_name) as artist_key, duration,
            row_number() over (partition by rtrim(title), rtrim(artist_name), duration order by song_id) as choice
        from songs
    ) candidates
    where choice = 1
) catalog
where songplays.song_id is null
  and catalog.title_key = rtrim(songplays.song_title)
  and catalog.artist_key = rtrim(songplays.artist_name)
  and catalog.duration = songplays.song_duration;
-- batch: times of the plays written
create temp table batch_written_times as
select start_time from batch_window
union all
select min(start_time) from songplays where song_id in (select song_id from staging_songs)
union all
select max(start_time) from songplays where song_id in (select song_id from staging_songs);
-- songplays: insert new plays [only when log files are staged]
insert into songplays (songplay_id, start_time, user_id, level, song_id, artist_id,
                       session_id, item_in_session, location, user_agent,
                       song_title, artist_name, song_duration, batch_id, object_id)
select e.event_id, e.start_time, e.user_id, e.level, e.song_id, e.artist_id, e.session_id, e.item_in_session,
       e.location, e.user_agent, coalesce(e.repaired_title, e.song), coalesce(e.repaired_artist_name, e.artist),
       e.length, 1, e.object_id
from (
    select
        md5(coalesce(user_id, '') || '|' || cast(session_id as varchar) || '|' || cast(item_in_session as varchar) || '|' || cast(ts as varchar)) as event_id,
        timestamp 'epoch' + (ts / 1000) * interval '1 second' + mod(ts, 1000) * interval '1 millisecond' as start_time,
        cast(nullif(user_id, '') as integer) as user_id,
        level, session_id, item_in_session, page, auth, status, location, user_agent, song, artist, length, ts,
        object_id,
        repaired_title, repaired_artist_name, catalog.song_id, catalog.artist_id,
        row_number() over (
            partition by ts, staged.user_id, session_id, item_in_session
            order by page, song, level, status, object_id, catalog.song_id
        ) as copy_number
    from (
        select s.*, s.length as song_duration,
               repaired_song.repaired as repaired_title,
               repaired_artist.repaired as repaired_artist_name,
               coalesce(repaired_song.repaired, s.song) as song_title,
               coalesce(repaired_artist.repaired, s.artist) as artist_name
        from staging_events s
        left join text_repairs repaired_song on repaired_song.original = s.song and s.page = 'NextSong'
        left join text_repairs repaired_artist on repaired_artist.original = s.artist and s.page = 'NextSong'
    ) staged
    left join (
        select song_id, artist_id, rtrim(title) as title_key, rtrim(artist_name) as artist_key, duration
        from songs
) catalog
        on staged.page = 'NextSong'
       and catalog.title_key = rtrim(staged.song_title)
       and catalog.artist_key = rtrim(staged.artist_name)
       and catalog.duration = staged.song_duration
) e
left join (select songplay_id, user_id from songplays where start_time between (select min(start_time) from batch_window) and (select max(start_time) from batch_window)) existing
    on existing.songplay_id = e.event_id and existing.user_id = e.user_id
where e.copy_number = 1 and e.page = 'NextSong' and existing.songplay_id is null
  and (e.user_id is not null
       or e.event_id not in (select songplay_id from songplays where user_id is null and start_time between (select min(start_time) from batch_window) and (select max(start_time) from batch_window)))
order by e.ts;
-- analyze songplays [only when log files are staged]
analyze songplays;
-- time: insert [only when log files are staged]
insert into time (start_time, hour, day, week, month, year, weekday, batch_id)
select
    p.start_time,
    extract(hour from p.start_time),
    extract(day from p.start_time),
    extract(week from p.start_time),
    extract(month from p.start_time),
    extract(year from p.start_time),
    extract(dow from p.start_time),
    1
from (select distinct start_time from songplays where start_time between (select min(start_time) from batch_window) and (select max(start_time) from batch_window)) p
left join (select start_time from time where start_time between (select min(start_time) from batch_window) and (select max(start_time) from batch_window)) existing
    on existing.start_time = p.start_time
where existing.start_time is null
order by p.start_time;
-- time: remove the times no play has any more [only when a loaded log file changed]
delete from time
where start_time in (select start_time from batch_replaced where page = 'NextSong')
  and start_time not in (select start_time from songplays
                         where start_time in (select start_time from batch_replaced where page = 'NextSong'));
-- analyze time [only when log files are staged]
analyze time;
-- app_events: insert new events [only when log files are staged]
insert into app_events (event_id, start_time, user_id, level, session_id, item_in_session, page, auth, status,
                        batch_id, object_id)
select e.event_id, e.start_time, e.user_id, e.level, e.session_id, e.item_in_session, e.page, e.auth, e.status, 1, e.object_id
from (
    select
        md5(coalesce(user_id, '') || '|' || cast(session_id as varchar) || '|' || cast(item_in_session as varchar) || '|' || cast(ts as varchar)) as event_id,
        timestamp 'epoch' + (ts / 1000) * interval '1 second' + mod(ts, 1000) * interval '1 millisecond' as start_time,
        cast(nullif(user_id, '') as integer) as user_id,
        level, session_id, item_in_session, page, auth, status, location, user_agent, song, artist, length, ts,
        object_id,
        row_number() over (
            partition by ts, staged.user_id, session_id, item_in_session
            order by page, song, level, status, object_id
        ) as copy_number
    from staging_events staged
) e
left join (select event_id, user_id from app_events where start_time between (select min(start_time) from batch_window) and (select max(start_time) from batch_window)) existing
    on existing.event_id = e.event_id and existing.user_id = e.user_id
where e.copy_number = 1 and existing.event_id is null
  and (e.user_id is not null
       or e.event_id not in (select event_id from app_events where user_id is null and start_time between (select min(start_time) from batch_window) and (select max(start_time) from batch_window)))
order by e.ts;
-- analyze app_events [only when log files are staged]
analyze app_events;
-- users: latest event after the changed files [only when a loaded log file changed]
update users
set level = latest.level, last_seen_at = latest.start_time, batch_id = 1
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
  and (users.last_seen_at <> latest.start_time or users.level <> latest.level);
-- users: remove those with no event left [only when a loaded log file changed]
delete from users
where user_id in (select user_id from batch_replaced)
  and user_id not in (select user_id from app_events
                      where user_id is not null and user_id in (select user_id from batch_replaced));
-- batch: current level stretches of the extending users [only when log files are staged]
create temp table batch_open_stretches diststyle key distkey (user_id) as
select l.user_id, l.level, l.valid_from as start_time,
       cast(0 as bigint) as session_id, 0 as item_in_session
from user_levels l
join batch_level_users b on b.user_id = l.user_id and b.extends = 1
where l.valid_to is null;
-- user_levels: remove recomputed stretches [only when log files are staged]
delete from user_levels
using batch_level_users b
where user_levels.user_id = b.user_id and (b.extends = 0 or user_levels.valid_to is null);
-- user_levels: insert [only when log files are staged]
insert into user_levels (user_id, level, valid_from, valid_to, batch_id)
select user_id, level, valid_from,
       lead(valid_from) over (partition by user_id order by valid_from) as valid_to,
       1
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
            from (
        select user_id, level, start_time, session_id, item_in_session from batch_open_stretches
        union all
        select e.user_id, e.level, e.start_time, e.session_id, e.item_in_session
        from (select * from app_events where start_time between (select min(start_time) from batch_window) and (select max(start_time) from batch_window)) e
        join batch_level_users b on b.user_id = e.user_id and b.extends = 1
        where e.level is not null
        union all
        select a.user_id, a.level, a.start_time, a.session_id, a.item_in_session
        from app_events a
        join batch_level_users b on b.user_id = a.user_id and b.extends = 0
        where a.level is not null
            ) level_events
        ) instants
        where latest_first = 1
    ) ordered
    where previous_level is null or previous_level <> level
) stretches;
-- analyze user_levels [only when log files are staged]
analyze user_levels;
-- plays_by_user_day: add the batch [only when log files are staged] [only when no loaded log file changed]
insert into plays_by_user_day (batch_id, day, user_id, level, location, user_agent, plays)
select 1, cast(start_time as date), user_id, level, location, user_agent, count(*)
from songplays
where start_time between (select min(start_time) from batch_window) and (select max(start_time) from batch_window) and batch_id = 1
group by cast(start_time as date), user_id, level, location, user_agent;
-- plays_by_hour: add the batch [only when log files are staged] [only when no loaded log file changed]
insert into plays_by_hour (batch_id, hour_start, plays)
select 1, date_trunc('hour', start_time), count(*)
from songplays
where start_time between (select min(start_time) from batch_window) and (select max(start_time) from batch_window) and batch_id = 1
group by date_trunc('hour', start_time);
-- plays_by_song: add the batch [only when log files are staged] [only when no loaded log file changed]
insert into plays_by_song (batch_id, song_title, artist_name, plays)
select 1, song_title, artist_name, count(*)
from songplays
where start_time between (select min(start_time) from batch_window) and (select max(start_time) from batch_window) and batch_id = 1
group by song_title, artist_name;
-- events_by_user_day: add the batch [only when log files are staged] [only when no loaded log file changed]
insert into events_by_user_day (batch_id, day, user_id, events, plays)
select 1, cast(start_time as date), user_id, count(*), sum(case when page = 'NextSong' then 1 else 0 end)
from app_events
where start_time between (select min(start_time) from batch_window) and (select max(start_time) from batch_window) and batch_id = 1
group by cast(start_time as date), user_id;
-- session_parts: add the batch [only when log files are staged] [only when no loaded log file changed]
insert into session_parts (batch_id, user_id, session_id, first_at, last_at, events, songs,
                           opening_level, any_level, played_until)
select 1, user_id, session_id, min(start_time), max(start_time), sum(counted),
       sum(case when page = 'NextSong' then counted else 0 end),
       min(case when item_in_session = 0 then level end), max(level), max(ended_at)
from (
    select user_id, session_id, start_time, page, item_in_session, level, 1 as counted,
           cast(null as timestamp) as ended_at
    from app_events
    where start_time between (select min(start_time) from batch_window) and (select max(start_time) from batch_window) and batch_id = 1
    union all
    select user_id, session_id, start_time, 'NextSong', item_in_session, level, 0,
           date_trunc('second', start_time)
               + greatest(least(coalesce(song_duration, 0), 86400), 0) * interval '1 second'
    from songplays
    where start_time between (select min(start_time) from batch_window) and (select max(start_time) from batch_window) and batch_id = 1
) events
group by user_id, session_id;
-- matched_plays_by_day: add the batch [only when log files are staged] [only when no loaded log file changed]
insert into matched_plays_by_day (batch_id, day, song_id, artist_id, plays)
select 1, cast(start_time as date), song_id, artist_id, count(*)
from songplays
where start_time between (select min(start_time) from batch_window) and (select max(start_time) from batch_window) and batch_id = 1 and song_id is not null
group by cast(start_time as date), song_id, artist_id;
-- batch_totals: time rows [only when log files are staged] [only when no loaded log file changed]
insert into batch_totals (batch_id, measure, row_count) values (1, 'time rows', 0);
-- batch_totals: matched plays [only when no loaded log file changed]
insert into batch_totals (batch_id, measure, row_count)
select 1, 'matched plays', count(*) + 0
from songplays
where start_time between (select min(start_time) from batch_window) and (select max(start_time) from batch_window) and batch_id = 1 and song_id is not null;
-- plays_by_user_day: empty, to count again [only when a loaded log file changed]
delete from plays_by_user_day;
-- plays_by_user_day: count every row [only when a loaded log file changed]
insert into plays_by_user_day (batch_id, day, user_id, level, location, user_agent, plays)
select 1, cast(start_time as date), user_id, level, location, user_agent, count(*)
from songplays
where 1 = 1
group by cast(start_time as date), user_id, level, location, user_agent;
-- plays_by_hour: empty, to count again [only when a loaded log file changed]
delete from plays_by_hour;
-- plays_by_hour: count every row [only when a loaded log file changed]
insert into plays_by_hour (batch_id, hour_start, plays)
select 1, date_trunc('hour', start_time), count(*)
from songplays
where 1 = 1
group by date_trunc('hour', start_time);
-- plays_by_song: empty, to count again [only when a loaded log file changed]
delete from plays_by_song;
-- plays_by_song: count every row [only when a loaded log file changed]
insert into plays_by_song (batch_id, song_title, artist_name, plays)
select 1, song_title, artist_name, count(*)
from songplays
where 1 = 1
group by song_title, artist_name;
-- events_by_user_day: empty, to count again [only when a loaded log file changed]
delete from events_by_user_day;
-- events_by_user_day: count every row [only when a loaded log file changed]
insert into events_by_user_day (batch_id, day, user_id, events, plays)
select 1, cast(start_time as date), user_id, count(*), sum(case when page = 'NextSong' then 1 else 0 end)
from app_events
where 1 = 1
group by cast(start_time as date), user_id;
-- session_parts: empty, to count again [only when a loaded log file changed]
delete from session_parts;
-- session_parts: count every row [only when a loaded log file changed]
insert into session_parts (batch_id, user_id, session_id, first_at, last_at, events, songs,
                           opening_level, any_level, played_until)
select 1, user_id, session_id, min(start_time), max(start_time), sum(counted),
       sum(case when page = 'NextSong' then counted else 0 end),
       min(case when item_in_session = 0 then level end), max(level), max(ended_at)
from (
    select user_id, session_id, start_time, page, item_in_session, level, 1 as counted,
           cast(null as timestamp) as ended_at
    from app_events
    where 1 = 1
    union all
    select user_id, session_id, start_time, 'NextSong', item_in_session, level, 0,
           date_trunc('second', start_time)
               + greatest(least(coalesce(song_duration, 0), 86400), 0) * interval '1 second'
    from songplays
    where 1 = 1
) events
group by user_id, session_id;
-- matched_plays_by_day: empty, to count again [only when a loaded log file changed]
delete from matched_plays_by_day;
-- matched_plays_by_day: count every row [only when a loaded log file changed]
insert into matched_plays_by_day (batch_id, day, song_id, artist_id, plays)
select 1, cast(start_time as date), song_id, artist_id, count(*)
from songplays
where 1 = 1 and song_id is not null
group by cast(start_time as date), song_id, artist_id;
-- batch_totals: count again [only when a loaded log file changed]
delete from batch_totals;
-- batch_totals: count again [only when a loaded log file changed]
insert into batch_totals (batch_id, measure, row_count) select 1, 'time rows', count(*) from time;
-- batch_totals: count again [only when a loaded log file changed]
insert into batch_totals (batch_id, measure, row_count) select 1, 'matched plays', count(*) from songplays where song_id is not null;
-- analyze plays_by_user_day
analyze plays_by_user_day;
-- analyze plays_by_hour
analyze plays_by_hour;
-- analyze plays_by_song
analyze plays_by_song;
-- analyze events_by_user_day
analyze events_by_user_day;
-- analyze session_parts
analyze session_parts;
-- analyze matched_plays_by_day
analyze matched_plays_by_day;
select min(songplay_id) as songplay_id, count(*) as copies from songplays where (start_time between (select min(start_time) from batch_written_times) and (select max(start_time) from batch_written_times)) group by cast(songplay_id as varchar) having count(*) > 1;
select min(user_id) as user_id, count(*) as copies from users where (user_id in (select user_id from batch_users batch_rows)) group by cast(user_id as varchar) having count(*) > 1;
select min(song_id) as song_id, count(*) as copies from songs where (song_id in (select song_id from staging_songs batch_rows)) group by cast(song_id as varchar) having count(*) > 1;
select min(artist_id) as artist_id, count(*) as copies from artists where (artist_id in (select artist_id from (select artist_id from artists where batch_id = 1) batch_rows)) group by cast(artist_id as varchar) having count(*) > 1;
select min(start_time) as start_time, count(*) as copies from time where (start_time between (select min(start_time) from batch_window) and (select max(start_time) from batch_window)) group by cast(start_time as varchar) having count(*) > 1;
select min(event_id) as event_id, count(*) as copies from app_events where (start_time between (select min(start_time) from batch_window) and (select max(start_time) from batch_window)) group by cast(event_id as varchar) having count(*) > 1;
select min(user_id) as user_id, min(valid_from) as valid_from, count(*) as copies from user_levels where (user_id in (select user_id from batch_users batch_rows)) group by cast(user_id as varchar), cast(valid_from as varchar) having count(*) > 1;
select * from songplays where (songplay_id is null) and (start_time between (select min(start_time) from batch_written_times) and (select max(start_time) from batch_written_times));
select * from batch_users batch_rows where (user_id is null);
select * from staging_songs batch_rows where (song_id is null);
select * from artists where (artist_id is null) and (artist_id in (select artist_id from (select artist_id from artists where batch_id = 1) batch_rows));
select * from time where (start_time is null) and (start_time between (select min(start_time) from batch_window) and (select max(start_time) from batch_window));
select * from app_events where (event_id is null) and (start_time between (select min(start_time) from batch_window) and (select max(start_time) from batch_window));
select * from user_levels where (user_id is null or valid_from is null) and (user_id in (select user_id from batch_users batch_rows));
select * from songplays where (start_time is null) and (start_time between (select min(start_time) from batch_written_times) and (select max(start_time) from batch_written_times));
select child.user_id from songplays child left join users parent on cast(parent.user_id as varchar) = cast(child.user_id as varchar) where (child.user_id is not null) and (parent.user_id is null) and (child.start_time between (select min(start_time) from batch_written_times) and (select max(start_time) from batch_written_times));
select child.start_time from songplays child left join time parent on cast(parent.start_time as varchar) = cast(child.start_time as varchar) and parent.start_time between (select min(start_time) from batch_written_times) and (select max(start_time) from batch_written_times) where (child.start_time is not null) and (parent.start_time is null) and (child.start_time between (select min(start_time) from batch_written_times) and (select max(start_time) from batch_written_times));
select child.song_id from songplays child left join songs parent on cast(parent.song_id as varchar) = cast(child.song_id as varchar) where (child.song_id is not null) and (parent.song_id is null) and (child.start_time between (select min(start_time) from batch_written_times) and (select max(start_time) from batch_written_times));
select child.artist_id from songplays child left join artists parent on cast(parent.artist_id as varchar) = cast(child.artist_id as varchar) where (child.artist_id is not null) and (parent.artist_id is null) and (child.start_time between (select min(start_time) from batch_written_times) and (select max(start_time) from batch_written_times));
select child.artist_id from songs child left join artists parent on cast(parent.artist_id as varchar) = cast(child.artist_id as varchar) where (child.artist_id is not null) and (parent.artist_id is null) and (child.song_id in (select song_id from staging_songs batch_rows));
select level, count(*) as row_count from songplays where (level is null or level not in ('free', 'paid')) and (start_time between (select min(start_time) from batch_written_times) and (select max(start_time) from batch_written_times)) group by level;
select level, count(*) as row_count from users where (level is null or level not in ('free', 'paid')) and (user_id in (select user_id from batch_users batch_rows)) group by level;
select level, count(*) as row_count from user_levels where (level is null or level not in ('free', 'paid')) and (user_id in (select user_id from batch_users batch_rows)) group by level;
select child.user_id from app_events child left join users parent on cast(parent.user_id as varchar) = cast(child.user_id as varchar) where (child.user_id is not null) and (parent.user_id is null) and (child.start_time between (select min(start_time) from batch_window) and (select max(start_time) from batch_window));
select child.user_id from user_levels child left join users parent on cast(parent.user_id as varchar) = cast(child.user_id as varchar) where (child.user_id is not null) and (parent.user_id is null) and (child.user_id in (select user_id from batch_users batch_rows));
select u.user_id, u.level, l.level as history_level
from users u
join user_levels l on l.user_id = u.user_id and l.valid_to is null where (l.level <> u.level) and (u.user_id in (select user_id from batch_users batch_rows));
-- record load errors: one row per value found at run time
insert into load_errors (batch_id, logged_at, disposition, table_name, source, line_number,
                         column_name, reason, raw_excerpt)
values (:batch_id, :logged_at, :disposition, :table_name, :source, :line_number, :column_name, :reason, :raw_excerpt);
-- record schema drift: one row per value found at run time
insert into schema_drift (batch_id, seen_at, table_name, source, change_kind, field_path, json_type,
                          expected, records, line_number, example, source_version)
values (:batch_id, :seen_at, :table_name, :source, :change_kind, :field_path, :json_type, :expected, :records, :line_number, :example, :source_version);
drop table if exists batch_objects;
create temp table batch_objects (like loaded_objects);
-- record loaded objects: one row per value found at run time
insert into batch_objects (object_id, table_name, object_key, url, size, version, batch_id, row_count, error_count)
values (:object_id, :table_name, :object_key, :url, :size, :version, :batch_id, :row_count, :error_count);
-- record loaded objects
delete from loaded_objects
using batch_objects b
where loaded_objects.table_name = b.table_name and loaded_objects.object_key = b.object_key;
-- record loaded objects
insert into loaded_objects (object_id, table_name, object_key, url, size, version, batch_id, row_count,
                            error_count)
select object_id, table_name, object_key, url, size, version, batch_id, row_count, error_count
from batch_objects;
select cast(coalesce(sum(plays), 0) as bigint) from plays_by_song;
select count(*) from users;
select count(*) from songs;
select count(*) from artists;
select cast(coalesce(sum(row_count), 0) as bigint) from batch_totals where measure = 'time rows';
select cast(coalesce(sum(events), 0) as bigint) from events_by_user_day;
select count(*) from user_levels;
select cast(coalesce(sum(row_count), 0) as bigint) from batch_totals where measure = 'matched plays';
select count(*)
from songplays
where start_time between (select min(start_time) from batch_window) and (select max(start_time) from batch_window) and batch_id = 1 and song_id is not null
  and songplay_id in (select md5(coalesce(user_id, '') || '|' || cast(session_id as varchar) || '|' || cast(item_in_session as varchar) || '|' || cast(ts as varchar)) from staging_events
                      where song in (select original from text_repairs)
                         or artist in (select original from text_repairs));
select count(*) from batch_replaced;
insert into etl_batches (batch_id, started_at, finished_at, outcome, new_objects, staged_rows,
                         rejected, checks_passed, message)
values (1, :timestamp, :timestamp, 'published', 2, 0, 0, 26, null);
commit;

-- ===== python etl.py --rebuild--dry-run
-- Dry run on redshift://sparkify_etl:***@sparkify-dwh.c0ffee123abc.us-west-2.redshift.amazonaws.com:5439/sparkify: the statements a run sends, in order.
-- Nothing was executed. Secrets are masked as ***.
select pid, application_name, txn_owner, 'holding it' as state, txn_start, cast(null as varchar)
from (
    select t.pid, trim(c.application_name) as application_name, trim(t.txn_owner) as txn_owner, t.txn_start,
           row_number() over (partition by t.pid order by c.record_time desc) as newest
    from svv_transactions t
    left join sys_connection_log c
      on c.session_id = t.pid and c.record_time <= t.txn_start and trim(c.event) = 'initiating session'
    where t.lockable_object_type = 'relation' and t.granted and t.pid <> pg_backend_pid()
      and t.relation = (select oid from pg_class where relname = 'etl_lock'
                        and relnamespace = (select oid from pg_namespace where nspname = current_schema()))
) holders
where newest = 1
order by pid;
set statement_timeout to 60000;
-- load lock
lock table etl_lock;
reset statement_timeout;
select coalesce(max(batch_id), 0) + 1 from etl_batches;
-- delete from loaded_objects
delete from loaded_objects;
-- delete from song_catalog
delete from song_catalog;
-- delete from text_repairs
delete from text_repairs;
-- delete from songplays
delete from songplays;
-- delete from users
delete from users;
-- delete from songs
delete from songs;
-- delete from artists
delete from artists;
-- delete from time
delete from time;
-- delete from app_events
delete from app_events;
-- delete from user_levels
delete from user_levels;
-- delete from plays_by_user_day
delete from plays_by_user_day;
-- delete from plays_by_hour
delete from plays_by_hour;
-- delete from plays_by_song
delete from plays_by_song;
-- delete from events_by_user_day
delete from events_by_user_day;
-- delete from session_parts
delete from session_parts;
-- delete from matched_plays_by_day
delete from matched_plays_by_day;
-- delete from batch_totals
delete from batch_totals;
select table_name, object_key, size, version, url, object_id from loaded_objects;
-- stage only the files that are new or changed since loaded_objects was written
create temp table staging_events (like staging_events);
create temp table staging_songs (like staging_songs);
-- read the first 64 KiB of s3://udacity-dend/log_data/<each new or changed file> (one ranged S3 GET) to find schema drift
-- write s3://sparkify-etl-work/manifests/batch-000001/staging_events-000000.manifest: a manifest of this batch's new files
-- copy staging_events: <key>
copy staging_events (artist, auth, first_name, gender, item_in_session, last_name, length, level, location, method, page, registration, session_id, song, status, ts, user_agent, user_id)
from 's3://sparkify-etl-work/manifests/batch-000001/staging_events-000000.manifest'
iam_role '***'
format as json 's3://udacity-dend/log_json_path.json'
manifest region 'us-west-2'
maxerror 100
acceptinvchars as '?' blanksasnull emptyasnull
compupdate off statupdate off;
select pg_last_copy_count();
select query_id, error_count, trim(status)
from sys_load_history
where session_id = pg_backend_pid() and trim(table_name) = 'staging_events'
order by query_id desc
limit 1;
select trim(file_name), line_number, trim(column_name), trim(error_message), cast(null as varchar)
from sys_load_error_detail
where query_id = :query_id
order by file_name, line_number;
select trim(file_name), line_number, trim(column_name), trim(raw_line)
from sys_copy_replacements
where query_id = :query_id
order by file_name, line_number;
select trim(file_name), sum(lines_scanned)
from sys_load_detail
where query_id = :query_id
group by trim(file_name);
-- staging_events: the object_id of the rows of <key>
update staging_events set object_id = :object_id where object_id is null;
-- read the first 64 KiB of s3://udacity-dend/song_data/<each new or changed file> (one ranged S3 GET) to find schema drift
-- write s3://sparkify-etl-work/manifests/batch-000001/staging_songs.manifest: a manifest of this batch's new files
-- copy staging_songs
copy staging_songs (num_songs, artist_id, artist_latitude, artist_longitude, artist_location, artist_name, song_id, title, duration, year)
from 's3://sparkify-etl-work/manifests/batch-000001/staging_songs.manifest'
iam_role '***'
format as json 'auto'
manifest region 'us-west-2'
maxerror 100
acceptinvchars as '?' blanksasnull emptyasnull
compupdate off statupdate off;
select pg_last_copy_count();
select query_id, error_count, trim(status)
from sys_load_history
where session_id = pg_backend_pid() and trim(table_name) = 'staging_songs'
order by query_id desc
limit 1;
select trim(file_name), line_number, trim(column_name), trim(error_message), cast(null as varchar)
from sys_load_error_detail
where query_id = :query_id
order by file_name, line_number;
select trim(file_name), line_number, trim(column_name), trim(raw_line)
from sys_copy_replacements
where query_id = :query_id
order by file_name, line_number;
select trim(file_name), sum(lines_scanned)
from sys_load_detail
where query_id = :query_id
group by trim(file_name);
-- staging_events: find values out of range
select
    case
        when user_id <> '' and (user_id ~ '^0|[^0-9]' or length(user_id) > 10 or (length(user_id) = 10 and user_id > '2147483647')) then 'user_id'
        when ts < 946684800000 or ts > cast(:latest_valid_ms as bigint) then 'ts'
        when registration < 946684800000 or registration > cast(:latest_valid_ms as bigint) then 'registration'
        when level <> '' and level not in ('free', 'paid') then 'level'
    end as column_name,
    user_id, session_id, item_in_session, ts, registration, level
from staging_events
where (user_id <> '' and (user_id ~ '^0|[^0-9]' or length(user_id) > 10 or (length(user_id) = 10 and user_id > '2147483647')))
   or (ts < 946684800000 or ts > cast(:latest_valid_ms as bigint))
   or (registration < 946684800000 or registration > cast(:latest_valid_ms as bigint))
   or (level <> '' and level not in ('free', 'paid'))
limit 100;
-- staging_events: remove rejected rows
delete from staging_events
where (user_id <> '' and (user_id ~ '^0|[^0-9]' or length(user_id) > 10 or (length(user_id) = 10 and user_id > '2147483647')))
   or (ts < 946684800000 or ts > cast(:latest_valid_ms as bigint))
   or (registration < 946684800000 or registration > cast(:latest_valid_ms as bigint))
   or (level <> '' and level not in ('free', 'paid'));
select distinct d.table_name, d.field_path, d.json_type
from schema_drift d
join etl_batches b on b.batch_id = d.batch_id
where b.outcome = 'published';
select distinct value from (
    select artist as value from staging_events where octet_length(artist) > length(artist)
    union
    select song as value from staging_events where octet_length(song) > length(song)
) candidates
where value not in (select original from text_repairs);
-- text repairs: one row per value found at run time
insert into text_repairs (original, repaired) values (:original, :repaired);
-- analyze staging_events
analyze staging_events;
-- analyze staging_songs
analyze staging_songs;
-- batch: time window of the staged events
create temp table batch_window as
select (select timestamp 'epoch' + (min(ts) / 1000) * interval '1 second' + mod(min(ts), 1000) * interval '1 millisecond' from staging_events) as start_time
union all
select (select timestamp 'epoch' + (max(ts) / 1000) * interval '1 second' + mod(max(ts), 1000) * interval '1 millisecond' from staging_events);
-- batch: events of the changed files [only when a loaded log file changed]
create temp table batch_replaced as
select event_id, start_time, user_id, page
from app_events
where object_id in (:changed_object_id);
-- songplays: remove the changed files' plays [only when a loaded log file changed]
delete from songplays where object_id in (:changed_object_id);
-- app_events: remove the changed files' events [only when a loaded log file changed]
delete from app_events where object_id in (:changed_object_id);
-- artists: remove those the staged songs touch [only when song files are staged]
delete from artists
where artist_id in (select artist_id from staging_songs)
   or artist_id in (select artist_id from song_catalog where song_id in (select song_id from staging_songs));
-- song_catalog: remove replaced [only when song files are staged]
delete from song_catalog where song_id in (select song_id from staging_songs);
-- song_catalog: insert [only when song files are staged]
insert into song_catalog (song_id, title, artist_id, artist_name, artist_location,
                          artist_latitude, artist_longitude, duration, year, batch_id)
select song_id, title, artist_id, artist_name, artist_location,
       artist_latitude, artist_longitude, duration, year, 1
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
where version = 1;
-- songs: remove replaced [only when song files are staged]
delete from songs where song_id in (select song_id from staging_songs);
-- songs: insert [only when song files are staged]
insert into songs (song_id, title, artist_id, artist_name, year, duration, batch_id)
select song_id, title, artist_id, artist_name, nullif(year, 0), duration, 1
from song_catalog
where song_id in (select song_id from staging_songs);
-- analyze songs [only when song files are staged]
analyze songs;
-- artists: insert those without a row [only when song files are staged]
insert into artists (artist_id, name, location, latitude, longitude, batch_id)
select artist_id, artist_name, artist_location, artist_latitude, artist_longitude, 1
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
where preference = 1;
-- batch: users
create temp table batch_users as
select user_id, first_name, last_name, gender, level, last_seen_at, registered_at
from (
    select
        cast(user_id as integer) as user_id,
        first_name,
        last_name,
        gender,
        level,
        timestamp 'epoch' + (ts / 1000) * interval '1 second' + mod(ts, 1000) * interval '1 millisecond' as last_seen_at,
        timestamp 'epoch' + (cast(registration as bigint) / 1000) * interval '1 second' + mod(cast(registration as bigint), 1000) * interval '1 millisecond' as registered_at,
        row_number() over (
            partition by user_id order by ts desc, session_id desc, item_in_session desc
        ) as recency
    from staging_events
    where user_id is not null and user_id <> ''
) latest
where recency = 1;
-- batch: users whose level history extends [only when log files are staged]
create temp table batch_level_users diststyle key distkey (user_id) as
select b.user_id,
       case when u.user_id is null or b.first_event_at > u.last_seen_at then 1 else 0 end as extends
from (
    select cast(user_id as integer) as user_id, timestamp 'epoch' + (min(ts) / 1000) * interval '1 second' + mod(min(ts), 1000) * interval '1 millisecond' as first_event_at
    from staging_events
    where user_id is not null and user_id <> ''
    group by user_id
) b
left join users u on u.user_id = b.user_id;
-- batch: users of the changed files' events [only when a loaded log file changed]
insert into batch_level_users (user_id, extends)
select distinct user_id, 0
from batch_replaced
where user_id is not null and user_id not in (select user_id from batch_level_users);
-- batch: users of the changed files' events rebuild their history [only when a loaded log file changed]
update batch_level_users set extends = 0
where user_id in (select user_id from batch_replaced);
-- users: remove superseded [only when log files are staged]
delete from users
using batch_users newer
where users.user_id = newer.user_id and newer.last_seen_at >= users.last_seen_at;
-- users: insert [only when log files are staged]
insert into users (user_id, first_name, last_name, gender, level, last_seen_at, registered_at, batch_id)
select b.user_id, b.first_name, b.last_name, b.gender, b.level, b.last_seen_at, b.registered_at, 1
from batch_users b
left join users existing on existing.user_id = b.user_id
where existing.user_id is null;
-- analyze users [only when log files are staged]
analyze users;
-- songplays: unmatch the plays of staged songs [only when song files are staged]
update songplays
set song_id = null, artist_id = null
where song_id in (select song_id from staging_songs);
-- songplays: unmatch the plays with staged songs' names [only when song files are staged]
update songplays
set song_id = null, artist_id = null
from (select distinct rtrim(title) as title_key, rtrim(artist_name) as artist_key, duration
      from staging_songs) staged
where songplays.song_id is not null
  and staged.title_key = rtrim(songplays.song_title)
  and staged.artist_key = rtrim(songplays.artist_name)
  and staged.duration = songplays.song_duration;
-- matched_plays_by_day: add the late songs' matches [only when song files are staged]
insert into matched_plays_by_day (batch_id, day, song_id, artist_id, plays)
select 1, cast(songplays.start_time as date), catalog.song_id, catalog.artist_id, count(*)
from songplays
join (
    select song_id, artist_id, title_key, artist_key, duration
    from (
        select
            song_id, artist_id, rtrim(title) as title_key, rtrim(artist_name) as artist_key, duration,
            row_number() over (partition by rtrim(title), rtrim(artist_name), duration order by song_id) as choice
        from songs
    ) candidates
    where choice = 1
) catalog
  on catalog.title_key = rtrim(songplays.song_title)
  and catalog.artist_key = rtrim(songplays.artist_name)
  and catalog.duration = songplays.song_duration
where songplays.song_id is null
group by cast(songplays.start_time as date), catalog.song_id, catalog.artist_id;
-- songplays: match late songs [only when song files are staged]
update songplays
set song_id = catalog.song_id, artist_id = catalog.artist_id
from (
    select song_id, artist_id, title_key, artist_key, duration
    from (
        select
            song_id, artist_id, rtrim(title) as title_key, rtrim(artist_name) as artist_key, duration,
            row_number() over (partition by rtrim(title), rtrim(artist_name), duration order by song_id) as choice
        from songs
    ) candidates
    where choice = 1
) catalog
where songplays.song_id is null
  and catalog.title_key = rtrim(songplays.song_title)
  and catalog.artist_key = rtrim(songplays.artist_name)
  and catalog.duration = songplays.song_duration;
-- batch: times of the plays written
create temp table batch_written_times as
select start_time from batch_window
union all
select min(start_time) from songplays where song_id in (select song_id from staging_songs)
union all
select max(start_time) from songplays where song_id in (select song_id from staging_songs);
-- songplays: insert new plays [only when log files are staged]
insert into songplays (songplay_id, start_time, user_id, level, song_id, artist_id,
                       session_id, item_in_session, location, user_agent,
                       song_title, artist_name, song_duration, batch_id, object_id)
select e.event_id, e.start_time, e.user_id, e.level, e.song_id, e.artist_id, e.session_id, e.item_in_session,
       e.location, e.user_agent, coalesce(e.repaired_title, e.song), coalesce(e.repaired_artist_name, e.artist),
       e.length, 1, e.object_id
from (
    select
        md5(coalesce(user_id, '') || '|' || cast(session_id as varchar) || '|' || cast(item_in_session as varchar) || '|' || cast(ts as varchar)) as event_id,
        timestamp 'epoch' + (ts / 1000) * interval '1 second' + mod(ts, 1000) * interval '1 millisecond' as start_time,
        cast(nullif(user_id, '') as integer) as user_id,
        level, session_id, item_in_session, page, auth, status, location, user_agent, song, artist, length, ts,
        object_id,
        repaired_title, repaired_artist_name, catalog.song_id, catalog.artist_id,
        row_number() over (
            partition by ts, staged.user_id, session_id, item_in_session
            order by page, song, level, status, object_id, catalog.song_id
        ) as copy_number
    from (
        select s.*, s.length as song_duration,
               repaired_song.repaired as repaired_title,
               repaired_artist.repaired as repaired_artist_name,
               coalesce(repaired_song.repaired, s.song) as song_title,
               coalesce(repaired_artist.repaired, s.artist) as artist_name
        from staging_events s
        left join text_repairs repaired_song on repaired_song.original = s.song and s.page = 'NextSong'
        left join text_repairs repaired_artist on repaired_artist.original = s.artist and s.page = 'NextSong'
    ) staged
    left join (
        select song_id, artist_id, rtrim(title) as title_key, rtrim(artist_name) as artist_key, duration
        from songs
) catalog
        on staged.page = 'NextSong'
       and catalog.title_key = rtrim(staged.song_title)
       and catalog.artist_key = rtrim(staged.artist_name)
       and catalog.duration = staged.song_duration
) e
left join (select songplay_id, user_id from songplays where start_time between (select min(start_time) from batch_window) and (select max(start_time) from batch_window)) existing
    on existing.songplay_id = e.event_id and existing.user_id = e.user_id
where e.copy_number = 1 and e.page = 'NextSong' and existing.songplay_id is null
  and (e.user_id is not null
       or e.event_id not in (select songplay_id from songplays where user_id is null and start_time between (select min(start_time) from batch_window) and (select max(start_time) from batch_window)))
order by e.ts;
-- analyze songplays [only when log files are staged]
analyze songplays;
-- time: insert [only when log files are staged]
insert into time (start_time, hour, day, week, month, year, weekday, batch_id)
select
    p.start_time,
    extract(hour from p.start_time),
    extract(day from p.start_time),
    extract(week from p.start_time),
    extract(month from p.start_time),
    extract(year from p.start_time),
    extract(dow from p.start_time),
    1
from (select distinct start_time from songplays where start_time between (select min(start_time) from batch_window) and (select max(start_time) from batch_window)) p
left join (select start_time from time where start_time between (select min(start_time) from batch_window) and (select max(start_time) from batch_window)) existing
    on existing.start_time = p.start_time
where existing.start_time is null
order by p.start_time;
-- time: remove the times no play has any more [only when a loaded log file changed]
delete from time
where start_time in (select start_time from batch_replaced where page = 'NextSong')
  and start_time not in (select start_time from songplays
                         where start_time in (select start_time from batch_replaced where page = 'NextSong'));
-- analyze time [only when log files are staged]
analyze time;
-- app_events: insert new events [only when log files are staged]
insert into app_events (event_id, start_time, user_id, level, session_id, item_in_session, page, auth, status,
                        batch_id, object_id)
select e.event_id, e.start_time, e.user_id, e.level, e.session_id, e.item_in_session, e.page, e.auth, e.status, 1, e.object_id
from (
    select
        md5(coalesce(user_id, '') || '|' || cast(session_id as varchar) || '|' || cast(item_in_session as varchar) || '|' || cast(ts as varchar)) as event_id,
        timestamp 'epoch' + (ts / 1000) * interval '1 second' + mod(ts, 1000) * interval '1 millisecond' as start_time,
        cast(nullif(user_id, '') as integer) as user_id,
        level, session_id, item_in_session, page, auth, status, location, user_agent, song, artist, length, ts,
        object_id,
        row_number() over (
            partition by ts, staged.user_id, session_id, item_in_session
            order by page, song, level, status, object_id
        ) as copy_number
    from staging_events staged
) e
left join (select event_id, user_id from app_events where start_time between (select min(start_time) from batch_window) and (select max(start_time) from batch_window)) existing
    on existing.event_id = e.event_id and existing.user_id = e.user_id
where e.copy_number = 1 and existing.event_id is null
  and (e.user_id is not null
       or e.event_id not in (select event_id from app_events where user_id is null and start_time between (select min(start_time) from batch_window) and (select max(start_time) from batch_window)))
order by e.ts;
-- analyze app_events [only when log files are staged]
analyze app_events;
-- users: latest event after the changed files [only when a loaded log file changed]
update users
set level = latest.level, last_seen_at = latest.start_time, batch_id = 1
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
  and (users.last_seen_at <> latest.start_time or users.level <> latest.level);
-- users: remove those with no event left [only when a loaded log file changed]
delete from users
where user_id in (select user_id from batch_replaced)
  and user_id not in (select user_id from app_events
                      where user_id is not null and user_id in (select user_id from batch_replaced));
-- batch: current level stretches of the extending users [only when log files are staged]
create temp table batch_open_stretches diststyle key distkey (user_id) as
select l.user_id, l.level, l.valid_from as start_time,
       cast(0 as bigint) as session_id, 0 as item_in_session
from user_levels l
join batch_level_users b on b.user_id = l.user_id and b.extends = 1
where l.valid_to is null;
-- user_levels: remove recomputed stretches [only when log files are staged]
delete from user_levels
using batch_level_users b
where user_levels.user_id = b.user_id and (b.extends = 0 or user_levels.valid_to is null);
-- user_levels: insert [only when log files are staged]
insert into user_levels (user_id, level, valid_from, valid_to, batch_id)
select user_id, level, valid_from,
       lead(valid_from) over (partition by user_id order by valid_from) as valid_to,
       1
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
            from (
        select user_id, level, start_time, session_id, item_in_session from batch_open_stretches
        union all
        select e.user_id, e.level, e.start_time, e.session_id, e.item_in_session
        from (select * from app_events where start_time between (select min(start_time) from batch_window) and (select max(start_time) from batch_window)) e
        join batch_level_users b on b.user_id = e.user_id and b.extends = 1
        where e.level is not null
        union all
        select a.user_id, a.level, a.start_time, a.session_id, a.item_in_session
        from app_events a
        join batch_level_users b on b.user_id = a.user_id and b.extends = 0
        where a.level is not null
            ) level_events
        ) instants
        where latest_first = 1
    ) ordered
    where previous_level is null or previous_level <> level
) stretches;
-- analyze user_levels [only when log files are staged]
analyze user_levels;
-- plays_by_user_day: add the batch [only when log files are staged] [only when no loaded log file changed]
insert into plays_by_user_day (batch_id, day, user_id, level, location, user_agent, plays)
select 1, cast(start_time as date), user_id, level, location, user_agent, count(*)
from songplays
where start_time between (select min(start_time) from batch_window) and (select max(start_time) from batch_window) and batch_id = 1
group by cast(start_time as date), user_id, level, location, user_agent;
-- plays_by_hour: add the batch [only when log files are staged] [only when no loaded log file changed]
insert into plays_by_hour (batch_id, hour_start, plays)
select 1, date_trunc('hour', start_time), count(*)
from songplays
where start_time between (select min(start_time) from batch_window) and (select max(start_time) from batch_window) and batch_id = 1
group by date_trunc('hour', start_time);
-- plays_by_song: add the batch [only when log files are staged] [only when no loaded log file changed]
insert into plays_by_song (batch_id, song_title, artist_name, plays)
select 1, song_title, artist_name, count(*)
from songplays
where start_time between (select min(start_time) from batch_window) and (select max(start_time) from batch_window) and batch_id = 1
group by song_title, artist_name;
-- events_by_user_day: add the batch [only when log files are staged] [only when no loaded log file changed]
insert into events_by_user_day (batch_id, day, user_id, events, plays)
select 1, cast(start_time as date), user_id, count(*), sum(case when page = 'NextSong' then 1 else 0 end)
from app_events
where start_time between (select min(start_time) from batch_window) and (select max(start_time) from batch_window) and batch_id = 1
group by cast(start_time as date), user_id;
-- session_parts: add the batch [only when log files are staged] [only when no loaded log file changed]
insert into session_parts (batch_id, user_id, session_id, first_at, last_at, events, songs,
                           opening_level, any_level, played_until)
select 1, user_id, session_id, min(start_time), max(start_time), sum(counted),
       sum(case when page = 'NextSong' then counted else 0 end),
       min(case when item_in_session = 0 then level end), max(level), max(ended_at)
from (
    select user_id, session_id, start_time, page, item_in_session, level, 1 as counted,
           cast(null as timestamp) as ended_at
    from app_events
    where start_time between (select min(start_time) from batch_window) and (select max(start_time) from batch_window) and batch_id = 1
    union all
    select user_id, session_id, start_time, 'NextSong', item_in_session, level, 0,
           date_trunc('second', start_time)
               + greatest(least(coalesce(song_duration, 0), 86400), 0) * interval '1 second'
    from songplays
    where start_time between (select min(start_time) from batch_window) and (select max(start_time) from batch_window) and batch_id = 1
) events
group by user_id, session_id;
-- matched_plays_by_day: add the batch [only when log files are staged] [only when no loaded log file changed]
insert into matched_plays_by_day (batch_id, day, song_id, artist_id, plays)
select 1, cast(start_time as date), song_id, artist_id, count(*)
from songplays
where start_time between (select min(start_time) from batch_window) and (select max(start_time) from batch_window) and batch_id = 1 and song_id is not null
group by cast(start_time as date), song_id, artist_id;
-- batch_totals: time rows [only when log files are staged] [only when no loaded log file changed]
insert into batch_totals (batch_id, measure, row_count) values (1, 'time rows', 0);
-- batch_totals: matched plays [only when no loaded log file changed]
insert into batch_totals (batch_id, measure, row_count)
select 1, 'matched plays', count(*) + 0
from songplays
where start_time between (select min(start_time) from batch_window) and (select max(start_time) from batch_window) and batch_id = 1 and song_id is not null;
-- plays_by_user_day: empty, to count again [only when a loaded log file changed]
delete from plays_by_user_day;
-- plays_by_user_day: count every row [only when a loaded log file changed]
insert into plays_by_user_day (batch_id, day, user_id, level, location, user_agent, plays)
select 1, cast(start_time as date), user_id, level, location, user_agent, count(*)
from songplays
where 1 = 1
group by cast(start_time as date), user_id, level, location, user_agent;
-- plays_by_hour: empty, to count again [only when a loaded log file changed]
delete from plays_by_hour;
-- plays_by_hour: count every row [only when a loaded log file changed]
insert into plays_by_hour (batch_id, hour_start, plays)
select 1, date_trunc('hour', start_time), count(*)
from songplays
where 1 = 1
group by date_trunc('hour', start_time);
-- plays_by_song: empty, to count again [only when a loaded log file changed]
delete from plays_by_song;
-- plays_by_song: count every row [only when a loaded log file changed]
insert into plays_by_song (batch_id, song_title, artist_name, plays)
select 1, song_title, artist_name, count(*)
from songplays
where 1 = 1
group by song_title, artist_name;
-- events_by_user_day: empty, to count again [only when a loaded log file changed]
delete from events_by_user_day;
-- events_by_user_day: count every row [only when a loaded log file changed]
insert into events_by_user_day (batch_id, day, user_id, events, plays)
select 1, cast(start_time as date), user_id, count(*), sum(case when page = 'NextSong' then 1 else 0 end)
from app_events
where 1 = 1
group by cast(start_time as date), user_id;
-- session_parts: empty, to count again [only when a loaded log file changed]
delete from session_parts;
-- session_parts: count every row [only when a loaded log file changed]
insert into session_parts (batch_id, user_id, session_id, first_at, last_at, events, songs,
                           opening_level, any_level, played_until)
select 1, user_id, session_id, min(start_time), max(start_time), sum(counted),
       sum(case when page = 'NextSong' then counted else 0 end),
       min(case when item_in_session = 0 then level end), max(level), max(ended_at)
from (
    select user_id, session_id, start_time, page, item_in_session, level, 1 as counted,
           cast(null as timestamp) as ended_at
    from app_events
    where 1 = 1
    union all
    select user_id, session_id, start_time, 'NextSong', item_in_session, level, 0,
           date_trunc('second', start_time)
               + greatest(least(coalesce(song_duration, 0), 86400), 0) * interval '1 second'
    from songplays
    where 1 = 1
) events
group by user_id, session_id;
-- matched_plays_by_day: empty, to count again [only when a loaded log file changed]
delete from matched_plays_by_day;
-- matched_plays_by_day: count every row [only when a loaded log file changed]
insert into matched_plays_by_day (batch_id, day, song_id, artist_id, plays)
select 1, cast(start_time as date), song_id, artist_id, count(*)
from songplays
where 1 = 1 and song_id is not null
group by cast(start_time as date), song_id, artist_id;
-- batch_totals: count again [only when a loaded log file changed]
delete from batch_totals;
-- batch_totals: count again [only when a loaded log file changed]
insert into batch_totals (batch_id, measure, row_count) select 1, 'time rows', count(*) from time;
-- batch_totals: count again [only when a loaded log file changed]
insert into batch_totals (batch_id, measure, row_count) select 1, 'matched plays', count(*) from songplays where song_id is not null;
-- analyze plays_by_user_day
analyze plays_by_user_day;
-- analyze plays_by_hour
analyze plays_by_hour;
-- analyze plays_by_song
analyze plays_by_song;
-- analyze events_by_user_day
analyze events_by_user_day;
-- analyze session_parts
analyze session_parts;
-- analyze matched_plays_by_day
analyze matched_plays_by_day;
select min(songplay_id) as songplay_id, count(*) as copies from songplays group by cast(songplay_id as varchar) having count(*) > 1;
select min(user_id) as user_id, count(*) as copies from users group by cast(user_id as varchar) having count(*) > 1;
select min(song_id) as song_id, count(*) as copies from songs group by cast(song_id as varchar) having count(*) > 1;
select min(artist_id) as artist_id, count(*) as copies from artists group by cast(artist_id as varchar) having count(*) > 1;
select min(start_time) as start_time, count(*) as copies from time group by cast(start_time as varchar) having count(*) > 1;
select min(event_id) as event_id, count(*) as copies from app_events group by cast(event_id as varchar) having count(*) > 1;
select min(user_id) as user_id, min(valid_from) as valid_from, count(*) as copies from user_levels group by cast(user_id as varchar), cast(valid_from as varchar) having count(*) > 1;
select * from songplays where (songplay_id is null);
select * from users where (user_id is null);
select * from songs where (song_id is null);
select * from artists where (artist_id is null);
select * from time where (start_time is null);
select * from app_events where (event_id is null);
select * from user_levels where (user_id is null or valid_from is null);
select * from songplays where (start_time is null);
select child.user_id from songplays child left join users parent on cast(parent.user_id as varchar) = cast(child.user_id as varchar) where (child.user_id is not null) and (parent.user_id is null);
select child.start_time from songplays child left join time parent on cast(parent.start_time as varchar) = cast(child.start_time as varchar) where (child.start_time is not null) and (parent.start_time is null);
select child.song_id from songplays child left join songs parent on cast(parent.song_id as varchar) = cast(child.song_id as varchar) where (child.song_id is not null) and (parent.song_id is null);
select child.artist_id from songplays child left join artists parent on cast(parent.artist_id as varchar) = cast(child.artist_id as varchar) where (child.artist_id is not null) and (parent.artist_id is null);
select child.artist_id from songs child left join artists parent on cast(parent.artist_id as varchar) = cast(child.artist_id as varchar) where (child.artist_id is not null) and (parent.artist_id is null);
select level, count(*) as row_count from songplays where (level is null or level not in ('free', 'paid')) group by level;
select level, count(*) as row_count from users where (level is null or level not in ('free', 'paid')) group by level;
select level, count(*) as row_count from user_levels where (level is null or level not in ('free', 'paid')) group by level;
select child.user_id from app_events child left join users parent on cast(parent.user_id as varchar) = cast(child.user_id as varchar) where (child.user_id is not null) and (parent.user_id is null);
select child.user_id from user_levels child left join users parent on cast(parent.user_id as varchar) = cast(child.user_id as varchar) where (child.user_id is not null) and (parent.user_id is null);
select u.user_id, u.level, l.level as history_level
from users u
join user_levels l on l.user_id = u.user_id and l.valid_to is null where (l.level <> u.level);
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
where coalesce(summarized, 0) <> in_facts;
-- record load errors: one row per value found at run time
insert into load_errors (batch_id, logged_at, disposition, table_name, source, line_number,
                         column_name, reason, raw_excerpt)
values (:batch_id, :logged_at, :disposition, :table_name, :source, :line_number, :column_name, :reason, :raw_excerpt);
-- record schema drift: one row per value found at run time
insert into schema_drift (batch_id, seen_at, table_name, source, change_kind, field_path, json_type,
                          expected, records, line_number, example, source_version)
values (:batch_id, :seen_at, :table_name, :source, :change_kind, :field_path, :json_type, :expected, :records, :line_number, :example, :source_version);
drop table if exists batch_objects;
create temp table batch_objects (like loaded_objects);
-- record loaded objects: one row per value found at run time
insert into batch_objects (object_id, table_name, object_key, url, size, version, batch_id, row_count, error_count)
values (:object_id, :table_name, :object_key, :url, :size, :version, :batch_id, :row_count, :error_count);
-- record loaded objects
delete from loaded_objects
using batch_objects b
where loaded_objects.table_name = b.table_name and loaded_objects.object_key = b.object_key;
-- record loaded objects
insert into loaded_objects (object_id, table_name, object_key, url, size, version, batch_id, row_count,
                            error_count)
select object_id, table_name, object_key, url, size, version, batch_id, row_count, error_count
from batch_objects;
select cast(coalesce(sum(plays), 0) as bigint) from plays_by_song;
select count(*) from users;
select count(*) from songs;
select count(*) from artists;
select cast(coalesce(sum(row_count), 0) as bigint) from batch_totals where measure = 'time rows';
select cast(coalesce(sum(events), 0) as bigint) from events_by_user_day;
select count(*) from user_levels;
select cast(coalesce(sum(row_count), 0) as bigint) from batch_totals where measure = 'matched plays';
select count(*)
from songplays
where start_time between (select min(start_time) from batch_window) and (select max(start_time) from batch_window) and batch_id = 1 and song_id is not null
  and songplay_id in (select md5(coalesce(user_id, '') || '|' || cast(session_id as varchar) || '|' || cast(item_in_session as varchar) || '|' || cast(ts as varchar)) from staging_events
                      where song in (select original from text_repairs)
                         or artist in (select original from text_repairs));
select count(*) from batch_replaced;
insert into etl_batches (batch_id, started_at, finished_at, outcome, new_objects, staged_rows,
                         rejected, checks_passed, message)
values (1, :timestamp, :timestamp, 'published', 2, 0, 0, 27, null);
commit;

-- ===== python etl.py --status--dry-run
-- Dry run on redshift://sparkify_etl:***@sparkify-dwh.c0ffee123abc.us-west-2.redshift.amazonaws.com:5439/sparkify: the statements a run sends, in order.
-- Nothing was executed. Secrets are masked as ***.
select batch_id, started_at, finished_at, outcome, new_objects, staged_rows, rejected, message
from etl_batches
order by batch_id desc
limit 5;
select batch_id, finished_at, message
from etl_batches
where outcome = 'failed'
  and batch_id > (select coalesce(max(batch_id), 0) from etl_batches where outcome = 'published')
order by batch_id desc
limit 5;
select max(start_time) from app_events;
select seen_at, batch_id, table_name, source, change_kind, field_path, json_type, expected, line_number
from schema_drift
where change_kind <> 'baseline' and seen_at >= :timestamp
order by seen_at desc, batch_id desc
limit 10;
