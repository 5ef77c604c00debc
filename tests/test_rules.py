"""The warehouse's rules, each on a small hand-made dataset, through the public scripts."""

from __future__ import annotations

from conftest import BASE_TS, event, load, run_main, song, staged_rows, write_events, write_song

MINUTE = 60_000


def folder(warehouse):
    return warehouse.config.parent


def test_user_who_upgrades_keeps_the_level_of_the_latest_event(warehouse):
    write_events(folder(warehouse), "2018-11-01-events.json", [
        event(user_id="10", item=0, ts=BASE_TS, level="free"),
        event(user_id="10", item=1, ts=BASE_TS + MINUTE, level="free", page="Upgrade"),
        event(user_id="10", item=2, ts=BASE_TS + 2 * MINUTE, level="paid"),
    ])
    write_song(folder(warehouse), song())
    load(warehouse)
    assert warehouse.query("select user_id, level from users") == [(10, "paid")]
    # The fact keeps the level each play had when it happened.
    levels = warehouse.query("select level from songplays order by start_time")
    assert levels == [("free",), ("paid",)]


def test_the_latest_event_wins_even_when_files_are_out_of_order(warehouse):
    # The later file (by name) holds the older event.
    write_events(folder(warehouse), "2018-11-01-events.json", [event(user_id="7", ts=BASE_TS + MINUTE, level="paid")])
    write_events(folder(warehouse), "2018-11-02-events.json", [event(user_id="7", item=1, ts=BASE_TS, level="free")])
    write_song(folder(warehouse), song())
    load(warehouse)
    assert warehouse.query("select level from users where user_id = 7") == [("paid",)]


def test_empty_user_id_makes_no_user_and_is_not_a_bad_record(warehouse):
    write_events(folder(warehouse), "2018-11-01-events.json", [
        event(user_id="", page="Home", level="free"),
        event(user_id="", page="Login", item=1, level="free"),
        event(user_id="3", item=0, session_id=9),
    ])
    write_song(folder(warehouse), song())
    result = load(warehouse)
    assert staged_rows(warehouse, "staging_events") == 3
    assert warehouse.query("select user_id from users") == [(3,)]
    assert warehouse.scalar("select count(*) from app_events where user_id is null") == 2
    assert "bad records: 0 rejected" in result.stdout


def test_song_file_with_two_objects_loads_both(warehouse):
    write_events(folder(warehouse), "2018-11-01-events.json", [event(song="Second", artist="Band B", length=99.5)])
    write_song(folder(warehouse), [
        song(song_id="SO1", title="First", artist_id="AR1", artist_name="Band A"),
        song(song_id="SO2", title="Second", artist_id="AR2", artist_name="Band B", duration=99.5),
    ])
    load(warehouse)
    assert staged_rows(warehouse, "staging_songs") == 2
    assert warehouse.query("select song_id from songs order by song_id") == [("SO1",), ("SO2",)]
    assert warehouse.query("select song_id, artist_id from songplays") == [("SO2", "AR2")]


def test_numeric_title_and_artist_are_text_and_match(warehouse):
    write_events(folder(warehouse), "2018-11-01-events.json", [event(song="4.6", artist="311", length=180.0)])
    write_song(folder(warehouse), '{"artist_id":"AR311","artist_latitude":null,"artist_location":1999,'
                                  '"artist_longitude":null,"artist_name":311,"duration":180.0,"num_songs":1,'
                                  '"song_id":"SONUM","title":4.6,"year":1997}', name="TRNUM.json")
    load(warehouse)
    assert warehouse.query("select title, artist_name from songs") == [("4.6", "311")]
    assert warehouse.query("select name, location from artists") == [("311", "1999")]
    assert warehouse.query("select song_id from songplays") == [("SONUM",)]


def test_double_encoded_names_are_repaired_before_matching(warehouse):
    broken_artist = "Björk".encode().decode("latin-1").encode().decode("latin-1")
    broken_song = "Jóga".encode().decode("latin-1").encode().decode("latin-1")
    assert broken_artist == "BjÃ\x83Â¶rk"
    write_events(folder(warehouse), "2018-11-01-events.json", [
        event(song=broken_song, artist=broken_artist, length=305.0),
        event(song="Jóga", artist="Björk", length=305.0, item=1, ts=BASE_TS + MINUTE),  # already correct
    ])
    write_song(folder(warehouse), song(song_id="SOJOGA", title="Jóga", artist_id="ARBJORK",
                                       artist_name="Björk", duration=305.0))
    result = load(warehouse)
    rows = warehouse.query("select artist_name, song_title, song_id from songplays order by start_time")
    assert rows == [("Björk", "Jóga", "SOJOGA"), ("Björk", "Jóga", "SOJOGA")]
    # Staging kept the source as it was; the repair is recorded beside it.
    assert warehouse.scalar("select count(*) from text_repairs where original = %s", (broken_artist,)) == 1
    assert warehouse.query("select repaired from text_repairs order by repaired") == [("Björk",), ("Jóga",)]
    assert "1 of this run's thanks to repairing double-encoded UTF-8" in result.stdout


