-- Sessions: every listening session, when it ran, how long, and what happened in it.
--
-- Grain: one row per session, i.e. per (user_id, session_id): session ids repeat across
--   users, so a session is a logged-in user's events sharing a session_id. Logged-out
--   events (user_id null) belong to no user's session and are left out.
-- Definitions: (the report's) started_at is the session's first event, last_event_at its
--   last; events counts its app events of any page, plays its NextSong events; level is
--   the level on its first event (ordered by time, then item_in_session). A play is
--   stamped when its song starts, so a session ends when its last song ends (that play's
--   start plus the song's length as played) or at its last event, whichever is later:
--   length_minutes runs from its start to that end (songs last fractions of a second),
--   the stamps each truncated to the second because EXTRACT(epoch ...) returns an integer
--   on Redshift (a numeric on PostgreSQL) and truncating first makes both engines agree.
--   A session with no play (plays = 0) lasts from its first event to its last;
--   session_length_by_level counts such sessions apart instead of averaging them in.
-- Covers: app_events, songplays (the length of each session's last song).
-- Order: user_id, session_id.
-- Runs unchanged on PostgreSQL and Redshift.

with session_events as (
    select
        user_id,
        session_id,
        start_time,
        page,
        level,
        row_number() over (
            partition by user_id, session_id order by start_time, item_in_session
        ) as event_number
    from app_events
    where user_id is not null
),

session_totals as (
    select
        user_id,
        session_id,
        min(start_time) as started_at,
        max(start_time) as last_event_at,
        count(*) as events,
        sum(case when page = 'NextSong' then 1 else 0 end) as plays
    from session_events
    group by user_id, session_id
),

opening_levels as (
    select user_id, session_id, level
    from session_events
    where event_number = 1
),

song_ends as (
    select
        user_id,
        session_id,
        max(extract(epoch from date_trunc('second', start_time)) + coalesce(song_duration, 0)) as played_until
    from songplays
    where user_id is not null
    group by user_id, session_id
)

select
    t.user_id,
    t.session_id,
    t.started_at,
    t.last_event_at,
    t.events,
    t.plays,
    o.level,
    (greatest(cast(extract(epoch from date_trunc('second', t.last_event_at)) as double precision),
              coalesce(cast(e.played_until as double precision), 0))
     - cast(extract(epoch from date_trunc('second', t.started_at)) as double precision)) / 60 as length_minutes
from session_totals t
join opening_levels o on o.user_id = t.user_id and o.session_id = t.session_id
left join song_ends e on e.user_id = t.user_id and e.session_id = t.session_id
order by t.user_id, t.session_id;
