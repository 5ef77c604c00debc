-- Weekly cohort retention: of the users who signed up in a given week, how many are still
-- active one, two, three ... weeks later?
--
-- Grain: one row per sign-up week (cohort) and week since sign-up (week_number, 0 = the
--   sign-up week itself), for every week, from the cohort's on, in which any user was
--   active.
-- Definitions: a user's cohort is the week (starting Monday, UTC, date_trunc('week')) of
--   users.registered_at, their sign-up time; users without one are in no cohort. A user
--   is active in a week when they have any app event (any page, logged in) in it.
--   cohort_users: the cohort's size; retention: active_users / cohort_users. Weeks in
--   which nobody was active (before the logs begin) are not shown, rather than shown as
--   zero. week_number comes from the seconds between the two Mondays: EXTRACT(epoch ...)
--   is an integer on Redshift and keeps the fraction on PostgreSQL, so each is taken of
--   its week's start, date_trunc('week', ...), whole seconds on both engines.
-- Period: activity between the two timestamps in active_days, [from, to) UTC; a
--   cohort's size and its activity come from that same period: its users are those who
--   signed up before the period's end and have an event in the period. As written,
--   everything. Change the timestamps to limit it (insights.py --since/--until does); a
--   week cut by the period's edge counts only its days inside it.
-- Covers: users (registered_at) joined to events_by_user_day (each user's app events per UTC
--   day, summed over the loads that added them), a small fraction of app_events' size.
-- Order: cohort_week, week_number.
-- Runs unchanged on PostgreSQL and Redshift.

with active_days as (
    select user_id, day
    from events_by_user_day
    where day >= cast('1900-01-01 00:00:00' as timestamp)
      and day < cast('9999-12-31 00:00:00' as timestamp)
      and user_id is not null
    group by user_id, day
    having sum(events) <> 0
),

period_activity as (
    select distinct user_id, date_trunc('week', cast(day as timestamp)) as activity_week
    from active_days
),

period_users as (
    select distinct user_id
    from period_activity
),

cohorts as (
    select u.user_id, date_trunc('week', u.registered_at) as cohort_week
    from users u
    join period_users p on p.user_id = u.user_id
    where u.registered_at < cast('9999-12-31 00:00:00' as timestamp)
),

cohort_sizes as (
    select cohort_week, count(*) as cohort_users
    from cohorts
    group by cohort_week
),

observed_weeks as (
    select distinct activity_week
    from period_activity
),

active as (
    select c.cohort_week, a.activity_week, count(*) as active_users
    from cohorts c
    join period_activity a on a.user_id = c.user_id
    group by c.cohort_week, a.activity_week
),

grid as (
    select s.cohort_week, w.activity_week, s.cohort_users
    from cohort_sizes s
    join observed_weeks w on w.activity_week >= s.cohort_week
)

select
    cast(g.cohort_week as date) as cohort_week,
    cast((extract(epoch from date_trunc('week', g.activity_week))
          - extract(epoch from date_trunc('week', g.cohort_week))) / 604800 as integer)
        as week_number,
    g.cohort_users,
    coalesce(a.active_users, 0) as active_users,
    cast(coalesce(a.active_users, 0) as double precision) / g.cohort_users as retention
from grid g
left join active a on a.cohort_week = g.cohort_week and a.activity_week = g.activity_week
order by cohort_week, week_number;