def test_play_without_catalog_match_is_kept_and_never_matched_falsely(warehouse):
    write_events(folder(warehouse), "2018-11-01-events.json", [
        event(song="Song A", artist="Artist A", length=200.5, item=0),             # exact match
        event(song="Song A", artist="Artist A", length=201.0, item=1, ts=BASE_TS + MINUTE),  # other duration
        event(song="Song A", artist="Someone Else", length=200.5, item=2, ts=BASE_TS + 2 * MINUTE),
        event(song="Unknown", artist="Nobody", length=10.0, item=3, ts=BASE_TS + 3 * MINUTE),
    ])
    write_song(folder(warehouse), song())
    result = load(warehouse)
    rows = warehouse.query("select song_title, artist_name, song_duration, song_id, artist_id "
                           "from songplays order by item_in_session")
    assert rows == [
        ("Song A", "Artist A", 200.5, "SOAAA", "ARAAA"),
        ("Song A", "Artist A", 201.0, None, None),
        ("Song A", "Someone Else", 200.5, None, None),
        ("Unknown", "Nobody", 10.0, None, None),
    ]
    assert "songplays matched to the catalog: 1 of 4 (25.0%)" in result.stdout


def test_a_play_matching_two_songs_counts_once(warehouse):
    write_events(folder(warehouse), "2018-11-01-events.json", [event()])
    write_song(folder(warehouse), song(song_id="SOBBB"))
    write_song(folder(warehouse), song(song_id="SOAAA"))
    load(warehouse)
    assert warehouse.query("select song_id from songplays") == [("SOAAA",)]


def test_trailing_blanks_do_not_count_in_the_catalog_match_as_on_redshift(warehouse):
    # Redshift ignores trailing blanks when it compares VARCHARs (AWS: "Character types");
    # the match compares rtrim()ed names on every engine. Leading blanks still count.
    write_events(folder(warehouse), "2018-11-01-events.json", [
        event(song="Heavy Soul ", artist="Artist A", length=200.5, item=0),
        event(song="Bad Meaning Good", artist="Artist A", length=200.5, item=1, ts=BASE_TS + MINUTE),
        event(song=" Heavy Soul", artist="Artist A", length=200.5, item=2, ts=BASE_TS + 2 * MINUTE),
    ])
    write_song(folder(warehouse), [song(song_id="SO1", title="Heavy Soul"),
                                   song(song_id="SO2", title="Bad Meaning Good  "),
                                   song(song_id="SO3", title="Bad Meaning Good")])
    load(warehouse)
    rows = warehouse.query("select song_title, song_id from songplays order by item_in_session")
    # The two spellings of one title are one song to match: the smallest song_id, once.
    assert rows == [("Heavy Soul ", "SO1"), ("Bad Meaning Good", "SO2"), (" Heavy Soul", None)]
    # A song that arrives later matches the older play by the same rule.
    write_song(folder(warehouse), song(song_id="SO4", title=" Heavy Soul   "), name="late.json")
    load(warehouse)
    assert warehouse.query("select song_id from songplays where song_title = ' Heavy Soul'") == [("SO4",)]


def test_an_event_staged_twice_is_one_songplay(warehouse):
    write_events(folder(warehouse), "2018-11-01-events.json", [event()])
    write_events(folder(warehouse), "2018-11-01-events-copy.json", [event()])
    write_song(folder(warehouse), [song(), song(song_id="SO9")])  # two songs qualify: once, the smallest id
    load(warehouse)
    assert staged_rows(warehouse, "staging_events") == 2
    assert warehouse.query("select song_id from songplays") == [("SO9",)]
    assert warehouse.count("time") == 1


