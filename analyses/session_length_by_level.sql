-- Session length by level: do paying users listen longer per session than free ones?
--
-- Grain: one row per level (free, paid) a session opened on.
-- Definitions: a session is a logged-in user's events sharing a session_id (session ids
--   repeat across users); its level is the level on its first event (ordered by time, then
--   item_in_session); its length is whole seconds, the last event's time minus the
--   first's, each truncated to the second (EXTRACT(epoch ...) is an integer on Redshift,
--   a numeric on PostgreSQL: truncating first makes both agree), here shown in minutes.
--   median_minutes is the continuous median (PERCENTILE_CONT). users is computed in its
--   own step: Redshift does not allow PERCENTILE_CONT in a SELECT with COUNT(DISTINCT).
-- Covers: app_events.
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

sessions as (
    select
        e.user_id,
        e.session_id,
        max(case when e.event_number = 1 then e.level end) as level,
        sum(case when e.page = 'NextSong' then 1 else 0 end) as plays,
        cast(extract(epoch from date_trunc('second', max(e.start_time)))
             - extract(epoch from date_trunc('second', min(e.start_time))) as bigint) as length_seconds
    from session_events e
    group by e.user_id, e.session_id
),

lengths as (
    select
        level,
        count(*) as sessions,
        avg(cast(plays as double precision)) as avg_plays,
        avg(cast(length_seconds as double precision) / 60) as avg_minutes,
        percentile_cont(0.5) within group (order by cast(length_seconds as double precision) / 60)
            as median_minutes,
        max(cast(length_seconds as double precision) / 60) as max_minutes
    from sessions
    group by level
),

users_by_level as (
    select level, count(distinct user_id) as users
    from sessions
    group by level
)

select l.level, u.users, l.sessions, l.avg_plays, l.avg_minutes, l.median_minutes, l.max_minutes
from lengths l
join users_by_level u on u.level = l.level
order by l.level;
