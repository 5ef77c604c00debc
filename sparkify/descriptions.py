"""What every table, view, column and join of the warehouse means, written once.

create_tables.py sets these texts as the catalog's comments (COMMENT ON: the same statements
on PostgreSQL and Redshift), so any SQL client or BI tool shows them; docs/data-dictionary.md
is generated from the catalog (python3 tasks.py dictionary). A table's comment opens with its
grain; a column's says its unit, where the value comes from and what NULL means. JOINS says
what each join between the tables covers, which no catalog records.

Figures marked "real data" were measured on the dataset in data/ (8,056 events, 14,896
songs) loaded by create_tables.py and etl.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import sql_queries as q


@dataclass(frozen=True)
class Described:
    comment: str              # the table's or view's comment: "Grain: ..." first
    columns: dict[str, str]   # column -> its comment, in the table's column order


_BATCH_ID = "The ETL batch that added the row (etl_batches.batch_id)."
_WROTE = "The ETL batch that last wrote the row (etl_batches.batch_id)."
_OBJECT_ID = ("The source file the row came from (loaded_objects.object_id; the view source_files names it and "
              "when it was loaded).")
_ROLLUP = ("One set of rows per batch (a batch that replaced a changed source file counts every row again, "
           "as its own): sum over batches for totals.")

DESCRIPTIONS: dict[str, Described] = {
    # --- staging -------------------------------------------------------------------------
    "staging_events": Described(
        "Grain: one row per log line of the files the current batch loads. Staging: the "
        "event logs (log_data) as loaded, one column per JSON field renamed to snake_case. "
        "Each load stages into a temporary copy of this table, its session's own, so this one "
        "stays empty. Empty or blank strings load as NULL.",
        {
            "artist": "Artist name of the played song (field artist), as logged: may be double-encoded "
                      "UTF-8; NULL when the page is not NextSong.",
            "auth": "Authentication state (field auth), e.g. Logged In, Logged Out.",
            "first_name": "User's first name (field firstName); NULL for logged-out events.",
            "gender": "User's gender, F or M (field gender); NULL for logged-out events.",
            "item_in_session": "Position of the event in its session, from 0 (field itemInSession).",
            "last_name": "User's last name (field lastName); NULL for logged-out events.",
            "length": "Duration of the played song in seconds (field length); NULL when the page is not "
                      "NextSong.",
            "level": "Subscription level at the event, free or paid (field level).",
            "location": "User's metropolitan area and state, e.g. Phoenix-Mesa-Scottsdale, AZ (field location); "
                        "NULL for logged-out events.",
            "method": "HTTP method of the request, GET or PUT (field method).",
            "page": "Page of the app the event is on, e.g. NextSong (a song play), Home, Submit Upgrade "
                    "(field page).",
            "registration": "When the user signed up, epoch milliseconds (field registration); NULL for "
                            "logged-out events.",
            "session_id": "Session id (field sessionId); unique per user only: session ids repeat across "
                          "users.",
            "song": "Title of the played song (field song), as logged: may be double-encoded UTF-8; NULL "
                    "when the page is not NextSong.",
            "status": "HTTP status of the request, e.g. 200 (field status).",
            "ts": "Time of the event, epoch milliseconds UTC (field ts).",
            "user_agent": "Browser user agent (field userAgent); NULL for logged-out events.",
            "user_id": "User id as logged, text (field userId); NULL for logged-out events (an empty "
                       "userId).",
            "object_id": "The line's file (loaded_objects.object_id), written by the loader, not read "
                         "from the JSON.",
        },
    ),
    "staging_songs": Described(
        "Grain: one row per song object of the files the current batch loads. Staging: the song "
        "catalog (song_data) as loaded, column names equal to the JSON keys. Each load stages "
        "into a temporary copy of this table, its session's own, so this one stays empty. Empty "
        "or blank strings load as NULL.",
        {
            "num_songs": "Songs in the source object (always 1 in the dataset).",
            "artist_id": "Artist id (key artist_id), e.g. ARJIE2Y1187B994AB7.",
            "artist_latitude": "Artist's latitude in degrees (key artist_latitude); NULL when unknown.",
            "artist_longitude": "Artist's longitude in degrees (key artist_longitude); NULL when unknown.",
            "artist_location": "Artist's location as free text (key artist_location); NULL when empty.",
            "artist_name": "Name the song is credited to (key artist_name).",
            "song_id": "Song id (key song_id), e.g. SOUPIRU12A6D4FA1E1; never NULL.",
            "title": "Song title (key title).",
            "duration": "Song duration in seconds (key duration).",
            "year": "Release year (key year); 0 when unknown.",
        },
    ),
    # --- bookkeeping ---------------------------------------------------------------------
    "etl_lock": Described(
        "Grain: a single row (the load lock). Bookkeeping: etl.py locks this table for the length of a load, so two "
        "loads never run at once; nobody reads it, so the lock never blocks a reader.",
        {
            "purpose": "What the table is for, in words.",
        },
    ),
    "etl_batches": Described(
        "Grain: one row per ETL run that had something to load. Bookkeeping: what the run loaded "
        "and how it ended; a failed batch changed nothing else.",
        {
            "batch_id": "Batch number, 1, 2, ... in run order.",
            "started_at": "When the run started, UTC.",
            "finished_at": "When the run published or failed, UTC.",
            "outcome": "published, or failed (the gate or too many rejected records stopped it).",
            "new_objects": "Source files that were new or changed since last loaded.",
            "staged_rows": "Rows staged from those files; 0 for a failed batch.",
            "rejected": "Source records rejected (see load_errors).",
            "checks_passed": "Quality checks passed; 0 for a failed batch.",
            "message": "Why the batch failed; NULL when published.",
        },
    ),
    "loaded_objects": Described(
        "Grain: one row per source file in the warehouse, by staging table and key. Bookkeeping: "
        "the version last loaded; a file whose size or version differs is loaded again.",
        {
            "object_id": "The file's key, the same for every version of it: the facts' rows keep it "
                         "(songplays.object_id, app_events.object_id).",
            "table_name": "Staging table the file loads into: staging_events or staging_songs.",
            "object_key": "Path of the file under its prefix (LOG_DATA or SONG_DATA).",
            "url": "Full location of the file: an s3:// URL or a local path.",
            "size": "File size in bytes when loaded.",
            "version": "File version when loaded: the S3 ETag, or a local file's modification time in "
                       "nanoseconds since the epoch.",
            "batch_id": "The batch that last loaded the file (etl_batches.batch_id).",
            "row_count": "Rows the file gave that batch (its rejected records not counted). Loaded by "
                         "Redshift: lines, not rows (the lines COPY scanned in the file less its rejected "
                         "records; a record over several lines counts each of them).",
            "error_count": "Records of the file that batch rejected.",
        },
    ),
    "load_errors": Described(
        "Grain: one row per source record that was rejected, or loaded only after replacing "
        "invalid UTF-8. Bookkeeping: where it was, why, and what it looked like; kept for failed "
        "batches too.",
        {
            "batch_id": "The batch that met the record (etl_batches.batch_id).",
            "logged_at": "When the batch recorded it, UTC.",
            "disposition": "rejected (not loaded), or replaced (loaded with each invalid character "
                           "replaced by ?). Redshift logs replaced rows only for the first 100 per slice of a "
                           "COPY: there, more may have been replaced than are listed.",
            "table_name": "Staging table the record was loading into.",
            "source": "The file (URL or path) holding the record; for a staged row rejected after "
                      "Redshift's COPY, which does not say its file, the staging table and 'after COPY'.",
            "line_number": "Line of the record in the file, from 1; NULL when the whole file failed, or "
                           "for a staged row rejected after COPY.",
            "column_name": "Column whose value failed; NULL when the record as a whole did.",
            "reason": "Why, in words.",
            "raw_excerpt": "The start of the record as it was in the file; for a staged row rejected "
                           "after COPY, its key (userId, sessionId, itemInSession, ts); empty for a record "
                           "Redshift's COPY rejected (SYS_LOAD_ERROR_DETAIL keeps no raw line).",
        },
    ),
    "schema_drift": Described(
        "Grain: one row per change in the shape of the source records a batch found, per source "
        "object: a new key, a vanished key, or a value of another JSON type; for a staging table's "
        "first batch, its schema (one baseline row per key and type). Bookkeeping: the known schema "
        "is what published batches recorded; kept for failed batches too.",
        {
            "batch_id": "The batch that found it (etl_batches.batch_id).",
            "seen_at": "When that batch saw it, UTC: the first-seen time of a change is its earliest row.",
            "table_name": "Staging table the records were loading into.",
            "source": "The file (URL or path) whose records changed; past 20 files for one change, "
                      "one row says how many more.",
            "change_kind": "new_key, vanished_key, type_change, refused_value (a value outside what the "
                           "schema accepts, under the freeze contract), or baseline (the first batch's schema).",
            "field_path": "The key, as a path: a.b for a key of a nested object, a[] for an array's "
                          "elements.",
            "json_type": "The JSON type found: string, number, boolean, object, array, null; absent for "
                         "a vanished key (and for a baseline key some records lacked).",
            "expected": "The types the known schema had for the key; NULL for a new key.",
            "records": "Records of the file with the change (for a vanished key: without the key).",
            "line_number": "First line of the file with the change, from 1.",
            "example": "The first value found, as JSON; NULL for a vanished key.",
            "source_version": "The file's version the change was seen in (as in loaded_objects); a file a "
                              "batch failed under the freeze contract is held back while this is its version.",
        },
    ),
    "song_catalog": Described(
        "Grain: one row per song_id, the version of the latest file that had it. Bookkeeping: "
        "the song catalog as loaded, kept so a later batch can recompute songs and artists from "
        "every song.",
        {
            "song_id": "Song id (staging_songs.song_id).",
            "title": "Song title.",
            "artist_id": "Artist id the song is credited to.",
            "artist_name": "Name the song is credited to.",
            "artist_location": "Artist's location as free text; NULL when empty.",
            "artist_latitude": "Artist's latitude in degrees; NULL when unknown.",
            "artist_longitude": "Artist's longitude in degrees; NULL when unknown.",
            "duration": "Song duration in seconds.",
            "year": "Release year as the file gives it; 0 when unknown.",
            "batch_id": _WROTE,
        },
    ),
    "text_repairs": Described(
        "Grain: one row per event text value (song title or artist name) that was double-encoded "
        "UTF-8. Bookkeeping: filled by the toolkit after staging; the transforms use the repaired "
        "text.",
        {
            "original": "The text as logged: UTF-8 that was read as Latin-1 and encoded again, twice.",
            "repaired": "The text it stands for, decoded back to the original UTF-8.",
        },
    ),
    # --- star schema ---------------------------------------------------------------------
    "users": Described(
        "Grain: one row per user (a non-empty userId in any event). Dimension: the attributes "
        "of the user's latest event; for the level at a given time use user_levels, for the level "
        "of a play songplays.level.",
        {
            "user_id": "User id (the events' userId, as an integer).",
            "first_name": "First name at the latest event.",
            "last_name": "Last name at the latest event.",
            "gender": "Gender, F or M, at the latest event.",
            "level": "Subscription level at the latest event: free or paid.",
            "last_seen_at": "Time of the user's latest event, UTC.",
            "registered_at": "When the user signed up, UTC (the events' registration, epoch milliseconds); "
                             "NULL when the events give none.",
            "batch_id": _WROTE,
        },
    ),
    "artists": Described(
        "Grain: one row per artist_id in the song catalog. Dimension: an artist credited under "
        "several spellings takes the spelling on most of its songs (ties: the alphabetically "
        "first), and the location of a song carrying it, preferring one with coordinates.",
        {
            "artist_id": "Artist id (song_data's artist_id).",
            "name": "Artist name (the chosen spelling).",
            "location": "Location as free text; NULL when the catalog gives none.",
            "latitude": "Latitude in degrees; NULL when the catalog gives none.",
            "longitude": "Longitude in degrees; NULL when the catalog gives none.",
            "batch_id": _WROTE,
        },
    ),
    "songs": Described(
        "Grain: one row per song_id in the song catalog. Dimension: plays are matched to it on "
        "title, artist_name and duration.",
        {
            "song_id": "Song id (song_data's song_id).",
            "title": "Song title.",
            "artist_id": "The artist the song is credited to (artists.artist_id).",
            "artist_name": "Name the song is credited to, which plays are matched on (may differ from "
                           "artists.name).",
            "year": "Release year; NULL where the catalog says 0 (unknown).",
            "duration": "Song duration in seconds.",
            "batch_id": _WROTE,
        },
    ),
    "time": Described(
        "Grain: one row per distinct start_time of a song play, to the millisecond. Dimension: "
        "the parts of that time, all in UTC.",
        {
            "start_time": "Time of the play, UTC, millisecond precision (songplays.start_time).",
            "hour": "Hour of the day, 0-23.",
            "day": "Day of the month, 1-31.",
            "week": "ISO week number, 1-53, with no ISO year beside it: 2018-12-31 is in week 1. "
                    "Group weeks by date_trunc('week', start_time) (the Monday), which keeps the year.",
            "month": "Month, 1-12.",
            "year": "Year, e.g. 2018.",
            "weekday": "Day of the week: 0 = Sunday ... 6 = Saturday (PostgreSQL's and Redshift's dow; "
                       "not ISO's 1 = Monday ... 7 = Sunday, nor Python's 0 = Monday).",
            "batch_id": _WROTE,
        },
    ),
    "songplays": Described(
        "Grain: one row per song play, i.e. per NextSong event, identified by (userId, sessionId, "
        "itemInSession, ts). Fact: the play's own title, artist name and duration stay on the row, "
        "so a play counts whether or not it matched the catalog.",
        {
            "songplay_id": "MD5 of the event key (userId|sessionId|itemInSession|ts), 32 hex digits: "
                           "a reloaded event maps to the same row. Equals app_events.event_id.",
            "start_time": "Time of the play, UTC, millisecond precision (the event's ts).",
            "user_id": "The user who played (users.user_id).",
            "level": "The user's subscription level at the play: free or paid.",
            "song_id": "The catalog's song with the play's title, artist name and duration "
                       "(songs.song_id); NULL when the catalog has none (set when the song arrives).",
            "artist_id": "That song's artist (artists.artist_id); NULL when the play matched no song.",
            "session_id": "Session id; unique per user only.",
            "item_in_session": "Position of the event in its session, from 0.",
            "location": "User's metropolitan area and state at the play.",
            "user_agent": "Browser user agent at the play, as logged: most values keep the double quotes "
                          "around them (\"Mozilla/5.0 ...\"); trim them (btrim(user_agent, '\"')) before "
                          "matching the start.",
            "song_title": "Song title as played (the event's song, double-encoded UTF-8 repaired).",
            "artist_name": "Artist name as played (the event's artist, double-encoded UTF-8 repaired).",
            "song_duration": "Song duration in seconds as played (the event's length).",
            "batch_id": _BATCH_ID,
            "object_id": _OBJECT_ID,
        },
    ),
    "app_events": Described(
        "Grain: one row per app event of any page (NextSong, Home, Submit Upgrade, ...), "
        "identified like songplays by (userId, sessionId, itemInSession, ts). Fact: daily active "
        "users, whole sessions and level changes.",
        {
            "event_id": "MD5 of the event key (userId|sessionId|itemInSession|ts), 32 hex digits; equals "
                        "songplays.songplay_id for a NextSong event.",
            "start_time": "Time of the event, UTC, millisecond precision (the event's ts).",
            "user_id": "The user (users.user_id); NULL for logged-out events.",
            "level": "The subscription level at the event: free or paid.",
            "session_id": "Session id; unique per user only.",
            "item_in_session": "Position of the event in its session, from 0.",
            "page": "Page of the app, e.g. NextSong, Home, Submit Upgrade.",
            "auth": "Authentication state, e.g. Logged In, Logged Out.",
            "status": "HTTP status of the request, e.g. 200.",
            "batch_id": _BATCH_ID,
            "object_id": _OBJECT_ID,
        },
    ),
    "user_levels": Described(
        "Grain: one row per stretch of time a user stayed on one level (type-2 history). "
        "History: brought up to date for the users of each batch from their app_events.",
        {
            "user_id": "The user (users.user_id).",
            "level": "Subscription level during the stretch: free or paid.",
            "valid_from": "First event on this level, UTC (inclusive).",
            "valid_to": "First event on the next level, UTC (exclusive); NULL while the stretch lasts.",
            "batch_id": _WROTE,
        },
    ),
    # --- rollups -------------------------------------------------------------------------
    "plays_by_user_day": Described(
        "Grain: one row per batch, UTC day, user and the user's level, location and user agent "
        "at the plays. Summary of the plays a batch added, for the insights report. " + _ROLLUP,
        {
            "batch_id": _BATCH_ID,
            "day": "UTC date of the plays.",
            "user_id": "The user (users.user_id).",
            "level": "Subscription level at the plays: free or paid.",
            "location": "User's metropolitan area and state at the plays.",
            "user_agent": "Browser user agent at the plays.",
            "plays": "Song plays the batch added for this group.",
        },
    ),
    "plays_by_hour": Described(
        "Grain: one row per batch and UTC hour. Summary of the plays a batch added, for the "
        "insights report. " + _ROLLUP,
        {
            "batch_id": _BATCH_ID,
            "hour_start": "Start of the hour, UTC.",
            "plays": "Song plays the batch added in that hour.",
        },
    ),
    "plays_by_song": Described(
        "Grain: one row per batch and song as played (title and credited artist name, matched to "
        "the catalog or not). Summary of the plays a batch added, for the insights report. "
        + _ROLLUP,
        {
            "batch_id": _BATCH_ID,
            "song_title": "Song title as played (songplays.song_title).",
            "artist_name": "Artist name as played (songplays.artist_name).",
            "plays": "Plays of that song the batch added.",
        },
    ),
    "events_by_user_day": Described(
        "Grain: one row per batch, UTC day and user (or logged out). Summary of the app events a "
        "batch added, for daily active users. " + _ROLLUP,
        {
            "batch_id": _BATCH_ID,
            "day": "UTC date of the events.",
            "user_id": "The user (users.user_id); NULL for the logged-out events.",
            "events": "App events the batch added.",
            "plays": "Of those, song plays (NextSong events).",
        },
    ),
    "session_parts": Described(
        "Grain: one row per batch and session (user and session id): the part of the session the "
        "batch added, as a session can span two days' files. Summary for session length and "
        "depth: combine a session's parts with min, max and sum. " + _ROLLUP,
        {
            "batch_id": _BATCH_ID,
            "user_id": "The user (users.user_id); NULL for logged-out events.",
            "session_id": "Session id; unique per user only.",
            "first_at": "The part's first event, UTC.",
            "last_at": "The part's last event, UTC.",
            "events": "App events in the part.",
            "songs": "Song plays (NextSong events) in the part.",
            "opening_level": "Level at the session's first event (item 0); NULL when item 0 is in "
                             "another part.",
            "any_level": "paid if any event of the part was on the paid level, else free.",
            "played_until": "When the part's last song ended, UTC: the latest end of its plays, each play's "
                            "start_time (to the second) plus its song_duration (counted from 0 to a day); NULL "
                            "when the part has no play.",
        },
    ),
    "matched_plays_by_day": Described(
        "Grain: one row per batch, UTC day and catalog song. Summary of the plays matched to the catalog: "
        "those a batch added that matched, and older ones a song that arrived in the batch matched (on "
        "the play's own day). " + _ROLLUP,
        {
            "batch_id": _BATCH_ID,
            "day": "UTC date of the plays.",
            "song_id": "The song the plays matched (songs.song_id).",
            "artist_id": "That song's artist (artists.artist_id) when the plays matched it.",
            "plays": "Plays matched.",
        },
    ),
    "batch_totals": Described(
        "Grain: one row per batch and measure. Summary: what a batch added to time and to the "
        "plays matched to the catalog, so the run summary's totals need no scan of the facts. "
        + _ROLLUP,
        {
            "batch_id": _BATCH_ID,
            "measure": "time rows (rows added to time), or matched plays (plays the batch matched to "
                       "the catalog: its own, and older plays a newly arrived song matched).",
            "row_count": "The count.",
        },
    ),
    # --- views ---------------------------------------------------------------------------
    "plays": Described(
        "Grain: one row per song play, like songplays. View for analysts: the song and artist as "
        "the catalog has them when the play matched it (in_catalog), else as the event had them, "
        "so top songs and top artists over it count every play.",
        {
            "songplay_id": "The play (songplays.songplay_id).",
            "start_time": "Time of the play, UTC, millisecond precision.",
            "user_id": "The user who played (users.user_id).",
            "level": "The user's subscription level at the play: free or paid.",
            "session_id": "Session id; unique per user only.",
            "item_in_session": "Position of the event in its session, from 0.",
            "location": "User's metropolitan area and state at the play.",
            "user_agent": "Browser user agent at the play.",
            "song_id": "The matched song (songs.song_id); NULL when the play matched no song.",
            "artist_id": "The matched song's artist (artists.artist_id); NULL when it matched none.",
            "song_title": "The catalog's title when matched, else the title as played.",
            "artist_name": "The artist's name in artists when matched, else the name as played: an artist "
                           "whose catalog spelling differs from the events' is split in two when grouped "
                           "by this column; group by artist_id for matched plays, or use "
                           "songplays.artist_name (always as played).",
            "song_duration": "Duration in seconds: the catalog's when matched, else as played.",
            "in_catalog": "true when the play matched a song of the catalog.",
        },
    ),
    "load_summary": Described(
        "Grain: one row for the whole warehouse. View for analysts (and the insights report): the "
        "loader's bookkeeping as counts, over every load; the bookkeeping tables themselves stay the "
        "loader's.",
        {
            "batches_published": "ETL batches that published their data (etl_batches).",
            "batches_failed": "ETL batches that failed and changed nothing else.",
            "last_load_finished": "When the last published batch finished, UTC; NULL before the first.",
            "source_files": "Source files loaded (loaded_objects), each in its latest version.",
            "records_rejected": "Source records rejected by a load (load_errors), with their reasons.",
            "records_with_replaced_characters": "Records loaded after replacing invalid UTF-8 characters.",
            "names_repaired": "Distinct double-encoded names repaired (text_repairs).",
        },
    ),
    "load_error_reasons": Described(
        "Grain: one row per staging table, disposition and reason of the records a load rejected or "
        "repaired. View for analysts (and the insights report): counts only, never a record's text.",
        {
            "table_name": "The staging table the record was for.",
            "disposition": "rejected (not loaded) or replaced (loaded with invalid characters replaced).",
            "reason": "Why, as the load said it.",
            "records": "How many records.",
            "last_seen": "When the last of them was logged, UTC.",
        },
    ),
    "schema_changes": Described(
        "Grain: one row per staging table, change, key and type of the schema drift the loads recorded "
        "(schema_drift without a first batch's schema). View for analysts (and the insights report): "
        "counts only, never a value.",
        {
            "table_name": "The staging table the records were for.",
            "change_kind": "new_key, vanished_key, type_change or refused_value.",
            "field_path": "The key, as a path (a.b nested, a[] an array's elements).",
            "json_type": "The JSON type found (absent for a vanished key).",
            "expected": "The types the known schema had for the key; NULL for a new key.",
            "files": "Source files with the change.",
            "records": "Records with the change.",
            "first_seen": "When a batch first saw it, UTC.",
            "last_seen": "When a batch last saw it, UTC.",
        },
    ),
    "source_files": Described(
        "Grain: one row per source file in the warehouse. View: where a fact row came from and when it "
        "was loaded, joined on the row's object_id: select p.*, f.source_file, f.loaded_at from songplays p "
        "join source_files f using (object_id).",
        {
            "object_id": "The file's key (songplays.object_id, app_events.object_id).",
            "staging_table": "staging_events (log files) or staging_songs (song files).",
            "source_file": "Full location of the file: an s3:// URL or a local path.",
            "batch_id": "The batch that loaded the file's current version: the batch_id its rows carry.",
            "loaded_at": "When that batch finished, UTC.",
            "row_count": "Rows the file gave (see loaded_objects.row_count).",
            "error_count": "Records of the file that batch rejected.",
        },
    ),
}


# What analysts trip over, on the data dictionary page: (where, what happens, what to do).
PITFALLS = [
    ("time.week", "An ISO week number with no ISO year column: the last days of December can be week 1 "
     "(of the next year) and the first days of January week 52 or 53 (of the year before), so grouping "
     "by (year, week) mixes weeks.", "Group by date_trunc('week', start_time), the week's Monday."),
    ("time.weekday", "0 = Sunday ... 6 = Saturday, as PostgreSQL's and Redshift's dow; ISO numbers "
     "Monday 1 to Sunday 7 and Python's weekday() Monday 0 to Sunday 6.",
     "Label days from the number as the column says, or use to_char(start_time, 'Dy')."),
    ("user_agent", "Most values keep the double quotes of the log (\"Mozilla/5.0 ...\"), some do not, "
     "so like 'Mozilla%' misses most rows.", "Compare btrim(user_agent, '\"')."),
    ("plays.artist_name", "Matched plays show the catalog's spelling, unmatched ones the event's: an "
     "artist spelt differently in the two has its plays split over two names.",
     "Group matched plays by artist_id, or use songplays.artist_name (always as played)."),
    ("songplays join songs", "Only the plays that matched the catalog (about 5 % on the real data) find a "
     "song: top songs over that join leave most plays out.", "Count plays through the view plays."),
    ("batch_totals", "Per load, not per day: the rows each load added to time and the plays it matched.",
     "Sum over batches for totals."),
]


@dataclass(frozen=True)
class Join:
    left: str            # the table (or view) joined from
    right: str           # the table joined to
    on: str              # the join condition, as SQL
    covers: str          # which rows of the left side find a row on the right
    redshift_key: bool   # declared as a foreign key on Redshift (sql_queries.INFORMATIONAL_KEYS)


JOINS = [
    Join("songplays", "users", "songplays.user_id = users.user_id",
         "Every play (real data: 6,820 of 6,820). users has the user's latest attributes; the level "
         "of the play is songplays.level.", True),
    Join("songplays", "time", "songplays.start_time = time.start_time",
         "Every play (real data: 6,820 plays, 6,813 time rows: plays in the same millisecond share one).",
         True),
    Join("songplays", "songs", "songplays.song_id = songs.song_id",
         "Matched plays only: song_id is NULL when the catalog has no song with the play's title, "
         "artist name and duration (real data: 327 of 6,820 plays, 4.8%). An inner join drops the "
         "other plays; count songs and artists over the plays view, which keeps every play.", True),
    Join("songplays", "artists", "songplays.artist_id = artists.artist_id",
         "Matched plays only, as for songs (real data: 327 of 6,820 plays, 4.8%).", True),
    Join("songs", "artists", "songs.artist_id = artists.artist_id",
         "Every song (real data: 14,896 of 14,896).", True),
    Join("app_events", "users", "app_events.user_id = users.user_id",
         "Logged-in events only: user_id is NULL for logged-out events (real data: 7,770 of 8,056; "
         "286 logged out).", True),
    Join("user_levels", "users", "user_levels.user_id = users.user_id",
         "Every stretch (real data: 106 stretches of 97 users); users.level is the level of the "
         "user's stretch with valid_to NULL.", True),
    Join("songplays", "app_events", "songplays.songplay_id = app_events.event_id",
         "Every play: it is the NextSong event with the same key (real data: 6,820 of 8,056 events "
         "are plays).", False),
    Join("songplays", "user_levels",
         "songplays.user_id = user_levels.user_id and songplays.start_time >= user_levels.valid_from "
         "and (user_levels.valid_to is null or songplays.start_time < user_levels.valid_to)",
         "Every play falls in one stretch of its user (real data: 6,820 of 6,820, each on the "
         "stretch's level).", False),
    Join("songplays", "songs, artists (the plays view)",
         "left join songs on songs.song_id = songplays.song_id "
         "left join artists on artists.artist_id = songplays.artist_id",
         "Every play (real data: 6,820, of which 327 in_catalog): the view takes the catalog's title, "
         "artist name and duration when the play matched, else the play's own.", False),
    Join("songs", "song_catalog", "songs.song_id = song_catalog.song_id",
         "Every song: songs is derived from song_catalog, row for row.", False),
    Join("songplays", "source_files (app_events too)", "songplays.object_id = source_files.object_id",
         "Every play: the file it came from, and the batch that loaded it (songplays.batch_id = "
         "source_files.batch_id).", False),
    Join("loaded_objects", "etl_batches", "loaded_objects.batch_id = etl_batches.batch_id",
         "Every file: the published batch that last loaded it. load_errors.batch_id and each "
         "summary's batch_id join etl_batches the same way.", False),
]


def quoted(text: str) -> str:
    """A SQL string literal: single quotes doubled (standard SQL, both engines)."""
    return "'" + text.replace("'", "''") + "'"


def comment_statements() -> list[str]:
    """COMMENT ON for every table, view and column, in the order of TABLES then VIEWS.

    Redshift supports COMMENT ON for tables, views and columns (Redshift Database Developer
    Guide, "COMMENT"; not on the columns of late-binding views, which the plays view is not).
    """
    statements = []
    for name in q.TABLES + q.VIEWS:
        described = DESCRIPTIONS[name]
        kind = "view" if name in q.VIEWS else "table"
        statements.append(f"comment on {kind} {name} is {quoted(described.comment)}")
        statements += [f"comment on column {name}.{column} is {quoted(text)}"
                       for column, text in described.columns.items()]
    return statements
