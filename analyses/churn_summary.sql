-- Churn signals: how often do users downgrade or cancel?
--
-- Grain: one row per churn signal, always both, with zeros when the logs hold none:
--   'Submit Downgrade' (a paying user confirms moving to the free level) and
--   'Cancellation Confirmation' (a user confirms leaving the service).
-- Definitions: events counts the app events of the signal's page, users the distinct
--   users with one; first_at / last_at are the earliest and latest (NULL when none);
--   reversed counts the events undone within an hour: a Submit Downgrade after which the
--   level history (user_levels) has the user back on paid in less than an hour (always 0
--   for a cancellation). churned_users.sql leaves those out.
--   The Downgrade page alone is only a visit to the page and is not a signal.
-- Period: the events between the two timestamps in the join, [from, to) UTC; as written,
--   everything. Change them to limit it (insights.py --since/--until does).
-- Covers: app_events and user_levels, left-joined to the list of signals so an absent one shows
--   as zero.
-- Order: page.
-- Runs unchanged on PostgreSQL and Redshift.

with signals as (
    select cast('Submit Downgrade' as varchar(64)) as page
    union all
    select 'Cancellation Confirmation'
),

signal_events as (
    select e.user_id, e.page, e.start_time, max(case when l.user_id is null then 0 else 1 end) as reversed
    from app_events e
    left join user_levels l
        on l.user_id = e.user_id
        and e.page = 'Submit Downgrade'
        and l.level = 'paid'
        and l.valid_from > e.start_time
        and l.valid_from < e.start_time + interval '1 hour'
    where e.page in ('Submit Downgrade', 'Cancellation Confirmation')
      and e.start_time >= cast('1900-01-01 00:00:00' as timestamp)
      and e.start_time < cast('9999-12-31 00:00:00' as timestamp)
    group by e.event_id, e.user_id, e.page, e.start_time
)

select
    s.page,
    count(e.page) as events,
    count(distinct e.user_id) as users,
    min(e.start_time) as first_at,
    max(e.start_time) as last_at,
    coalesce(sum(e.reversed), 0) as reversed
from signals s
left join signal_events e on e.page = s.page
group by s.page
order by s.page;