def test_artist_spelling_is_deterministic(warehouse):
    write_events(folder(warehouse), "2018-11-01-events.json", [event()])
    write_song(folder(warehouse), song(song_id="SO1", artist_id="ARX", artist_name="The Band"))
    write_song(folder(warehouse), song(song_id="SO2", artist_id="ARX", artist_name="Band, The"))
    write_song(folder(warehouse), song(song_id="SO3", artist_id="ARX", artist_name="The Band",
                                       artist_location="Leeds", artist_latitude=53.8, artist_longitude=-1.5))
    load(warehouse)
    assert warehouse.query("select name, location, latitude from artists") == [("The Band", "Leeds", 53.8)]


def test_time_rows_decompose_start_time(warehouse):
    ts = 1543449657796  # 2018-11-29 00:00:57.796 UTC, a Thursday
    write_events(folder(warehouse), "2018-11-29-events.json", [event(ts=ts)])
    write_song(folder(warehouse), song())
    load(warehouse)
    row = warehouse.query("select start_time, hour, day, week, month, year, weekday from time")
    assert len(row) == 1
    start, *parts = row[0]
    assert start.isoformat() == "2018-11-29T00:00:57.796000"
    assert parts == [0, 29, 48, 11, 2018, 4]


def test_etl_twice_duplicates_nothing(warehouse):
    write_events(folder(warehouse), "2018-11-01-events.json", [event(item=i, ts=BASE_TS + i) for i in range(5)])
    write_song(folder(warehouse), song())
    load(warehouse)
    before = {t: warehouse.count(t) for t in ("songplays", "users", "songs", "artists", "time")}
    run_main("etl.py", "--config", str(warehouse.config))
    assert {t: warehouse.count(t) for t in before} == before


def test_two_levels_at_one_instant_make_one_stretch_and_never_fail_the_load(warehouse):
    """A user with events of both levels at the same millisecond (in two sessions, as
    generated data has): the level is the one of the later event in (session, item) order,
    as for users.level, and the batch loads instead of breaking user_levels' key."""
    write_events(folder(warehouse), "2018-11-01-events.json", [
        event(user_id="11", session_id=1, item=0, ts=BASE_TS - MINUTE, level="free"),
        event(user_id="11", session_id=1, item=5, ts=BASE_TS, level="free"),
        event(user_id="11", session_id=2, item=39, ts=BASE_TS, level="paid"),
        event(user_id="11", session_id=2, item=40, ts=BASE_TS + MINUTE, level="paid"),
    ])
    write_song(folder(warehouse), song())
    load(warehouse)
    stretches = warehouse.query("select level, valid_from, valid_to from user_levels order by valid_from")
    assert [(level, valid_to is None) for level, _, valid_to in stretches] == [("free", False), ("paid", True)]
    assert stretches[0][2] == stretches[1][1]  # paid from the shared instant on
    assert warehouse.query("select level from users") == [("paid",)]


def test_a_logged_out_play_already_stored_is_not_added_again(warehouse):
    """The merge's anti-join carries the distribution key, user_id, as Redshift advises; a
    logged-out play (user_id NULL) never satisfies user_id = user_id, and is found by its
    key alone. Run on a warehouse whose songplays holds the play but whose app_events does
    not (the batch then does not replace it first), so only the anti-join stands between
    the play and a second copy."""
    import sql_queries as q
    from sparkify.dialects import POSTGRES

    write_events(folder(warehouse), "2018-11-01-events.json", [
        event(user_id="", item=0, level="free"), event(user_id="5", item=1, ts=BASE_TS + MINUTE)])
    write_song(folder(warehouse), song())
    load(warehouse)
    assert warehouse.scalar("select count(*) from songplays where user_id is null") == 1
    warehouse.execute("delete from app_events")  # the batch will not see them as loaded before
    conn = warehouse.server.connect(warehouse.dbname)
    try:
        with conn.cursor() as cur:
            # The two events staged as a load stages them: in this session's temporary copy
            # (the empty userId as NULL).
            cur.execute(q.staging_copy_queries[0])
            cur.execute("insert into staging_events (item_in_session, page, session_id, ts, user_id, level, song, "
                        "artist, length) values (0, 'NextSong', 1, %s, null, 'free', 'Song A', 'Artist A', 200.5), "
                        "(1, 'NextSong', 1, %s, '5', 'free', 'Song A', 'Artist A', 200.5)", (BASE_TS, BASE_TS + MINUTE))
            params = {"batch_id": 2, "changed_objects": (0,)}
            for statement in [q.batch_window_create, q.songplay_table_insert]:
                cur.execute(POSTGRES.render(statement), params)
            assert cur.rowcount == 0  # both plays are in songplays already: none is new
            cur.execute("select count(*) from songplays")
            assert cur.fetchone()[0] == 2
    finally:
        conn.rollback()
        conn.close()
