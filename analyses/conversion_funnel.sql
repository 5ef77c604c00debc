-- Conversion funnel: how many free users go from the home page to listening, to the
-- upgrade page, to submitting an upgrade?
--
-- Grain: one row per funnel step: 1 Home, 2 NextSong, 3 Upgrade, 4 Submit Upgrade.
-- Definitions: the funnel is of free users: only events on the free level count (a paying
--   user's Home visits and plays are not a step towards paying), and only logged-in events
--   (user_id not null). A user reaches step 1 with their first such Home event; they reach
--   each later step with the first event of its page strictly after the time they reached
--   the step before (order matters: an upgrade submitted before ever visiting Home does not
--   count). A Submit Upgrade that undoes a downgrade within an hour (the user's level
--   history, user_levels, had them on paid less than an hour before it) is a reversal, not a
--   conversion, and reaches no step. share_of_first: the step's users over step 1's;
--   share_of_previous: over the step before's (NULL for step 1).
-- Period: the events between the two timestamps in period_events, [from, to) UTC; as
--   written, everything. Change them to limit it (insights.py --since/--until does).
-- Covers: app_events and user_levels.
-- Order: step.
-- Runs unchanged on PostgreSQL and Redshift.

with period_events as (
    select user_id, start_time, page
    from app_events
    where start_time >= cast('1900-01-01 00:00:00' as timestamp)
      and start_time < cast('9999-12-31 00:00:00' as timestamp)
      and user_id is not null
      and level = 'free'
      and page in ('Home', 'NextSong', 'Upgrade', 'Submit Upgrade')
),

home as (
    select user_id, min(start_time) as reached_at
    from period_events
    where page = 'Home'
    group by user_id
),

listened as (
    select e.user_id, min(e.start_time) as reached_at
    from period_events e
    join home h on h.user_id = e.user_id and e.start_time > h.reached_at
    where e.page = 'NextSong'
    group by e.user_id
),

visited_upgrade as (
    select e.user_id, min(e.start_time) as reached_at
    from period_events e
    join listened l on l.user_id = e.user_id and e.start_time > l.reached_at
    where e.page = 'Upgrade'
    group by e.user_id
),

reversing_upgrades as (
    select e.user_id, e.start_time
    from period_events e
    join user_levels l
        on l.user_id = e.user_id
        and l.level = 'paid'
        and l.valid_to <= e.start_time
        and l.valid_to > e.start_time - interval '1 hour'
    where e.page = 'Submit Upgrade'
    group by e.user_id, e.start_time
),

submitted_upgrade as (
    select e.user_id, min(e.start_time) as reached_at
    from period_events e
    join visited_upgrade v on v.user_id = e.user_id and e.start_time > v.reached_at
    left join reversing_upgrades r on r.user_id = e.user_id and r.start_time = e.start_time
    where e.page = 'Submit Upgrade' and r.user_id is null
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
