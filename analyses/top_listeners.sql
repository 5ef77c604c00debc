-- Top listeners: who listens most, and what are they like?
--
-- Grain: one row per user whose play count ranks among the ten highest; users tied with
--   the tenth are all included.
-- Definitions: plays are the user's songplays rows; sessions the distinct session_ids
--   they played in; active_days the distinct UTC days with a play. Name, gender, current
--   level (the level on the user's latest event) and registered_at (sign-up time) come
--   from the users dimension.
-- Covers: songplays joined to users.
-- Order: plays descending, ties by user_id.
-- Runs unchanged on PostgreSQL and Redshift.

with user_plays as (
    select
        user_id,
        count(*) as plays,
        count(distinct session_id) as sessions,
        count(distinct cast(start_time as date)) as active_days
    from songplays
    group by user_id
),

ranked as (
    select
        rank() over (order by plays desc) as play_rank,
        user_id,
        plays,
        sessions,
        active_days
    from user_plays
)

select
    r.play_rank,
    r.user_id,
    u.first_name,
    u.last_name,
    u.gender,
    u.level as current_level,
    u.registered_at,
    r.plays,
    r.sessions,
    r.active_days
from ranked r
join users u on u.user_id = r.user_id
where r.play_rank <= 10
order by r.plays desc, r.user_id;
