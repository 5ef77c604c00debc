-- Churned users: who downgraded or cancelled, when, what did they do in the days before,
-- and did they keep listening?
--
-- Grain: one row per user with at least one 'Submit Downgrade' or
--   'Cancellation Confirmation' event (none is a valid answer: no rows).
-- Definitions: downgraded_at / cancelled_at are the user's first event of each page (NULL
--   when none); churned_at is the earlier of the two. A downgrade undone within an hour (the
--   user's level history, user_levels, has them back on paid less than an hour after the
--   Submit Downgrade) is a reversal, not churn: it counts for neither. plays_before / plays_after count
--   the user's plays (NextSong) strictly before / after churned_at. The days before:
--   plays_days_8_to_14_before counts their plays in [churned_at - 14 days, churned_at -
--   7 days), plays_days_1_to_7_before in [churned_at - 7 days, churned_at), and
--   downgrade_visits_before their visits to the Downgrade page before churned_at.
--   current_level is the level on the user's latest event (users.level).
-- Period: the events between the two timestamps (in period_events and activity_around),
--   [from, to) UTC; as written, everything. Change them to limit it (insights.py
--   --since/--until does).
-- Covers: app_events joined to users and user_levels. The plays and visits around churning
--   are read for the churned users only, straight from app_events (the period's every play
--   held aside first would be most of the table).
-- Order: churned_at, user_id.
-- Runs unchanged on PostgreSQL and Redshift.

with period_events as (
    select user_id, start_time, page
    from app_events
    where start_time >= cast('1900-01-01 00:00:00' as timestamp)
      and start_time < cast('9999-12-31 00:00:00' as timestamp)
      and user_id is not null
      and page in ('Submit Downgrade', 'Cancellation Confirmation')
),

reversed_downgrades as (
    select d.user_id, d.start_time
    from period_events d
    join user_levels l
        on l.user_id = d.user_id
        and l.level = 'paid'
        and l.valid_from > d.start_time
        and l.valid_from < d.start_time + interval '1 hour'
    where d.page = 'Submit Downgrade'
    group by d.user_id, d.start_time
),

churn_events as (
    select
        e.user_id,
        min(case when e.page = 'Submit Downgrade' then e.start_time end) as downgraded_at,
        min(case when e.page = 'Cancellation Confirmation' then e.start_time end) as cancelled_at,
        min(e.start_time) as churned_at
    from period_events e
    left join reversed_downgrades r
        on r.user_id = e.user_id and r.start_time = e.start_time and e.page = 'Submit Downgrade'
    where r.user_id is null
    group by e.user_id
),

activity_around as (
    select
        c.user_id,
        sum(case when e.page = 'NextSong' and e.start_time < c.churned_at then 1 else 0 end) as plays_before,
        sum(case when e.page = 'NextSong' and e.start_time > c.churned_at then 1 else 0 end) as plays_after,
        sum(case when e.page = 'NextSong' and e.start_time >= c.churned_at - interval '14 days'
                      and e.start_time < c.churned_at - interval '7 days' then 1 else 0 end)
            as plays_days_8_to_14_before,
        sum(case when e.page = 'NextSong' and e.start_time >= c.churned_at - interval '7 days'
                      and e.start_time < c.churned_at then 1 else 0 end) as plays_days_1_to_7_before,
        sum(case when e.page = 'Downgrade' and e.start_time < c.churned_at then 1 else 0 end)
            as downgrade_visits_before
    from churn_events c
    join app_events e on e.user_id = c.user_id and e.page in ('NextSong', 'Downgrade')
    where e.start_time >= cast('1900-01-01 00:00:00' as timestamp)
      and e.start_time < cast('9999-12-31 00:00:00' as timestamp)
    group by c.user_id
)

select
    c.user_id,
    c.downgraded_at,
    c.cancelled_at,
    c.churned_at,
    coalesce(a.plays_before, 0) as plays_before,
    coalesce(a.plays_after, 0) as plays_after,
    coalesce(a.plays_days_8_to_14_before, 0) as plays_days_8_to_14_before,
    coalesce(a.plays_days_1_to_7_before, 0) as plays_days_1_to_7_before,
    coalesce(a.downgrade_visits_before, 0) as downgrade_visits_before,
    u.level as current_level
from churn_events c
join users u on u.user_id = c.user_id
left join activity_around a on a.user_id = c.user_id
order by c.churned_at, c.user_id;
