-- Churn risk: who looked at leaving but has not left, and are they still listening?
--
-- Grain: one row per user whose latest visit to the Downgrade or Cancel page in the period
--   has no Submit Downgrade or Cancellation Confirmation at or after it in the period.
-- Definitions: risk_page_visits counts the user's Downgrade and Cancel page visits in the
--   period, last_visit_at is the latest of them; last_seen_at is the user's last event in
--   the period and level the level on it (ordered by time, then item_in_session). Each is
--   looked up for the users at risk only, the last event by its time (an aggregate) rather
--   than by ranking every event of the period (a sort of them all).
--   plays_last_7_days counts their plays (NextSong) in the period's last 7 days: the 7
--   days before the period's end, or before the end of the last day with events when the
--   data stops earlier. A list the team can act on: the most active first.
-- Period: the events between the two timestamps in period_events, [from, to) UTC; as
--   written, everything. Change them to limit it (insights.py --since/--until does).
-- Covers: app_events.
-- Order: plays_last_7_days descending, last_seen_at descending, user_id.
-- Runs unchanged on PostgreSQL and Redshift.

with period_events as (
    select user_id, start_time, item_in_session, page, level
    from app_events
    where start_time >= cast('1900-01-01 00:00:00' as timestamp)
      and start_time < cast('9999-12-31 00:00:00' as timestamp)
      and user_id is not null
),

period_close as (
    select least(cast('9999-12-31 00:00:00' as timestamp),
                 date_trunc('day', max(start_time)) + interval '1 day') as closes_at
    from period_events
),

risk_visits as (
    select user_id, count(*) as risk_page_visits, max(start_time) as last_visit_at
    from period_events
    where page in ('Downgrade', 'Cancel')
    group by user_id
),

submitted_after as (
    select v.user_id
    from risk_visits v
    join period_events e
        on e.user_id = v.user_id
        and e.page in ('Submit Downgrade', 'Cancellation Confirmation')
        and e.start_time >= v.last_visit_at
    group by v.user_id
),

last_moments as (
    select e.user_id, max(e.start_time) as start_time
    from period_events e
    join risk_visits v on v.user_id = e.user_id
    group by e.user_id
),

latest_events as (
    select
        e.user_id,
        e.start_time,
        e.level,
        row_number() over (partition by e.user_id order by e.item_in_session desc) as from_end
    from period_events e
    join last_moments m on m.user_id = e.user_id and e.start_time >= m.start_time  -- = m.start_time, its max
),

recent_plays as (
    select e.user_id, count(*) as plays
    from period_events e
    join risk_visits v on v.user_id = e.user_id
    cross join period_close c
    where e.page = 'NextSong' and e.start_time >= c.closes_at - interval '7 days'
    group by e.user_id
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
left join submitted_after s on s.user_id = v.user_id
left join recent_plays r on r.user_id = v.user_id
where s.user_id is null
order by plays_last_7_days desc, last_seen_at desc, v.user_id;
