"""The analysts' questions as SQL over the star schema: one query per table of the report.

Every number in the insights report comes from one of these queries, and each runs
unchanged on PostgreSQL and Redshift (tests check them against AWS's lists of unsupported
constructs). Times are UTC. Songs and artists are counted over all plays through the
fact's own song_title and artist_name, not only the plays matched to the catalog.

The period. Every query covers the period between two timestamps written in its text,
[PERIOD_START, PERIOD_END): as written they cover everything, and for_period() replaces
them with a chosen period's first day and the day after its last (insights.py --since
and --until). Literal bounds, rather than a joined table of them, let Redshift skip the
blocks outside the period on tables sorted by time. The funnel, cohort and churn
questions are the files of analyses/ themselves, which hold the same two timestamps, so
the report and the analysts' queries share one definition of each.

Written for facts of tens of millions of rows. Counts come from the summary tables the
ETL appends to with each batch (plays_by_user_day, plays_by_hour, plays_by_song,
events_by_user_day, session_parts, matched_plays_by_day; summed over batches here), a
fraction of the facts' size; the facts are read for what a summary cannot hold (listeners
of the top ten, plays on the part of a day around an upgrade, each session's last song
end, events in order for the funnel and churn) and songs over a chosen period
(plays_by_song has no day). Distinct counts are taken in two steps (group by the key and
the user, then count the groups), which both engines hash instead of sorting every row.
Each query's time is in insights.py's log; docs/insights.md says why each is shaped so.
"""

from datetime import datetime
from pathlib import Path

ANALYSES = Path(__file__).resolve().parent / "analyses"

# The period's bounds as every query writes them: as written, everything.
PERIOD_START = "cast('1900-01-01 00:00:00' as timestamp)"
PERIOD_END = "cast('9999-12-31 00:00:00' as timestamp)"


def for_period(statement: str, start: datetime | None, end: datetime | None) -> str:
    """The statement over [start, end) instead of everything; None keeps that side open.

    A statement without both bounds would silently ignore the period: that is an error.
    """
    if PERIOD_START not in statement or PERIOD_END not in statement:
        raise ValueError(f"the statement does not hold the period's bounds: {statement.strip()[:80]}")
    if start is not None:
        statement = statement.replace(PERIOD_START, _timestamp(start))
    if end is not None:
        statement = statement.replace(PERIOD_END, _timestamp(end))
    return statement


def _timestamp(moment: datetime) -> str:
    if not isinstance(moment, datetime):  # a date or text here would be a bug, and text a hazard
        raise TypeError(f"a period bound must be a datetime, not {type(moment).__name__}")
    return f"cast('{moment:%Y-%m-%d %H:%M:%S}' as timestamp)"


def _in_period(column: str) -> str:
    return f"{column} >= {PERIOD_START} and {column} < {PERIOD_END}"


def analysis(name: str) -> str:
    """The text of analyses/<name>.sql, run as the file is."""
    return (ANALYSES / f"{name}.sql").read_text(encoding="utf-8")


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


# The days the warehouse has events on: the report's period unless one is chosen.
data_span = """
select min(day) as first_day, max(day) as last_day
from events_by_user_day
"""

