"""The analysts' questions as SQL over the star schema: one query per table of the report.

Every number in the insights report comes from one of these queries, and each runs
unchanged on PostgreSQL and Redshift (tests check them against AWS's lists of unsupported
constructs). Times are UTC. Songs and artists are counted over all plays through the
fact's own song_title and artist_name, not only the plays matched to the catalog.

Written for facts of tens of millions of rows. Counts come from the summary tables the
ETL appends to with each batch (plays_by_user_day, plays_by_hour, plays_by_song,
events_by_user_day, session_parts; summed over batches here), a fraction of the facts'
size; the facts are read only for what a later batch can change (catalog matches) or a
summary cannot hold (listeners of the top ten, plays around an upgrade's exact time).
Distinct counts are taken in two steps (group by the key and the user, then count the
groups), which both engines hash instead of sorting every row.
"""

# Platform of a play, from its user agent. The order of the tests matters: Edge and
# Chrome agents also say "Safari", and Android agents also say "Linux".
BROWSER = """case
    when {ua} like '%Edge/%' or {ua} like '%Edg/%' then 'Edge'
    when {ua} like '%Firefox/%' then 'Firefox'
    when {ua} like '%Chrome/%' or {ua} like '%CriOS/%' then 'Chrome'
    when {ua} like '%Safari/%' then 'Safari'
    when {ua} like '%MSIE %' or {ua} like '%Trident/%' then 'Internet Explorer'
    else 'Other' end"""

OPERATING_SYSTEM = """case
    when {ua} like '%iPhone%' or {ua} like '%iPad%' then 'iOS'
    when {ua} like '%Android%' then 'Android'
    when {ua} like '%Windows%' then 'Windows'
    when {ua} like '%Macintosh%' then 'macOS'
    when {ua} like '%Linux%' then 'Linux'
    else 'Other' end"""

DEVICE = """case
    when {ua} like '%iPad%' or {ua} like '%Tablet%' then 'tablet'
    when {ua} like '%iPhone%' or {ua} like '%Mobile%' or {ua} like '%Android%' then 'mobile'
    else 'desktop' end"""


def _platform(expression: str) -> str:
    return expression.format(ua="user_agent")


# 1. Activity over time: plays, daily active users and first-time users per UTC day.
daily_activity = """
with user_days as (
    select day, user_id, sum(plays) as plays
    from events_by_user_day
    group by day, user_id
),

by_day as (
    select day, sum(plays) as plays, count(user_id) as active_users
    from user_days
    group by day
),

first_days as (
    select user_id, min(day) as first_day
    from user_days
    where user_id is not null
    group by user_id
),

newcomers as (
    select first_day as day, count(*) as new_users
    from first_days
    group by first_day
)

select by_day.day, by_day.plays, by_day.active_users, coalesce(newcomers.new_users, 0) as new_users
from by_day
left join newcomers on newcomers.day = by_day.day
order by by_day.day
"""

# 2. When people listen: plays by weekday (0 = Sunday) and hour, UTC, as the time
# dimension defines them.
listening_hours = """
select
    cast(date_part('dow', hour_start) as smallint) as weekday,
    cast(date_part('hour', hour_start) as smallint) as hour,
    sum(plays) as plays
from plays_by_hour
group by 1, 2
order by 1, 2
"""

# 3. What they play, over every play (matched to the catalog or not).
top_songs = """
with ranked as (
    select song_title, artist_name, sum(plays) as plays
    from plays_by_song
    where song_title is not null and artist_name is not null
    group by song_title, artist_name
    order by plays desc, song_title, artist_name
    limit 10
),

reach as (
    select
        p.song_title,
        p.artist_name,
        count(distinct p.user_id) as listeners,
        max(case when p.song_id is not null then 1 else 0 end) as in_catalog
    from songplays p
    join ranked r on r.song_title = p.song_title and r.artist_name = p.artist_name
    group by p.song_title, p.artist_name
)

select r.song_title, r.artist_name, r.plays, a.listeners, a.in_catalog
from ranked r
join reach a on a.song_title = r.song_title and a.artist_name = r.artist_name
order by r.plays desc, r.song_title, r.artist_name
"""

