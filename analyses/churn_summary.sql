-- Churn signals: how often do users downgrade or cancel?
--
-- Grain: one row per churn signal, always both, with zeros when the logs hold none:
--   'Submit Downgrade' (a paying user confirms moving to the free level) and
--   'Cancellation Confirmation' (a user confirms leaving the service).
-- Definitions: events counts the app events of the signal's page, users the distinct
--   users with one; first_at / last_at are the earliest and latest (NULL when none).
--   The Downgrade page alone is only a visit to the page and is not a signal.
-- Period: the events between the two timestamps in the join, [from, to) UTC; as written,
--   everything. Change them to limit it (insights.py --since/--until does).
-- Covers: app_events, left-joined to the list of signals so an absent one shows as zero.
-- Order: page.
-- Runs unchanged on PostgreSQL and Redshift.

with signals as (
    select cast('Submit Downgrade' as varchar(64)) as page
    union all
    select 'Cancellation Confirmation'
)

select
    s.page,
    count(e.page) as events,
    count(distinct e.user_id) as users,
    min(e.start_time) as first_at,
    max(e.start_time) as last_at
from signals s
left join app_events e
    on e.page = s.page
    and e.start_time >= cast('1900-01-01 00:00:00' as timestamp)
    and e.start_time < cast('9999-12-31 00:00:00' as timestamp)
group by s.page
order by s.page;
