-- Level at the time of a play: was each play made on the level the user's level history
-- says they were on at that moment, and does it agree with the level the event carried?
--
-- Grain: one row per pair (level by the history, level on the play), with its plays.
-- Definitions: an as-of join of songplays to user_levels, the type-2 history: the stretch
--   of the play's user with valid_from <= start_time and (valid_to is null or
--   start_time < valid_to). level_in_history is NULL for a play no stretch covers.
--   agrees is 1 when both levels are equal. share: the pair's plays over all plays; a play
--   covered by two stretches would be counted twice and push the shares past 1.
-- Covers: songplays as-of joined to user_levels.
-- Order: level_in_history (NULL last on both engines), level_on_play.
-- Runs unchanged on PostgreSQL and Redshift.

with play_levels as (
    select
        l.level as level_in_history,
        p.level as level_on_play
    from songplays p
    left join user_levels l
        on l.user_id = p.user_id
       and l.valid_from <= p.start_time
       and (l.valid_to is null or p.start_time < l.valid_to)
),

total as (
    select count(*) as plays from songplays
)

select
    v.level_in_history,
    v.level_on_play,
    case when v.level_in_history = v.level_on_play then 1 else 0 end as agrees,
    count(*) as plays,
    cast(count(*) as double precision) / t.plays as share
from play_levels v
cross join total t
group by v.level_in_history, v.level_on_play, t.plays
order by v.level_in_history, v.level_on_play;