top_artists = """
with ranked as (
    select artist_name, sum(plays) as plays
    from plays_by_song
    where artist_name is not null
    group by artist_name
    order by plays desc, artist_name
    limit 10
),

reach as (
    select p.artist_name, count(distinct p.user_id) as listeners, count(distinct p.song_title) as songs
    from songplays p
    join ranked r on r.artist_name = p.artist_name
    group by p.artist_name
)

select r.artist_name, r.plays, a.listeners, a.songs
from ranked r
join reach a on a.artist_name = r.artist_name
order by r.plays desc, r.artist_name
"""

# Songs played: distinct (title, artist name) pairs. Matches to the catalog are read from
# the fact (a late song changes them), the rest from plays_by_song.
catalog_coverage = """
with played as (
    select song_title, artist_name, sum(plays) as plays
    from plays_by_song
    group by song_title, artist_name
),

matched as (
    select count(*) as plays_matched, count(distinct song_id) as songs_matched,
           count(distinct artist_id) as artists_matched
    from songplays
    where song_id is not null
)

select
    (select sum(plays) from played) as plays,
    matched.plays_matched,
    (select count(*) from played where song_title is not null and artist_name is not null) as songs_played,
    matched.songs_matched,
    (select count(distinct artist_name) from played) as artists_played,
    matched.artists_matched,
    (select count(*) from songs) as catalog_songs
from matched
"""

# 4. Who listens.
level_share = """
select level, count(user_id) as users, sum(plays) as plays
from (
    select level, user_id, sum(plays) as plays
    from plays_by_user_day
    group by level, user_id
) user_plays
group by level
order by level
"""

gender_share = """
select
    coalesce(u.gender, 'unknown') as gender,
    count(p.user_id) as users,
    sum(p.plays) as plays
from (
    select user_id, sum(plays) as plays
    from plays_by_user_day
    group by user_id
) p
left join users u on u.user_id = p.user_id
group by coalesce(u.gender, 'unknown')
order by plays desc, gender
"""

top_locations = """
select location, count(user_id) as users, sum(plays) as plays
from (
    select location, user_id, sum(plays) as plays
    from plays_by_user_day
    group by location, user_id
) user_plays
group by location
order by plays desc, location
limit 10
"""

# Each user agent's plays per user first (a few per user), then each platform of those.
platforms = f"""
with labelled as (
    select
        user_id,
        plays,
        {_platform(BROWSER)} as browser,
        {_platform(OPERATING_SYSTEM)} as operating_system,
        {_platform(DEVICE)} as device
    from (
        select user_agent, user_id, sum(plays) as plays
        from plays_by_user_day
        group by user_agent, user_id
    ) agent_plays
)

select 'browser' as dimension, browser as value, count(distinct user_id) as users, sum(plays) as plays
from labelled
group by browser
union all
select 'operating system', operating_system, count(distinct user_id), sum(plays)
from labelled
group by operating_system
union all
select 'device', device, count(distinct user_id), sum(plays)
from labelled
group by device
order by dimension, plays desc, value
"""

# 5. Engagement: a session is a user's sessionId; its level is the level it started on.
# Lengths are whole seconds, each end truncated to the second: extract(epoch …) is an
# integer on Redshift and keeps the fraction on PostgreSQL, so truncating first makes both
# engines return the same lengths. Redshift rejects percentile_cont in a SELECT with a
# count(distinct …), so users and the length statistics are computed in separate steps.
engagement = """
with sessions as (
    select
        user_id,
        session_id,
        cast(extract(epoch from date_trunc('second', max(last_at)))
             - extract(epoch from date_trunc('second', min(first_at))) as bigint) as length_seconds,
        sum(songs) as songs,
        min(opening_level) as opening_level,
        max(any_level) as any_level
    from session_parts
    where user_id is not null
    group by user_id, session_id
),

labelled as (
    select
        coalesce(opening_level, any_level) as level,
        user_id,
        songs,
        cast(length_seconds as double precision) / 60 as minutes
    from sessions
),

users_by_level as (
    select level, count(distinct user_id) as users
    from labelled
    group by level
),

lengths as (
    select
        level,
        count(*) as sessions,
        avg(cast(songs as double precision)) as songs_per_session,
        avg(minutes) as avg_minutes,
        percentile_cont(0.5) within group (order by minutes) as median_minutes
    from labelled
    group by level
)

select
    l.level,
    u.users,
    l.sessions,
    round(cast(l.sessions as decimal(18, 4)) / u.users, 2) as sessions_per_user,
    round(cast(l.songs_per_session as decimal(18, 4)), 2) as songs_per_session,
    round(cast(l.avg_minutes as decimal(18, 4)), 1) as avg_session_minutes,
    round(cast(l.median_minutes as decimal(18, 4)), 1) as median_session_minutes
from lengths l
join users_by_level u on u.level = l.level
order by l.level
"""