# 0. Who counts as what, defined once for the whole page (one row):
#    users: logged-in people with any event in the period;
#    listeners: users with at least one play in it;
#    listeners_on_both_levels: listeners with plays on the free and on the paid level (an
#      upgrade or downgrade in the period), whom "listeners by level" counts at each;
#    new_users: users who signed up in the period (users.registered_at, the events'
#      registration);
#    first_seen_users: users whose first event in the warehouse falls in the period, which
#      is everybody in the first month of the logs, so it is not a count of new users;
#    first/last_registered_at: the span of every user's sign-up, which shows what the data is
#      (a panel of users followed over time, or the app's sign-ups as they come);
#    how skewed listening is: the median listener's plays, and the plays of the five most
#      active listeners beside all logged-in plays (listener_plays).
population = f"""
with user_totals as (
    select user_id, sum(plays) as plays
    from events_by_user_day
    where {_in_period('day')} and user_id is not null
    group by user_id
),

user_levels_played as (
    select user_id, level
    from plays_by_user_day
    where {_in_period('day')} and user_id is not null
    group by user_id, level
),

levels_played as (
    select user_id, count(*) as levels
    from user_levels_played
    group by user_id
),

first_seen as (
    select user_id, min(day) as first_day
    from events_by_user_day
    where user_id is not null
    group by user_id
)

select
    (select min(day) from events_by_user_day where {_in_period('day')}) as first_day,
    (select max(day) from events_by_user_day where {_in_period('day')}) as last_day,
    (select count(*) from user_totals) as users,
    (select count(*) from user_totals where plays > 0) as listeners,
    (select count(*) from levels_played where levels > 1) as listeners_on_both_levels,
    (select count(*) from users where {_in_period('registered_at')}) as new_users,
    (select count(*) from first_seen where {_in_period('first_day')}) as first_seen_users,
    (select percentile_cont(0.5) within group (order by plays) from user_totals where plays > 0)
        as median_plays_per_listener,
    (select coalesce(sum(plays), 0) from (select plays from user_totals order by plays desc limit 5) top)
        as plays_of_top_5_listeners,
    (select coalesce(sum(plays), 0) from user_totals) as listener_plays,
    (select min(registered_at) from users) as first_registered_at,
    (select max(registered_at) from users) as last_registered_at
"""

# 1. Activity over time, per UTC day: plays, active users (any event that day), new users
# (signed up that day) and users first seen that day (their first event in the warehouse).
daily_activity = f"""
with user_days as (
    select day, user_id, sum(plays) as plays
    from events_by_user_day
    where {_in_period('day')}
    group by day, user_id
),

by_day as (
    select day, sum(plays) as plays, count(user_id) as active_users
    from user_days
    group by day
),

first_days as (
    select user_id, min(day) as first_day
    from events_by_user_day
    where user_id is not null
    group by user_id
),

first_seen as (
    select first_day as day, count(*) as first_seen_users
    from first_days
    where {_in_period('first_day')}
    group by first_day
),

signups as (
    select cast(registered_at as date) as day, count(*) as new_users
    from users
    where {_in_period('registered_at')}
    group by cast(registered_at as date)
),

days as (
    select day from by_day
    union
    select day from signups
)

select
    d.day,
    coalesce(b.plays, 0) as plays,
    coalesce(b.active_users, 0) as active_users,
    coalesce(s.new_users, 0) as new_users,
    coalesce(f.first_seen_users, 0) as first_seen_users
from days d
left join by_day b on b.day = d.day
left join signups s on s.day = d.day
left join first_seen f on f.day = d.day
order by d.day
"""

# Trend, week on week (weeks from Monday, UTC): plays, active users (any event) and
# listeners (a play), and the days of the week with events, so a week cut by the period's
# or the data's edge shows as partial rather than as a drop.
weekly_trend = f"""
with user_weeks as (
    select date_trunc('week', day) as week_start, user_id, sum(events) as events, sum(plays) as plays
    from events_by_user_day
    where {_in_period('day')}
    group by date_trunc('week', day), user_id
),

week_days as (
    select week_start, count(*) as days_with_events
    from (
        select date_trunc('week', day) as week_start, day
        from events_by_user_day
        where {_in_period('day')}
        group by date_trunc('week', day), day
    ) days
    group by week_start
)

select
    cast(u.week_start as date) as week_start,
    d.days_with_events,
    sum(u.plays) as plays,
    sum(case when u.user_id is not null then 1 else 0 end) as active_users,
    sum(case when u.user_id is not null and u.plays > 0 then 1 else 0 end) as listeners
from user_weeks u
join week_days d on d.week_start = u.week_start
group by u.week_start, d.days_with_events
order by week_start
"""

# 2. When people listen: plays by weekday (0 = Sunday) and hour, UTC, as the time
# dimension defines them, and per occurrence of the weekday: a month can hold five Fridays
# and four Tuesdays, so a slot's plays are divided by the days of its weekday with events in
# the period (weekdays_observed) before slots are compared.
listening_hours = f"""
with slots as (
    select
        cast(date_part('dow', hour_start) as smallint) as weekday,
        cast(date_part('hour', hour_start) as smallint) as hour,
        sum(plays) as plays
    from plays_by_hour
    where {_in_period('hour_start')}
    group by 1, 2
),

days as (
    select day
    from events_by_user_day
    where {_in_period('day')}
    group by day
),

weekdays as (
    select cast(date_part('dow', cast(day as timestamp)) as smallint) as weekday, count(*) as days
    from days
    group by 1
)

select
    s.weekday,
    s.hour,
    s.plays,
    w.days as weekdays_observed,
    round(cast(s.plays as decimal(18, 4)) / w.days, 2) as plays_per_weekday
from slots s
join weekdays w on w.weekday = s.weekday
order by s.weekday, s.hour
"""

