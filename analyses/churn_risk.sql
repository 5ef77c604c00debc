-- Churn risk: who looked at leaving but has not left, and are they still listening?
--
-- Grain: one row per user whose latest visit to the Downgrade or Cancel page in the period
--   has no Submit Downgrade or Cancellation Confirmation at or after it in the period.
-- Definitions: risk_page_visits counts the user's Downgrade and Cancel page visits in the
--   period, last_visit_at is the latest of them; last_seen_at is the user's last event in
--   the period and level the level on it (ordered by time, then item_in_session), looked
--   up for the users at risk only, by its time (an aggregate), not by ranking every event
--   of the period.
--   plays_last_7_days counts their plays (NextSong) in the period's last 7 days: the 7
--   days before the period's end, or before the end of the last day with events when the
--   data stops earlier. A list the team can act on: the most active first.
-- Period: the events between the two timestamps (every pair of them), [from, to) UTC; as
--   written, everything. Change them to limit it (insights.py --since/--until does).
-- Covers: app_events, read for the Downgrade, Cancel and submit pages and for the users
--   at risk; the days with events and the plays of the last 7 days from the rollups
--   events_by_user_day and plays_by_user_day (per user and UTC day, summed over loads).
-- Order: plays_last_7_days descending, last_seen_at descending, user_id.
-- Runs unchanged on PostgreSQL and Redshift.

with signal_users as (
    select
        user_id,
        sum(case when page in ('Downgrade', 'Cancel') then 1 else 0 end) as risk_page_visits,
        max(case when page in ('Downgrade', 'Cancel') then start_time end) as last_visit_at,
        max(case when page in ('Submit Downgrade', 'Cancellation Confirmation') then start_time end)
            as last_submitted_at
    from app_events
    where start_time >= cast('1900-01-01 00:00:00' as timestamp)
      and start_time < cast('9999-12-31 00:00:00' as timestamp)
      and user_id is not null
      and page in ('Downgrade', 'Cancel', 'Submit Downgrade', 'Cancellation Confirmation')
    group by user_id
),

risk_visits as (
    select user_id, risk_page_visits, last_visit_at
    from signal_users
    where last_visit_at is not null and (last_submitted_at is null or last_submitted_at < last_visit_at)
),

days_with_events as (
    select day
    from events_by_user_day
    where day >= cast('1900-01-01 00:00:00' as timestamp)
      and day < cast('9999-12-31 00:00:00' as timestamp)
      and user_id is not null
    group by day
    having sum(events) <> 0
),

period_close as (
    select least(cast('9999-12-31 00:00:00' as timestamp),
                 cast(max(day) as timestamp) + interval '1 day') as closes_at
    from days_with_events
),

last_moments as (
    select e.user_id, max(e.start_time) as start_time
    from app_events e
    join risk_visits v on v.user_id = e.user_id
    where e.start_time >= cast('1900-01-01 00:00:00' as timestamp)
      and e.start_time < cast('9999-12-31 00:00:00' as timestamp)
    group by e.user_id
),

latest_events as (
    select
        e.user_id,
        e.start_time,
        e.level,
        row_number() over (partition by e.user_id order by e.item_in_session desc) as from_end
    from app_events e
    join last_moments m on m.user_id = e.user_id and e.start_time >= m.start_time  -- = m.start_time, its max
    where e.start_time >= cast('1900-01-01 00:00:00' as timestamp)
      and e.start_time < cast('9999-12-31 00:00:00' as timestamp)
),

recent_plays as (
    select b.user_id, cast(sum(b.plays) as bigint) as plays
    from plays_by_user_day b
    join risk_visits v on v.user_id = b.user_id
    cross join period_close c
    where b.day >= cast('1900-01-01 00:00:00' as timestamp)
      and b.day < cast('9999-12-31 00:00:00' as timestamp)
      and cast(b.day as timestamp) >= c.closes_at - interval '7 days'
    group by b.user_id
)

select
    v.user_id,
    v.risk_page_visits,
    v.last_visit_at,
    l.start_time as last_seen_at,
    coalesce(r.plays, 0) as plays_last_7_days,
    l.level
from risk_visits v
join latest_events l on l.user_id = v.user_id and l.from_end = 1
left join recent_plays r on r.user_id = v.user_id
order by plays_last_7_days desc, last_seen_at desc, v.user_id;
