-- Top songs: which songs are played most?
--
-- Grain: one row per song as played (title and artist name), for the songs whose play
--   count ranks among the ten highest; songs tied with the tenth are all included.
-- Definitions: a play is a NextSong event (one row of the plays view). A song is its
--   title and artist name as the plays view shows them: the catalog's when the play
--   matched the catalog, else the event's own (repaired) names, so every play counts,
--   not only the few the catalog knows. listeners: distinct users who played it;
--   plays_in_catalog: its plays matched to a catalog song.
-- Covers: the plays view (songplays left join songs and artists).
-- Order: plays descending, ties by title then artist name (text compares by code point on
--   Redshift and on a C-collation PostgreSQL).
-- Runs unchanged on PostgreSQL and Redshift.

with song_plays as (
    select
        song_title,
        artist_name,
        count(*) as plays,
        count(distinct user_id) as listeners,
        sum(case when in_catalog then 1 else 0 end) as plays_in_catalog
    from plays
    group by song_title, artist_name
),

ranked as (
    select
        rank() over (order by plays desc) as play_rank,
        song_title,
        artist_name,
        plays,
        listeners,
        plays_in_catalog
    from song_plays
)

select play_rank, song_title, artist_name, plays, listeners, plays_in_catalog
from ranked
where play_rank <= 10
order by plays desc, song_title, artist_name;
