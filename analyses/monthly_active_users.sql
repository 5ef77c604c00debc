-- Monthly active users: how many people use Sparkify each month, and how sticky is it?
--
-- Grain: one row per calendar month (UTC) with any logged-in app event.
-- Definitions: a user is active in a month (or on a day) when they have any app event
--   while logged in (user_id not null) in it. avg_daily_active_users averages the daily
--   active users over the month's days that had any; stickiness is that average divided
--   by the month's active users (DAU / MAU: the share of the month's users on an
--   average day).
-- Covers: app_events.
-- Order: month.
-- Runs unchanged on PostgreSQL and Redshift.

with active_user_days as (
    select distinct
        cast(date_trunc('month', start_time) as date) as month,
        cast(start_time as date) as day,
        user_id
    from app_events
    where user_id is not null
),

daily as (
    select month, day, count(*) as active_users
    from active_user_days
    group by month, day
),

daily_average as (
    select
        month,
        count(*) as active_days,
        avg(cast(active_users as double precision)) as avg_daily_active_users
    from daily
    group by month
),

monthly as (
    select month, count(distinct user_id) as active_users
    from active_user_days
    group by month
)

select
    m.month,
    m.active_users,
    d.active_days,
    d.avg_daily_active_users,
    d.avg_daily_active_users / m.active_users as stickiness
from monthly m
join daily_average d on d.month = m.month
order by m.month;
