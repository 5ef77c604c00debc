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
    users: dict = field(default_factory=dict)      # user_id -> (first, last, gender, level, registered_at)
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
    expected.users = {int(uid): (e["firstName"], e["lastName"], e["gender"], e["level"],
                                 start_time(int(e["registration"])) if e.get("registration") is not None else None)
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


# --- the insights report's figures, from the raw JSON ------------------------------------------

def classify_browser(agent: str) -> str:
    for needles, name in ((("Edge/", "Edg/"), "Edge"), (("Firefox/",), "Firefox"), (("Chrome/", "CriOS/"), "Chrome"),
                          (("Safari/",), "Safari"), (("MSIE ", "Trident/"), "Internet Explorer")):
        if any(n in agent for n in needles):
            return name
    return "Other"


def classify_os(agent: str) -> str:
    for needles, name in ((("iPhone", "iPad"), "iOS"), (("Android",), "Android"), (("Windows",), "Windows"),
                          (("Macintosh",), "macOS"), (("Linux",), "Linux")):
        if any(n in agent for n in needles):
            return name
    return "Other"


def classify_device(agent: str) -> str:
    if "iPad" in agent or "Tablet" in agent:
        return "tablet"
    if "iPhone" in agent or "Mobile" in agent or "Android" in agent:
        return "mobile"
    return "desktop"


def insight_figures(data: Path) -> dict:
    """Every figure the insights report shows, computed without SQL."""
    from statistics import median

    events = []
    for path in sorted((data / "log_data").rglob("*.json")):
        events += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    seen, unique = set(), []
    for e in events:
        key = (e["userId"], e["sessionId"], e["itemInSession"])
        if key not in seen:
            seen.add(key)
            unique.append(e)
    plays = [e for e in unique if e["page"] == "NextSong"]
    expected = compute(data)
    out: dict = {}

    days: dict = {}
    first_day: dict = {}
    for e in unique:
        day = start_time(e["ts"]).date()
        entry = days.setdefault(day, {"plays": 0, "users": set()})
        entry["plays"] += e["page"] == "NextSong"
        if e["userId"]:
            entry["users"].add(e["userId"])
            first_day[e["userId"]] = min(first_day.get(e["userId"], day), day)
    out["daily_activity"] = {day: (v["plays"], len(v["users"]), sum(1 for d in first_day.values() if d == day))
                             for day, v in days.items()}

    hours = Counter()
    for e in plays:
        moment = start_time(e["ts"])
        hours[(moment.isoweekday() % 7, moment.hour)] += 1
    out["listening_hours"] = dict(hours)

    songs, artists, song_listeners, artist_listeners = Counter(), Counter(), defaultdict(set), defaultdict(set)
    matched_songs = defaultdict(bool)
    for e in plays:
        key = (fix_double_encoding(e["song"]), fix_double_encoding(e["artist"]))
        songs[key] += 1
        artists[key[1]] += 1
        song_listeners[key].add(e["userId"])
        artist_listeners[key[1]].add(e["userId"])
        if expected.plays[(e["userId"], e["sessionId"], e["itemInSession"])][0]:
            matched_songs[key] = True
    out["songs"] = {k: (n, len(song_listeners[k]), int(matched_songs[k])) for k, n in songs.items()}
    out["artists"] = {k: (n, len(artist_listeners[k])) for k, n in artists.items()}
    out["coverage"] = (len(plays), expected.matched, len(songs))

    level_users, level_plays = defaultdict(set), Counter()
    locations, location_users = Counter(), defaultdict(set)
    platform = Counter()
    for e in plays:
        level_users[e["level"]].add(e["userId"])
        level_plays[e["level"]] += 1
        locations[e["location"]] += 1
        location_users[e["location"]].add(e["userId"])
        agent = e["userAgent"]
        platform[("browser", classify_browser(agent))] += 1
        platform[("operating system", classify_os(agent))] += 1
        platform[("device", classify_device(agent))] += 1
    out["levels"] = {lv: (len(level_users[lv]), level_plays[lv]) for lv in level_plays}
    gender_plays, gender_users = Counter(), defaultdict(set)
    for e in plays:
        gender = expected.users[int(e["userId"])][2]
        gender_plays[gender] += 1
        gender_users[gender].add(e["userId"])
    out["gender"] = {g: (len(gender_users[g]), n) for g, n in gender_plays.items()}
    out["locations"] = {loc: (len(location_users[loc]), n) for loc, n in locations.items()}
    out["platforms"] = dict(platform)

    sessions: dict = defaultdict(list)
    for e in unique:
        if e["userId"]:
            sessions[(e["userId"], e["sessionId"])].append(e)
    by_level: dict = defaultdict(lambda: {"users": set(), "sessions": 0, "songs": [], "minutes": []})
    for (user, _), items in sessions.items():
        opening = [e["level"] for e in items if e["itemInSession"] == 0]
        level = opening[0] if opening else max(e["level"] for e in items)
        stamps = [e["ts"] for e in items]
        entry = by_level[level]
        entry["users"].add(user)
        entry["sessions"] += 1
        entry["songs"].append(sum(e["page"] == "NextSong" for e in items))
        entry["minutes"].append((max(stamps) - min(stamps)) / 60000.0)
    out["engagement"] = {
        level: (len(v["users"]), v["sessions"], v["sessions"] / len(v["users"]), sum(v["songs"]) / v["sessions"],
                sum(v["minutes"]) / v["sessions"], median(v["minutes"]))
        for level, v in by_level.items()}

    timeline = defaultdict(list)
    for e in unique:
        if e["userId"]:
            timeline[e["userId"]].append((e["ts"], e["sessionId"], e["itemInSession"], e["level"]))
    changes: dict = defaultdict(lambda: [0, 0])
    upgraded_at = {}
    for user, items in timeline.items():
        items.sort()
        for previous, current in zip(items, items[1:], strict=False):
            if previous[3] != current[3]:
                day = start_time(current[0]).date()
                changes[day][0 if current[3] == "paid" else 1] += 1
                if current[3] == "paid" and user not in upgraded_at:
                    upgraded_at[user] = current[0]
    out["level_changes"] = {day: tuple(v) for day, v in changes.items()}
    around = defaultdict(lambda: {"users": set(), "plays": 0, "days": set()})
    for e in plays:
        if e["userId"] in upgraded_at:
            period = "before upgrade" if e["ts"] < upgraded_at[e["userId"]] else "after upgrade"
            around[period]["users"].add(e["userId"])
            around[period]["plays"] += 1
            around[period]["days"].add((e["userId"], start_time(e["ts"]).date()))
    out["upgrade_engagement"] = {p: (len(v["users"]), v["plays"], len(v["days"]), v["plays"] / len(v["days"]))
                                 for p, v in around.items()}
    out["latest_event"] = max(start_time(e["ts"]) for e in unique)
    out["events"] = len(unique)
    return out
