-- Churned users: who downgraded or cancelled, when, and did they keep listening?
--
-- Grain: one row per user with at least one 'Submit Downgrade' or
--   'Cancellation Confirmation' event (none is a valid answer: no rows).
-- Definitions: downgraded_at / cancelled_at are the user's first event of each page (NULL
--   when none); churned_at is the earlier of the two. plays_before / plays_after count
--   the user's plays (NextSong) strictly before / after churned_at. current_level is the
--   level on the user's latest event (users.level).
-- Covers: app_events joined to users.
-- Order: churned_at, user_id.
-- Runs unchanged on PostgreSQL and Redshift.

with churn_events as (
    select
        user_id,
        min(case when page = 'Submit Downgrade' then start_time end) as downgraded_at,
        min(case when page = 'Cancellation Confirmation' then start_time end) as cancelled_at,
        min(start_time) as churned_at
    from app_events
    where page in ('Submit Downgrade', 'Cancellation Confirmation') and user_id is not null
    group by user_id
),

plays_around as (
    select
        c.user_id,
        sum(case when e.start_time < c.churned_at then 1 else 0 end) as plays_before,
        sum(case when e.start_time > c.churned_at then 1 else 0 end) as plays_after
    from churn_events c
    join app_events e on e.user_id = c.user_id and e.page = 'NextSong'
    group by c.user_id
)

select
    c.user_id,
    c.downgraded_at,
    c.cancelled_at,
    c.churned_at,
    coalesce(p.plays_before, 0) as plays_before,
    coalesce(p.plays_after, 0) as plays_after,
    u.level as current_level
from churn_events c
join users u on u.user_id = c.user_id
left join plays_around p on p.user_id = c.user_id
order by c.churned_at, c.user_id;