# 3. What they play, over every play in the period (matched to the catalog or not). A
# period that holds every play (every hour with plays is in it: the report's default) is
# answered from plays_by_song, which has no day but holds each song once per batch (1.2M
# rows for 9M plays at 10M events); any other period from songplays. Both branches are in
# one statement and only one runs: its condition is a one-time filter, evaluated before
# either reads a row. The listeners of the top ten are distinct users: those come from
# songplays either way.
_EVERY_PLAY_IN_PERIOD = f"""(select case when min(hour_start) >= {PERIOD_START} and max(hour_start) < {PERIOD_END}
                 then 1 else 0 end
          from plays_by_hour)"""


def _song_plays(keys: str, condition: str = "1 = 1") -> str:
    """The period's plays per keys (columns of plays_by_song) where condition holds: from
    plays_by_song when the period holds every play, from songplays otherwise."""
    return f"""select {keys}, cast(sum(plays) as bigint) as plays
    from plays_by_song
    where {_EVERY_PLAY_IN_PERIOD} = 1 and {condition}
    group by {keys}
    having sum(plays) <> 0
    union all
    select {keys}, count(*)
    from songplays
    where {_EVERY_PLAY_IN_PERIOD} = 0 and {_in_period('start_time')} and {condition}
    group by {keys}"""


top_songs = f"""
with ranked as (
    select song_title, artist_name, plays
    from ({_song_plays('song_title, artist_name', 'song_title is not null and artist_name is not null')}) played
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
    where {_in_period('p.start_time')}
    group by p.song_title, p.artist_name
)

select r.song_title, r.artist_name, r.plays, a.listeners, a.in_catalog
from ranked r
join reach a on a.song_title = r.song_title and a.artist_name = r.artist_name
order by r.plays desc, r.song_title, r.artist_name
"""

top_artists = f"""
with ranked as (
    select artist_name, plays
    from ({_song_plays('artist_name', 'artist_name is not null')}) played
    order by plays desc, artist_name
    limit 10
),

reach as (
    select p.artist_name, count(distinct p.user_id) as listeners, count(distinct p.song_title) as songs
    from songplays p
    join ranked r on r.artist_name = p.artist_name
    where {_in_period('p.start_time')}
    group by p.artist_name
)

select r.artist_name, r.plays, a.listeners, a.songs
from ranked r
join reach a on a.artist_name = r.artist_name
order by r.plays desc, r.artist_name
"""

# Songs played: distinct (title, artist name) pairs; plays matched to the catalog, and the
# songs and artists they matched, from matched_plays_by_day (a late song's matches are
# counted there on their plays' own days).
catalog_coverage = f"""
with played as (
    {_song_plays('song_title, artist_name')}
),

artists_played as (
    select artist_name
    from played
    where artist_name is not null
    group by artist_name
),

matched_songs as (
    select song_id, artist_id, sum(plays) as plays
    from matched_plays_by_day
    where {_in_period('day')}
    group by song_id, artist_id
    having sum(plays) <> 0
)

select
    (select coalesce(sum(plays), 0) from played) as plays,
    (select coalesce(sum(plays), 0) from matched_songs) as plays_matched,
    (select count(*) from played where song_title is not null and artist_name is not null) as songs_played,
    (select count(distinct song_id) from matched_songs) as songs_matched,
    (select count(*) from artists_played) as artists_played,
    (select count(distinct artist_id) from matched_songs) as artists_matched,
    (select count(*) from songs) as catalog_songs
"""

# 4. Who listens: listeners (users with plays in the period). A listener is counted at each
# level they played on (an upgrader at both).
level_share = f"""
select
    level,
    count(user_id) as listeners,
    sum(plays) as plays,
    percentile_cont(0.5) within group (order by plays) as median_plays
from (
    select level, user_id, sum(plays) as plays
    from plays_by_user_day
    where {_in_period('day')}
    group by level, user_id
) user_plays
group by level
order by level
"""

