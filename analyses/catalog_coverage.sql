-- Catalog coverage: how much of what is played does the song catalog know, and how much
-- of the catalog is ever played?
--
-- Grain: one row for the whole warehouse.
-- Definitions: a play is in the catalog when it matched a catalog song (songplays.song_id
--   is set: same title, artist name and duration). songs_played counts distinct songs as
--   played (title and artist name as the plays view shows them); catalog_songs_played the
--   distinct catalog songs with a play, catalog_artists_played the distinct catalog
--   artists. Shares are fractions (0 to 1).
-- Covers: the plays view (songplays left join songs and artists), songs and artists.
-- Runs unchanged on PostgreSQL and Redshift.

with play_totals as (
    select
        count(*) as plays,
        sum(case when in_catalog then 1 else 0 end) as plays_in_catalog,
        count(distinct song_id) as catalog_songs_played,
        count(distinct artist_id) as catalog_artists_played
    from plays
),

songs_as_played as (
    select count(*) as songs_played
    from (
        select song_title, artist_name
        from plays
        group by song_title, artist_name
    ) distinct_songs
),

catalog as (
    select
        (select count(*) from songs) as catalog_songs,
        (select count(*) from artists) as catalog_artists
)

select
    t.plays,
    t.plays_in_catalog,
    cast(t.plays_in_catalog as double precision) / nullif(t.plays, 0) as play_coverage,
    s.songs_played,
    t.catalog_songs_played,
    c.catalog_songs,
    cast(t.catalog_songs_played as double precision) / nullif(c.catalog_songs, 0) as catalog_share_played,
    t.catalog_artists_played,
    c.catalog_artists,
    cast(t.catalog_artists_played as double precision) / nullif(c.catalog_artists, 0) as artist_share_played
from play_totals t
cross join songs_as_played s
cross join catalog c;
