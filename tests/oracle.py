"""An independent oracle: the warehouse's expected contents computed from the raw JSON in
plain Python (stdlib json, no SQL, nothing from the sparkify package), following the
semantics the README states.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

EPOCH = datetime(1970, 1, 1)


def fix_double_encoding(text):
    if not isinstance(text, str):
        return text
    for _ in range(3):
        try:
            fixed = text.encode("latin-1").decode("utf-8")
        except UnicodeError:
            return text
        if fixed == text:
            return text
        text = fixed
    return text


def as_text(value):
    """What a character column holds for a JSON value (numbers as their JSON text)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def read_objects(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    decoder, pos, out = json.JSONDecoder(), 0, []
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return out
        obj, pos = decoder.raw_decode(text, pos)
        out.append(obj)


def start_time(ts: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ts)


@dataclass
class Expected:
    staging_events: int = 0
    staging_songs: int = 0
    songplays: int = 0
    matched: int = 0
    matched_without_repair: int = 0
    users: dict = field(default_factory=dict)      # user_id -> (first, last, gender, level)
    songs: dict = field(default_factory=dict)      # song_id -> record
    artists: dict = field(default_factory=dict)    # artist_id -> chosen name
    start_times: set = field(default_factory=set)
    plays: dict = field(default_factory=dict)      # (user, session, item) -> (song_id or None, start_time)


def compute(data: Path) -> Expected:
    expected = Expected()
    events = []
    for path in sorted((data / "log_data").rglob("*.json")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                events.append(json.loads(line))
    expected.staging_events = len(events)

    songs = []
    for path in sorted((data / "song_data").rglob("*.json")):
        songs.extend(read_objects(path))
    expected.staging_songs = len(songs)
    for record in sorted(songs, key=lambda r: (as_text(r["title"]) or "", r["artist_id"])):
        expected.songs.setdefault(record["song_id"], record)

    # Artists: the spelling on most of the artist's songs, ties to the alphabetically first.
    spellings = defaultdict(Counter)
    for record in expected.songs.values():
        spellings[record["artist_id"]][as_text(record["artist_name"])] += 1
    for artist_id, names in spellings.items():
        expected.artists[artist_id] = min(names, key=lambda name: (-names[name], name or ""))

    catalog = defaultdict(list)
    for record in expected.songs.values():
        key = (as_text(record["title"]), as_text(record["artist_name"]), record["duration"])
        catalog[key].append(record["song_id"])

    latest = {}
    for e in events:
        if e["userId"]:
            rank = (e["ts"], e["sessionId"], e["itemInSession"])
            if e["userId"] not in latest or rank > latest[e["userId"]][0]:
                latest[e["userId"]] = (rank, e)
    expected.users = {int(uid): (e["firstName"], e["lastName"], e["gender"], e["level"])
                      for uid, (_, e) in latest.items()}

    for e in events:
        if e["page"] != "NextSong":
            continue
        key = (e["userId"], e["sessionId"], e["itemInSession"])
        if key in expected.plays:
            continue
        title, artist = fix_double_encoding(e["song"]), fix_double_encoding(e["artist"])
        hits = sorted(catalog.get((title, artist, e["length"]), []))
        song_id = hits[0] if hits else None
        expected.plays[key] = (song_id, start_time(e["ts"]))
        if song_id:
            expected.matched += 1
            if catalog.get((e["song"], e["artist"], e["length"])):
                expected.matched_without_repair += 1
        expected.start_times.add(start_time(e["ts"]))
    expected.songplays = len(expected.plays)
    return expected