gender_share = f"""
select
    coalesce(u.gender, 'unknown') as gender,
    count(p.user_id) as listeners,
    sum(p.plays) as plays
from (
    select user_id, sum(plays) as plays
    from plays_by_user_day
    where {_in_period('day')}
    group by user_id
) p
left join users u on u.user_id = p.user_id
group by coalesce(u.gender, 'unknown')
order by plays desc, gender
"""

top_locations = f"""
select location, count(user_id) as listeners, sum(plays) as plays
from (
    select location, user_id, sum(plays) as plays
    from plays_by_user_day
    where {_in_period('day')}
    group by location, user_id
) user_plays
group by location
order by plays desc, location
limit 10
"""

# Each user agent's plays per listener first (a few per listener), then each platform of
# those: a listener with two agents counts at each one's platform.
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
        where {_in_period('day')}
        group by user_agent, user_id
    ) agent_plays
)

select cast('browser' as varchar(32)) as dimension, browser as value, count(distinct user_id) as listeners,
       sum(plays) as plays
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

def _most_played(column: str) -> str:
    """Each listener's value of column that most of their plays in the period came from
    (ties: the first in order), from listener_plays, as a row of (user_id, location,
    user_agent) with the other column NULL: favourites unions the two picks."""
    location, user_agent = (column if column == name else "cast(null as varchar(1024))"
                            for name in ("location", "user_agent"))
    return f"""    select user_id, {location} as location, {user_agent} as user_agent
    from (
        select
            user_id,
            {column},
            row_number() over (partition by user_id order by sum(plays) desc, {column}) as choice
        from listener_plays
        group by user_id, {column}
    ) ranked
    where choice = 1"""


# Who the paying users are: the share of listeners on the paid level at the end of the
# period (the level of their last event in it, from the level history), overall and by
# gender, metro (the metro areas the logs name) and platform. A listener's location and
# user agent are the ones most of their plays in the period came from. A share of two or
# three people is no finding: metros with fewer than MIN_GROUP listeners are pooled into
# one row (SMALL_METROS), and every metro at or above it is listed, so no tie is cut.
# Written for tens of thousands of listeners: each listener's two picks are put side by
# side by grouping (favourites), not by joining two ranked lists, which the planner cannot
# size and looped over one for each row of the other (quadratic: 2.7 s at 1M events);
# a metro's size stands beside each listener as a window (placed), not as a join back.
MIN_GROUP = 5
SMALL_METROS = f"metros with fewer than {MIN_GROUP} listeners each"
paid_share = f"""
with listener_plays as (
    select user_id, location, user_agent, sum(plays) as plays
    from plays_by_user_day
    where {_in_period('day')} and user_id is not null
    group by user_id, location, user_agent
    having sum(plays) <> 0
),

favourites as (
    select user_id, max(location) as location, max(user_agent) as user_agent
    from (
{_most_played('location')}
        union all
{_most_played('user_agent')}
    ) picks
    group by user_id
),

levels_at_end as (
    select user_id, level
    from (
        select user_id, level, row_number() over (partition by user_id order by valid_from desc) as latest
        from user_levels
        where valid_from < {PERIOD_END}
    ) stretches
    where latest = 1
),

listeners as (
    select
        f.user_id,
        coalesce(u.gender, 'unknown') as gender,
        f.location,
        {BROWSER.format(ua="f.user_agent")} as browser,
        {OPERATING_SYSTEM.format(ua="f.user_agent")} as operating_system,
        {DEVICE.format(ua="f.user_agent")} as device,
        case when e.level = 'paid' then 1 else 0 end as paid
    from favourites f
    left join users u on u.user_id = f.user_id
    left join levels_at_end e on e.user_id = f.user_id
),

placed as (
    select
        paid,
        case when count(*) over (partition by location) >= {MIN_GROUP} then location
             else '{SMALL_METROS}' end as metro
    from listeners
    where location is not null
)

select cast('all' as varchar(32)) as dimension, cast('all listeners' as varchar(1024)) as value,
       count(*) as listeners, sum(paid) as paid_listeners,
       cast(sum(paid) as double precision) / count(*) as paid_share
from listeners
union all
select 'gender', gender, count(*), sum(paid), cast(sum(paid) as double precision) / count(*)
from listeners
group by gender
union all
select 'location', metro, count(*), sum(paid), cast(sum(paid) as double precision) / count(*)
from placed
group by metro
union all
select 'browser', browser, count(*), sum(paid), cast(sum(paid) as double precision) / count(*)
from listeners
group by browser
union all
select 'operating system', operating_system, count(*), sum(paid), cast(sum(paid) as double precision) / count(*)
from listeners
group by operating_system
union all
select 'device', device, count(*), sum(paid), cast(sum(paid) as double precision) / count(*)
from listeners
group by device
order by dimension, listeners desc, value
"""

