-- Conversion funnel: how many users go from the home page to listening, to the upgrade
-- page, to submitting an upgrade?
--
-- Grain: one row per funnel step: 1 Home, 2 NextSong, 3 Upgrade, 4 Submit Upgrade.
-- Definitions: a user reaches step 1 with their first Home event; they reach each later
--   step with the first event of its page strictly after the time they reached the step
--   before (order matters: an upgrade submitted before ever visiting Home does not count).
--   Only logged-in events count (user_id not null). share_of_first: the step's users over
--   step 1's; share_of_previous: over the step before's (NULL for step 1).
-- Covers: app_events.
-- Order: step.
-- Runs unchanged on PostgreSQL and Redshift.

with home as (
    select user_id, min(start_time) as reached_at
    from app_events
    where page = 'Home' and user_id is not null
    group by user_id
),

listened as (
    select e.user_id, min(e.start_time) as reached_at
    from app_events e
    join home h on h.user_id = e.user_id and e.start_time > h.reached_at
    where e.page = 'NextSong'
    group by e.user_id
),

visited_upgrade as (
    select e.user_id, min(e.start_time) as reached_at
    from app_events e
    join listened l on l.user_id = e.user_id and e.start_time > l.reached_at
    where e.page = 'Upgrade'
    group by e.user_id
),

submitted_upgrade as (
    select e.user_id, min(e.start_time) as reached_at
    from app_events e
    join visited_upgrade v on v.user_id = e.user_id and e.start_time > v.reached_at
    where e.page = 'Submit Upgrade'
    group by e.user_id
),

steps as (
    select 1 as step, cast('Home' as varchar(64)) as page, count(*) as users from home
    union all
    select 2, 'NextSong', count(*) from listened
    union all
    select 3, 'Upgrade', count(*) from visited_upgrade
    union all
    select 4, 'Submit Upgrade', count(*) from submitted_upgrade
)

select
    s.step,
    s.page,
    s.users,
    cast(s.users as double precision) / nullif(f.users, 0) as share_of_first,
    cast(s.users as double precision)
        / nullif(lag(s.users) over (order by s.step), 0) as share_of_previous
from steps s
cross join (select users from steps where step = 1) f
order by s.step;
