-- Daily active users: how many people use Sparkify each day, and how many listen?
--
-- Grain: one row per UTC day with any app event.
-- Definitions: a user is active on a day when they have any app event (any page, not only
--   plays) that day while logged in (user_id not null); a listener has a play (NextSong)
--   that day. events counts every app event, logged-out ones included; plays counts the
--   NextSong events.
-- Covers: app_events.
-- Order: day.
-- Runs unchanged on PostgreSQL and Redshift.

with events_by_day as (
    select
        cast(start_time as date) as day,
        user_id,
        page
    from app_events
)

select
    day,
    count(distinct user_id) as active_users,
    count(distinct case when page = 'NextSong' then user_id end) as listeners,
    sum(case when page = 'NextSong' then 1 else 0 end) as plays,
    count(*) as events
from events_by_day
group by day
order by day;