# 5. Engagement. A session is a logged-in user's events sharing a session_id, in the period
# when its first event is; its level is the level it started on. It lasts from its first
# event to the end of its last song (that play's start plus the song's length) or to its
# last event, whichever is later: a play is stamped when the song starts, so without its
# length a one-song session would last 0 minutes. Songs per session and session length are
# over the sessions with at least one play; sessions without one are counted apart
# (sessions_without_plays), not averaged in as zero songs. Times are whole seconds, each
# truncated to the second: extract(epoch …) is an integer on Redshift and keeps the fraction
# on PostgreSQL. Redshift rejects percentile_cont in a SELECT with a count(distinct …), so
# users and the length statistics are computed in separate steps.
engagement = f"""
with sessions as (
    select
        user_id,
        session_id,
        min(first_at) as first_at,
        max(last_at) as last_at,
        sum(songs) as songs,
        min(opening_level) as opening_level,
        max(any_level) as any_level
    from session_parts
    where user_id is not null
    group by user_id, session_id
    having {_in_period('min(first_at)')}
),

song_ends as (
    select
        user_id,
        session_id,
        max(extract(epoch from date_trunc('second', start_time)) + coalesce(song_duration, 0)) as played_until
    from songplays
    where start_time >= {PERIOD_START} and user_id is not null
    group by user_id, session_id
),

labelled as (
    select
        coalesce(s.opening_level, s.any_level) as level,
        s.user_id,
        s.songs,
        (greatest(cast(extract(epoch from date_trunc('second', s.last_at)) as double precision),
                  cast(e.played_until as double precision))
         - extract(epoch from date_trunc('second', s.first_at))) / 60 as minutes
    from sessions s
    left join song_ends e on e.user_id = s.user_id and e.session_id = s.session_id
),

users_by_level as (
    select level, count(distinct user_id) as users, count(*) as sessions,
           sum(case when songs > 0 then 0 else 1 end) as sessions_without_plays
    from labelled
    group by level
),

lengths as (
    select
        level,
        count(*) as listening_sessions,
        avg(cast(songs as double precision)) as songs_per_session,
        avg(minutes) as avg_minutes,
        percentile_cont(0.5) within group (order by minutes) as median_minutes
    from labelled
    where songs > 0
    group by level
)

select
    u.level,
    u.users,
    u.sessions,
    u.sessions_without_plays,
    round(cast(u.sessions as decimal(18, 4)) / u.users, 2) as sessions_per_user,
    round(cast(l.songs_per_session as decimal(18, 4)), 2) as songs_per_session,
    round(cast(l.avg_minutes as decimal(18, 4)), 1) as avg_session_minutes,
    round(cast(l.median_minutes as decimal(18, 4)), 1) as median_session_minutes
from users_by_level u
left join lengths l on l.level = u.level
order by u.level
"""

