-- Sessions: every listening session, when it ran, how long, and what happened in it.
--
-- Grain: one row per session, i.e. per (user_id, session_id): session ids repeat across
--   users, so a session is a logged-in user's events sharing a session_id. Logged-out
--   events (user_id null) belong to no user's session and are left out.
-- Definitions: started_at / ended_at are the session's first and last event; events
--   counts its app events of any page, plays its NextSong events; level is the level on
--   its first event (ordered by time, then item_in_session). length_seconds is whole
--   seconds: the last event's time minus the first's, each truncated to the second,
--   because EXTRACT(epoch ...) returns an integer on Redshift (a numeric on PostgreSQL)
--   and truncating first makes both engines agree. A one-event session lasts 0 seconds.
-- Covers: app_events.
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
        max(start_time) as ended_at,
        count(*) as events,
        sum(case when page = 'NextSong' then 1 else 0 end) as plays
    from session_events
    group by user_id, session_id
),

opening_levels as (
    select user_id, session_id, level
    from session_events
    where event_number = 1
)

select
    t.user_id,
    t.session_id,
    t.started_at,
    t.ended_at,
    t.events,
    t.plays,
    o.level,
    cast(extract(epoch from date_trunc('second', t.ended_at))
         - extract(epoch from date_trunc('second', t.started_at)) as bigint) as length_seconds
from session_totals t
join opening_levels o on o.user_id = t.user_id and o.session_id = t.session_id
order by t.user_id, t.session_id;
