-- Top artists: whose music is played most?
--
-- Grain: one row per artist name, for the artists whose play count ranks among the ten
--   highest; artists tied with the tenth are all included.
-- Definitions: a play is a NextSong event (one row of the plays view). The artist is the
--   name the plays view shows: the catalog artist's name when the play matched the
--   catalog, else the name the event credits (repaired), so every play counts. listeners:
--   distinct users who played the artist; songs: distinct titles of the artist played;
--   plays_in_catalog: plays matched to a catalog song.
-- Covers: the plays view (songplays left join songs and artists).
-- Order: plays descending, ties by artist name (by code point, as on Redshift and a
--   C-collation PostgreSQL).
-- Runs unchanged on PostgreSQL and Redshift.

with artist_plays as (
    select
        artist_name,
        count(*) as plays,
        count(distinct user_id) as listeners,
        count(distinct song_title) as songs,
        sum(case when in_catalog then 1 else 0 end) as plays_in_catalog
    from plays
    group by artist_name
),

ranked as (
    select
        rank() over (order by plays desc) as play_rank,
        artist_name,
        plays,
        listeners,
        songs,
        plays_in_catalog
    from artist_plays
)

select play_rank, artist_name, plays, listeners, songs, plays_in_catalog
from ranked
where play_rank <= 10
order by plays desc, artist_name;