# 6. Money: level changes from the type-2 history, and listening around an upgrade.
# A change undone within REVERSAL_WINDOW (a downgrade re-upgraded four minutes later, in the
# same session or not) is a reversal: neither it nor the change that undoes it counts as an
# upgrade or a downgrade. Each stretch of a user's level sits beside the ones before and
# after it (over the whole history, so the first stretch in the period knows the level it
# changed from): a stretch is brief when it lasted under the window and the levels on both
# sides of it are the same; a change into a brief stretch, or out of one, is a reversal.
REVERSAL_WINDOW = "1 hour"
_STRETCHES = f"""
with neighbours as (
    select
        user_id,
        level,
        valid_from,
        valid_to,
        lag(level) over (partition by user_id order by valid_from) as previous_level,
        lag(level, 2) over (partition by user_id order by valid_from) as level_two_before,
        lag(valid_from) over (partition by user_id order by valid_from) as previous_from,
        lead(level) over (partition by user_id order by valid_from) as next_level
    from user_levels
),

stretches as (
    select
        user_id,
        level,
        valid_from,
        valid_to,
        previous_level,
        case
            when previous_level is null then 0
            when next_level = previous_level and valid_to < valid_from + interval '{REVERSAL_WINDOW}' then 1
            when level_two_before = level and valid_from < previous_from + interval '{REVERSAL_WINDOW}' then 1
            else 0
        end as reversal
    from neighbours
)"""

level_changes = _STRETCHES + f"""

select
    cast(valid_from as date) as day,
    sum(case when previous_level = 'free' and level = 'paid' and reversal = 0 then 1 else 0 end) as upgrades,
    sum(case when previous_level = 'paid' and level = 'free' and reversal = 0 then 1 else 0 end) as downgrades,
    sum(reversal) as reversed_changes
from stretches
where previous_level is not null and {_in_period('valid_from')}
group by cast(valid_from as date)
order by day
"""

# The upgraders' free stretch before their first upgrade in the period against the paid
# stretch it began (each cut to the period): a before/after comparison of the same people,
# not a measure of what upgrading does. A reversed upgrade is none. A stretch's plays per
# day come from plays_by_user_day on the days it covers whole (every play of the user that
# day is in it) and from songplays only on the day or two it covers in part (day_parts: the
# slice of the day, as offsets into it), so the facts give the few plays around each change
# rather than every play of every upgrader. The slice is compared as an offset, not as
# start_time bounds, so the planner hashes the upgraders' days against one pass over the
# facts instead of a BRIN lookup per upgrader (each of which read most of the table).
# Each user's first genuine upgrade (free to paid, not a reversal) in the period.
_UPGRADES = _STRETCHES + f""",

upgrades as (
    select user_id, upgraded_at
    from (
        select
            user_id,
            valid_from as upgraded_at,
            row_number() over (partition by user_id order by valid_from) as nth
        from stretches
        where previous_level = 'free' and level = 'paid' and reversal = 0 and {_in_period('valid_from')}
    ) ranked
    where nth = 1
)"""

upgrade_engagement = _UPGRADES + f""",

sides as (
    select
        u.user_id,
        case when s.level = 'free' then 'before upgrade' else 'after upgrade' end as period,
        case when s.valid_from > {PERIOD_START} then s.valid_from else {PERIOD_START} end as starts,
        case when s.valid_to < {PERIOD_END} then s.valid_to end as ends
    from upgrades u
    join stretches s on s.user_id = u.user_id
    where (s.level = 'paid' and s.valid_from = u.upgraded_at)
       or (s.level = 'free' and s.valid_to = u.upgraded_at)
),

whole_days as (
    select d.user_id, d.period, b.day, sum(b.plays) as plays
    from sides d
    join plays_by_user_day b on b.user_id = d.user_id
        and cast(b.day as timestamp) >= d.starts
        and (d.ends is null or cast(b.day as timestamp) + interval '1 day' <= d.ends)
    where {_in_period('b.day')}
    group by d.user_id, d.period, b.day
    having sum(b.plays) <> 0
),

day_parts as (
    select
        user_id,
        period,
        cast(starts as date) as day,
        starts - date_trunc('day', starts) as from_offset,
        case when ends is null or ends >= date_trunc('day', starts) + interval '1 day' then interval '1 day'
             else ends - date_trunc('day', starts) end as to_offset
    from sides
    where starts > date_trunc('day', starts)
    union all
    select user_id, period, cast(ends as date), interval '0 seconds', ends - date_trunc('day', ends)
    from sides
    where ends > date_trunc('day', ends)
      and (date_trunc('day', ends) > date_trunc('day', starts) or starts = date_trunc('day', starts))
),

part_days as (
    select w.user_id, w.period, w.day, count(*) as plays
    from day_parts w
    join songplays p on p.user_id = w.user_id and cast(p.start_time as date) = w.day
        and p.start_time - cast(w.day as timestamp) >= w.from_offset
        and p.start_time - cast(w.day as timestamp) < w.to_offset
    where {_in_period('p.start_time')}
    group by w.user_id, w.period, w.day
),

play_days as (
    select user_id, period, day, plays from whole_days
    union all
    select user_id, period, day, plays from part_days
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

# The path to paying. Time to upgrade: from sign-up (users.registered_at) to the first
# genuine upgrade in the period, in days, each stamp truncated to the second. Before it:
# what the users did while free in the period (events on the free level; an upgrader's only
# before the upgrade; none of a free stretch that was itself a reversal, a paid user's
# downgrade undone within the window: that user was never a free user), the free users who
# upgraded against those who did not, per active
# day on free (a day with an event on free): pages visited (events other than a play),
# songs played and sessions (distinct session ids). Ratios are pooled (sums over sums).
# Redshift rejects percentile_cont beside count(distinct …): the timing is its own step.
path_to_paying = _UPGRADES + f""",

