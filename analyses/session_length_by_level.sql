-- Session length by level: do paying users listen longer per session than free ones?
--
-- Grain: one row per level (free, paid) a session opened on.
-- Definitions: (the report's) a session is a logged-in user's events sharing a session_id
--   (session ids repeat across users); its level is the level on its first event (ordered
--   by time, then item_in_session). It ends when its last song ends (that play's start
--   plus the song's length as played) or at its last event, whichever is later; its length
--   runs from its first event to that end, the stamps each truncated to the second
--   (EXTRACT(epoch ...) is an integer on Redshift, a numeric on PostgreSQL: truncating
--   first makes both agree), here in minutes. sessions counts every session;
--   sessions_without_plays those with no play, which are counted apart: avg_plays and the
--   minutes are over the sessions with at least one play (listening_sessions), not
--   averaged in as zero-song sessions. median_minutes is the continuous median
--   (PERCENTILE_CONT). users is computed in its own step: Redshift does not allow
--   PERCENTILE_CONT in a SELECT with COUNT(DISTINCT).
-- Covers: app_events, songplays (the length of each session's last song).
-- Order: level.
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

song_ends as (
    select
        user_id,
        session_id,
        max(extract(epoch from date_trunc('second', start_time)) + coalesce(song_duration, 0)) as played_until
    from songplays
    where user_id is not null
    group by user_id, session_id
),

sessions as (
    select
        e.user_id,
        e.session_id,
        max(case when e.event_number = 1 then e.level end) as level,
        sum(case when e.page = 'NextSong' then 1 else 0 end) as plays,
        cast(extract(epoch from date_trunc('second', min(e.start_time))) as double precision) as started_at,
        cast(extract(epoch from date_trunc('second', max(e.start_time))) as double precision) as last_event_at
    from session_events e
    group by e.user_id, e.session_id
),

lengths_of_sessions as (
    select
        s.user_id,
        s.level,
        s.plays,
        (greatest(s.last_event_at, coalesce(cast(p.played_until as double precision), 0)) - s.started_at) / 60
            as minutes
    from sessions s
    left join song_ends p on p.user_id = s.user_id and p.session_id = s.session_id
),

lengths as (
    select
        level,
        count(*) as listening_sessions,
        avg(cast(plays as double precision)) as avg_plays,
        avg(minutes) as avg_minutes,
        percentile_cont(0.5) within group (order by minutes) as median_minutes,
        max(minutes) as max_minutes
    from lengths_of_sessions
    where plays > 0
    group by level
),

counts_by_level as (
    select
        level,
        count(distinct user_id) as users,
        count(*) as sessions,
        sum(case when plays > 0 then 0 else 1 end) as sessions_without_plays
    from lengths_of_sessions
    group by level
)

select
    c.level,
    c.users,
    c.sessions,
    c.sessions_without_plays,
    l.listening_sessions,
    l.avg_plays,
    l.avg_minutes,
    l.median_minutes,
    l.max_minutes
from counts_by_level c
left join lengths l on l.level = c.level
order by c.level;