# 6. Money: level changes from the type-2 history, and listening around an upgrade.
# Each stretch of a user's level next to the level before it.
_STRETCHES = """
with stretches as (
    select
        user_id,
        level,
        valid_from,
        lag(level) over (partition by user_id order by valid_from) as previous_level
    from user_levels
)"""

level_changes = _STRETCHES + """

select
    cast(valid_from as date) as day,
    sum(case when previous_level = 'free' and level = 'paid' then 1 else 0 end) as upgrades,
    sum(case when previous_level = 'paid' and level = 'free' then 1 else 0 end) as downgrades
from stretches
where previous_level is not null
group by cast(valid_from as date)
order by day
"""

upgrade_engagement = _STRETCHES + """,

upgrades as (
    select user_id, min(valid_from) as upgraded_at
    from stretches
    where previous_level = 'free' and level = 'paid'
    group by user_id
),

play_days as (
    select
        p.user_id,
        case when p.start_time < u.upgraded_at then 'before upgrade' else 'after upgrade' end as period,
        cast(p.start_time as date) as day,
        count(*) as plays
    from songplays p
    join upgrades u on u.user_id = p.user_id
    group by p.user_id, case when p.start_time < u.upgraded_at then 'before upgrade' else 'after upgrade' end,
             cast(p.start_time as date)
),

plays as (
    select user_id, period, sum(plays) as plays, count(*) as active_days
    from play_days
    group by user_id, period
)

select
    period,
    count(*) as users,
    sum(plays) as plays,
    sum(active_days) as active_days,
    round(cast(sum(plays) as decimal(18, 4)) / sum(active_days), 2) as plays_per_active_day
from plays
group by period
order by period desc
"""

# 7. Data health.
load_health = """
select
    (select count(*) from etl_batches where outcome = 'published') as batches_published,
    (select count(*) from etl_batches where outcome = 'failed') as batches_failed,
    (select max(finished_at) from etl_batches where outcome = 'published') as last_load_finished,
    (select count(*) from loaded_objects) as source_files,
    (select count(*) from load_errors where disposition = 'rejected') as records_rejected,
    (select count(*) from load_errors where disposition = 'replaced') as records_with_replaced_characters,
    (select count(*) from text_repairs) as names_repaired,
    (select max(last_at) from session_parts) as latest_event,
    (select sum(events) from events_by_user_day) as events,
    (select sum(plays) from plays_by_song) as plays,
    (select count(*) from songplays where song_id is not null) as plays_matched
"""

load_error_reasons = """
select table_name, disposition, reason, count(*) as records, max(logged_at) as last_seen
from load_errors
group by table_name, disposition, reason
order by records desc, table_name, reason
limit 20
"""

# (name of the report table and its CSV, question it answers, query), in report order.
QUERIES = [
    ("daily_activity", "Activity over time", daily_activity),
    ("listening_hours", "When people listen", listening_hours),
    ("top_songs", "What they play", top_songs),
    ("top_artists", "What they play", top_artists),
    ("catalog_coverage", "What they play", catalog_coverage),
    ("level_share", "Who listens", level_share),
    ("gender_share", "Who listens", gender_share),
    ("top_locations", "Who listens", top_locations),
    ("platforms", "Who listens", platforms),
    ("engagement", "Engagement", engagement),
    ("level_changes", "Money", level_changes),
    ("upgrade_engagement", "Money", upgrade_engagement),
    ("load_health", "Data health", load_health),
    ("load_error_reasons", "Data health", load_error_reasons),
]