free_activity as (
    select
        e.user_id,
        case when u.user_id is null then 'stayed free' else 'upgraded' end as free_users,
        sum(case when e.page = 'NextSong' then 0 else 1 end) as pages,
        sum(case when e.page = 'NextSong' then 1 else 0 end) as plays,
        count(distinct e.session_id) as sessions,
        count(distinct cast(e.start_time as date)) as active_days
    from app_events e
    left join upgrades u on u.user_id = e.user_id
    left join stretches brief
        on brief.user_id = e.user_id and brief.level = 'free' and brief.previous_level is not null
       and brief.valid_to < brief.valid_from + interval '{REVERSAL_WINDOW}'
       and e.start_time >= brief.valid_from and e.start_time < brief.valid_to
    where e.user_id is not null and e.level = 'free' and {_in_period('e.start_time')}
      and (u.user_id is null or e.start_time < u.upgraded_at)
      and brief.user_id is null
    group by e.user_id, case when u.user_id is null then 'stayed free' else 'upgraded' end
),

by_group as (
    select
        free_users,
        count(*) as users,
        sum(active_days) as active_days,
        sum(pages) as pages,
        sum(plays) as plays,
        sum(sessions) as sessions
    from free_activity
    group by free_users
),

days_to_upgrade as (
    select
        (cast(extract(epoch from date_trunc('second', u.upgraded_at)) as double precision)
         - cast(extract(epoch from date_trunc('second', s.registered_at)) as double precision)) / 86400 as days
    from upgrades u
    join users s on s.user_id = u.user_id
    where s.registered_at is not null
),

timing as (
    select
        'upgraded' as free_users,
        count(*) as upgraders_timed,
        percentile_cont(0.5) within group (order by days) as median_days_to_upgrade,
        min(days) as min_days_to_upgrade,
        max(days) as max_days_to_upgrade
    from days_to_upgrade
)

select
    g.free_users,
    g.users,
    g.active_days,
    cast(g.pages as double precision) / g.active_days as pages_per_active_day,
    cast(g.plays as double precision) / g.active_days as plays_per_active_day,
    cast(g.sessions as double precision) / g.active_days as sessions_per_active_day,
    t.upgraders_timed,
    t.median_days_to_upgrade,
    t.min_days_to_upgrade,
    t.max_days_to_upgrade
from by_group g
left join timing t on t.free_users = g.free_users
order by g.free_users desc
"""

# Net paid growth over the period, among its listeners: each one's level at the start (the
# stretch in force at the period's first moment, or for a listener whose level history
# begins in the period, its first stretch) and at the end (the stretch in force at its last
# moment). Those who went from free to paid moved to paid, from paid to free moved to free,
# so paid_at_start + moved_to_paid - moved_to_free = paid_at_end (a change undone inside the
# period moves nobody).
paid_growth = f"""
with listeners as (
    select user_id
    from plays_by_user_day
    where {_in_period('day')} and user_id is not null
    group by user_id
),

ranked as (
    select
        l.user_id,
        s.level,
        row_number() over (partition by l.user_id
                           order by case when s.valid_from <= {PERIOD_START} then 0 else 1 end,
                                    case when s.valid_from <= {PERIOD_START} then s.valid_from end desc,
                                    s.valid_from) as from_start,
        row_number() over (partition by l.user_id order by s.valid_from desc) as from_end
    from listeners l
    join user_levels s on s.user_id = l.user_id
    where s.valid_from < {PERIOD_END}
),

