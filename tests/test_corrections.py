"""A source file that changed since it was loaded replaces what it contributed: the facts
hold each event's latest version, the summaries follow, and the warehouse ends where one
full load of the files as they are now ends. A file that is gone is said so."""

from __future__ import annotations

from conftest import BASE_TS, event, fresh_database, load, run_main, snapshot, song, write_events, write_song

from sparkify import pipeline
from sparkify.config import load_config
from sparkify.warehouse import connect

MINUTE = 60_000


def day_one(artist="Artist A", page="NextSong"):
    return [event(item=0, page="Home", ts=BASE_TS),
            event(item=1, ts=BASE_TS + MINUTE),
            event(item=2, ts=BASE_TS + 2 * MINUTE, page=page, artist=artist, song="Song B", length=180.0)]


def star(warehouse) -> dict:
    """Every star table's rows but their lineage, and every summary's totals."""
    return snapshot(warehouse)


def full_checks_pass(warehouse) -> None:
    with connect(load_config(warehouse.config)) as wh:
        assert pipeline.run_quality_checks(wh, full=True) > 0


def test_a_corrected_event_replaces_the_loaded_version(warehouse, server, tmp_path):
    root = warehouse.config.parent
    write_song(root, song())
    write_song(root, song(song_id="SOBBB", title="Song B", artist_id="ARBBB", artist_name="Band B", duration=180.0))
    write_events(root, "2018-11-01-events.json", day_one(artist="Band X"))
    write_events(root, "2018-11-02-events.json", [event(session_id=2, ts=BASE_TS + 1440 * MINUTE)])
    load(warehouse)
    assert warehouse.scalar("select count(*) from songplays where song_id is not null") == 2

    # The artist is fixed in place: same user, session, item and ts.
    write_events(root, "2018-11-01-events.json", day_one(artist="Band B"))
    result = run_main("etl.py", "--config", str(warehouse.config))
    assert "new or changed source files: 1" in result.stdout
    assert "events replaced by their changed files' versions: 3" in result.stdout
    assert warehouse.query("select artist_name, song_id from songplays where item_in_session = 2") == \
        [("Band B", "SOBBB")]
    assert warehouse.count("songplays") == 3 and warehouse.count("app_events") == 4
    assert warehouse.query("select artist_name, sum(plays) from plays_by_song group by 1 having sum(plays) <> 0 "
                           "order by 1") == [("Artist A", 2), ("Band B", 1)]
    full_checks_pass(warehouse)

    # Ends where one full load of the files as they are now ends.
    (tmp_path / "fresh").mkdir()
    with fresh_database(server, tmp_path / "fresh", log_data=str(root / "log_data"),
                        song_data=str(root / "song_data")) as fresh:
        load(fresh)
        assert star(fresh) == star(warehouse)


def test_a_play_corrected_into_another_page_leaves_the_plays(warehouse):
    root = warehouse.config.parent
    write_song(root, song())
    write_events(root, "2018-11-01-events.json", day_one())
    load(warehouse)
    assert warehouse.count("songplays") == 2
    write_events(root, "2018-11-01-events.json", day_one(page="Logout"))
    run_main("etl.py", "--config", str(warehouse.config))
    assert warehouse.count("songplays") == 1 and warehouse.count("app_events") == 3
    assert warehouse.scalar("select sum(plays) from plays_by_hour") == 1
    assert warehouse.scalar("select sum(songs) from session_parts") == 1
    full_checks_pass(warehouse)


def test_a_file_gone_since_it_was_loaded_is_said_so(warehouse):
    root = warehouse.config.parent
    write_song(root, song())
    gone = write_events(root, "2018-11-01-events.json", day_one())
    load(warehouse)
    gone.unlink()
    write_events(root, "2018-11-02-events.json", [event(session_id=2, ts=BASE_TS + 1440 * MINUTE)])
    result = run_main("etl.py", "--config", str(warehouse.config))
    assert "source files gone since they were loaded: 1; what they loaded stays" in result.stdout
    assert warehouse.count("app_events") == 4
    again = run_main("etl.py", "--config", str(warehouse.config))
    assert "Nothing new to load" in again.stdout and "source files gone since they were loaded: 1" in again.stdout


def test_files_of_another_prefix_are_not_gone(warehouse):
    """Pointing [S3] SONG_DATA at a folder of later songs is not the first folder's files gone."""
    root = warehouse.config.parent
    write_song(root, song())
    write_events(root, "2018-11-01-events.json", day_one())
    load(warehouse)
    later = root / "later_songs" / "A" / "B" / "C"
    later.mkdir(parents=True)
    (later / "TRLATE.json").write_text('{"song_id": "SOLATE", "title": "Late", "artist_id": "ARL", "duration": 1.0}')
    warehouse.config.write_text(warehouse.config.read_text().replace("SONG_DATA = song_data",
                                                                     f"SONG_DATA = {root / 'later_songs'}"))
    result = run_main("etl.py", "--config", str(warehouse.config))
    assert "ETL batch 2 published" in result.stdout and "gone" not in result.stdout
    assert warehouse.count("songs") == 2
