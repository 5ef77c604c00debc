-- Listening by hour: at what time of day do people listen, and who?
--
-- Grain: one row per hour of the day (0-23, UTC) with any play.
-- Definitions: a play is a songplays row; its hour is the time dimension's hour for its
--   start_time. listeners: distinct users with a play in that hour (on any day);
--   share_of_plays: the hour's plays over all plays; paid_share: the hour's plays made
--   on the paid level over the hour's plays.
-- Covers: songplays joined to time.
-- Order: hour.
-- Runs unchanged on PostgreSQL and Redshift.

with hourly as (
    select
        t.hour,
        count(*) as plays,
        count(distinct p.user_id) as listeners,
        sum(case when p.level = 'paid' then 1 else 0 end) as paid_plays
    from songplays p
    join time t on t.start_time = p.start_time
    group by t.hour
),

total as (
    select sum(plays) as plays from hourly
)

select
    h.hour,
    h.plays,
    h.listeners,
    cast(h.plays as double precision) / o.plays as share_of_plays,
    cast(h.paid_plays as double precision) / h.plays as paid_share
from hourly h
cross join total o
order by h.hour;