levels as (
    select
        user_id,
        max(case when from_start = 1 then level end) as start_level,
        max(case when from_end = 1 then level end) as end_level
    from ranked
    group by user_id
)

select
    count(*) as listeners,
    sum(case when start_level = 'paid' then 1 else 0 end) as paid_at_start,
    sum(case when start_level = 'free' and end_level = 'paid' then 1 else 0 end) as moved_to_paid,
    sum(case when start_level = 'paid' and end_level = 'free' then 1 else 0 end) as moved_to_free,
    sum(case when end_level = 'paid' then 1 else 0 end) as paid_at_end
from levels
"""

# 7. Data health. The loads (batches, files, rejected records, repairs) are counted over
# every load, through the views made for analysts (load_summary, load_error_reasons: the
# report runs under the analysts' read-only role); the events, plays and matches over the
# period.
load_health = f"""
select
    s.batches_published,
    s.batches_failed,
    s.last_load_finished,
    s.source_files,
    s.records_rejected,
    s.records_with_replaced_characters,
    s.names_repaired,
    (select max(last_at) from session_parts where {_in_period('last_at')}) as latest_event,
    (select coalesce(sum(events), 0) from events_by_user_day where {_in_period('day')}) as events,
    (select coalesce(sum(plays), 0) from plays_by_hour where {_in_period('hour_start')}) as plays,
    (select coalesce(sum(plays), 0) from matched_plays_by_day where {_in_period('day')}) as plays_matched
from load_summary s
"""

# Every load's rejected or repaired records by reason: about the loads, not the events,
# so the same whatever the period.
load_error_reasons = """
select table_name, disposition, reason, records, last_seen
from load_error_reasons
order by records desc, table_name, reason
limit 20
"""

# Every load's schema drift (sparkify/drift.py) by change and key, through the analysts'
# view: when first and last seen, in how many files; the same whatever the period.
schema_drift = """
select table_name, change_kind, field_path, json_type, expected, files, records, first_seen, last_seen
from schema_changes
order by last_seen desc, table_name, field_path
limit 20
"""

# (name of the report table and its CSV, question it answers, query), in report order.
QUERIES = [
    ("population", "Who counts as what", population),
    ("daily_activity", "Activity over time", daily_activity),
    ("weekly_trend", "Trend, week on week", weekly_trend),
    ("listening_hours", "When people listen", listening_hours),
    ("conversion_funnel", "Conversion funnel", analysis("conversion_funnel")),
    ("weekly_cohort_retention", "Weekly cohort retention", analysis("weekly_cohort_retention")),
    ("churn_summary", "Churn and downgrades", analysis("churn_summary")),
    ("churned_users", "Churn and downgrades", analysis("churned_users")),
    ("churn_risk", "Churn risk", analysis("churn_risk")),
    ("paid_share", "Who the paying users are", paid_share),
    ("top_songs", "What they play", top_songs),
    ("top_artists", "What they play", top_artists),
    ("catalog_coverage", "What they play", catalog_coverage),
    ("level_share", "Who listens", level_share),
    ("gender_share", "Who listens", gender_share),
    ("top_locations", "Who listens", top_locations),
    ("platforms", "Who listens", platforms),
    ("engagement", "Engagement", engagement),
    ("paid_growth", "Net paid growth", paid_growth),
    ("level_changes", "Money", level_changes),
    ("upgrade_engagement", "Money", upgrade_engagement),
    ("path_to_paying", "The path to paying", path_to_paying),
    ("load_health", "Data health", load_health),
    ("load_error_reasons", "Data health", load_error_reasons),
    ("schema_drift", "Data health", schema_drift),
]

# Tables about the loads themselves rather than the events: the same whatever the period.
EVERY_LOAD = {"load_error_reasons", "schema_drift"}


def statements(start: datetime | None = None, end: datetime | None = None) -> list[tuple[str, str, str]]:
    """QUERIES over [start, end): what the report runs (None leaves a side open)."""
    return [(name, question, statement if name in EVERY_LOAD else for_period(statement, start, end))
            for name, question, statement in QUERIES]
