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


def match_key(value):
    """A name as the catalog match compares it: trailing blanks do not count (Redshift
    ignores them in VARCHAR comparisons; the SQL rtrim()s on both engines)."""
    text = as_text(value)
    return text.rstrip(" ") if text is not None else None


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
    stretches: dict = field(default_factory=dict)  # userId -> [(first ts, level)] of each stretch on one level


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
        key = (match_key(record["title"]), match_key(record["artist_name"]), record["duration"])
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

    timelines = defaultdict(list)
    for e in events:
        if e["userId"] and e["level"] is not None:
            timelines[e["userId"]].append((e["ts"], e["sessionId"], e["itemInSession"], e["level"]))
    for user, items in timelines.items():
        runs: list = []
        for ts, _, _, level in sorted(items):
            if not runs or runs[-1][1] != level:
                runs.append((ts, level))
        expected.stretches[user] = runs

    for e in events:
        if e["page"] != "NextSong":
            continue
        key = (e["userId"], e["sessionId"], e["itemInSession"])
        if key in expected.plays:
            continue
        title, artist = fix_double_encoding(e["song"]), fix_double_encoding(e["artist"])
        hits = sorted(catalog.get((match_key(title), match_key(artist), e["length"]), []))
        song_id = hits[0] if hits else None
        expected.plays[key] = (song_id, start_time(e["ts"]))
        if song_id:
            expected.matched += 1
            if catalog.get((match_key(e["song"]), match_key(e["artist"]), e["length"])):
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


def default_period(data: Path) -> tuple[datetime, datetime]:
    """The report's period when none is chosen: the first to the last day with events."""
    days = [start_time(e["ts"]).date() for e in unique_events(data)]
    first, last = min(days), max(days)
    return datetime(first.year, first.month, first.day), datetime(last.year, last.month, last.day) + timedelta(days=1)


SMALL_GROUP = 5  # the page's minimum group size for ranking a share
HOUR_MS = 3_600_000  # a level change undone within this is a reversal


def _brief(starts: list, levels: list, i: int) -> bool:
    """Whether stretch i lasted under an hour with the same level on both sides of it."""
    return 0 < i < len(levels) - 1 and levels[i + 1] == levels[i - 1] and starts[i + 1] - starts[i] < HOUR_MS


def insight_figures(data: Path, start: datetime | None = None, end: datetime | None = None,
                    expected: Expected | None = None) -> dict:
    """Every figure the insights report shows for the period [start, end) (by default the
    days with events), computed without SQL; expected is compute(data), if already made."""
    from statistics import median

    if start is None or end is None:
        default_start, default_end = default_period(data)
        start, end = start or default_start, end or default_end
    every = unique_events(data)
    unique = [e for e in every if in_period(start_time(e["ts"]), start, end)]
    plays = [e for e in unique if e["page"] == "NextSong"]
    expected = expected or compute(data)
    out: dict = {"period": (start, end)}

    first_seen = {}  # user -> first day with an event in the warehouse (all the data)
    for e in every:
        if e["userId"]:
            day = start_time(e["ts"]).date()
            first_seen[e["userId"]] = min(first_seen.get(e["userId"], day), day)
    signed_up = {uid: user[4] for uid, user in expected.users.items()
                 if user[4] is not None and in_period(user[4], start, end)}
    days: dict = {}
    for e in unique:
        entry = days.setdefault(start_time(e["ts"]).date(), {"plays": 0, "users": set()})
        entry["plays"] += e["page"] == "NextSong"
        if e["userId"]:
            entry["users"].add(e["userId"])
    for moment in signed_up.values():
        days.setdefault(moment.date(), {"plays": 0, "users": set()})
    out["daily_activity"] = {
        day: (v["plays"], len(v["users"]), sum(1 for m in signed_up.values() if m.date() == day),
              sum(1 for d in first_seen.values() if d == day))
        for day, v in days.items()}

    users = {e["userId"] for e in unique if e["userId"]}
    listeners = {e["userId"] for e in plays if e["userId"]}
    levels_played = defaultdict(set)
    for e in plays:
        if e["userId"]:
            levels_played[e["userId"]].add(e["level"])
    event_days = [start_time(e["ts"]).date() for e in unique]
    out["population"] = {
        "first_day": min(event_days), "last_day": max(event_days), "users": len(users), "listeners": len(listeners),
        "listeners_on_both_levels": sum(1 for levels in levels_played.values() if len(levels) > 1),
        "new_users": len(signed_up),
        "first_seen_users": sum(1 for d in first_seen.values() if in_period(datetime(d.year, d.month, d.day),
                                                                            start, end)),
    }
    per_listener = Counter(e["userId"] for e in plays if e["userId"])
    out["population"]["median_plays_per_listener"] = median(per_listener.values()) if per_listener else None
    out["population"]["plays_of_top_5_listeners"] = sum(sorted(per_listener.values(), reverse=True)[:5])
    out["population"]["listener_plays"] = sum(per_listener.values())
    registered = [user[4] for user in expected.users.values() if user[4] is not None]
    out["population"]["first_registered_at"] = min(registered) if registered else None
    out["population"]["last_registered_at"] = max(registered) if registered else None

    weeks: dict = defaultdict(lambda: {"days": set(), "plays": 0, "users": set(), "listeners": set()})
    for e in unique:
        moment = start_time(e["ts"])
        week = weeks[_week_start(moment).date()]
        week["days"].add(moment.date())
        week["plays"] += e["page"] == "NextSong"
        if e["userId"]:
            week["users"].add(e["userId"])
            if e["page"] == "NextSong":
                week["listeners"].add(e["userId"])
    out["weekly_trend"] = {w: (len(v["days"]), v["plays"], len(v["users"]), len(v["listeners"]))
                           for w, v in weeks.items()}

    hours = Counter()
    for e in plays:
        moment = start_time(e["ts"])
        hours[(moment.isoweekday() % 7, moment.hour)] += 1
    out["listening_hours"] = dict(hours)
    out["weekdays_observed"] = Counter(d.isoweekday() % 7 for d in set(event_days))

    songs, artists, song_listeners, artist_listeners = Counter(), Counter(), defaultdict(set), defaultdict(set)
    matched_songs = defaultdict(bool)
    matched = 0
    for e in plays:
        key = (fix_double_encoding(e["song"]), fix_double_encoding(e["artist"]))
        songs[key] += 1
        artists[key[1]] += 1
        song_listeners[key].add(e["userId"])
        artist_listeners[key[1]].add(e["userId"])
        if expected.plays[(e["userId"], e["sessionId"], e["itemInSession"])][0]:
            matched_songs[key] = True
            matched += 1
    out["songs"] = {k: (n, len(song_listeners[k]), int(matched_songs[k])) for k, n in songs.items()}
    out["artists"] = {k: (n, len(artist_listeners[k])) for k, n in artists.items()}
    out["coverage"] = (len(plays), matched, len(songs))

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
    at_level = Counter((e["level"], e["userId"]) for e in plays)
    out["median_plays"] = {lv: median(n for (level, _), n in at_level.items() if level == lv) for lv in level_plays}
    gender_plays, gender_users = Counter(), defaultdict(set)
    for e in plays:
        gender = expected.users[int(e["userId"])][2]
        gender_plays[gender] += 1
        gender_users[gender].add(e["userId"])
    out["gender"] = {g: (len(gender_users[g]), n) for g, n in gender_plays.items()}
    out["locations"] = {loc: (len(location_users[loc]), n) for loc, n in locations.items()}
    out["platforms"] = dict(platform)

    # Sessions over all the data, in the period when their first event is. A session lasts
    # from its first event to the end of its last song (start plus length) or its last event,
    # whichever is later, in whole seconds of each stamp; songs per session and lengths are
    # over the sessions with a play, the others counted apart.
    sessions: dict = defaultdict(list)
    for e in every:
        if e["userId"]:
            sessions[(e["userId"], e["sessionId"])].append(e)
    by_level: dict = defaultdict(lambda: {"users": set(), "sessions": 0, "without": 0, "songs": [], "minutes": []})
    for (user, _), items in sessions.items():
        stamps = [e["ts"] for e in items]
        if not in_period(start_time(min(stamps)), start, end):
            continue
        opening = [e["level"] for e in items if e["itemInSession"] == 0]
        level = opening[0] if opening else max(e["level"] for e in items)
        entry = by_level[level]
        entry["users"].add(user)
        entry["sessions"] += 1
        songs = [e for e in items if e["page"] == "NextSong"]
        if not songs:
            entry["without"] += 1
            continue
        entry["songs"].append(len(songs))
        ends = max(max(stamps) // 1000, max(e["ts"] // 1000 + (e["length"] or 0) for e in songs))
        entry["minutes"].append((ends - min(stamps) // 1000) / 60)
    out["engagement"] = {
        level: (len(v["users"]), v["sessions"], v["without"], v["sessions"] / len(v["users"]),
                sum(v["songs"]) / len(v["songs"]) if v["songs"] else None,
                sum(v["minutes"]) / len(v["minutes"]) if v["minutes"] else None,
                median(v["minutes"]) if v["minutes"] else None)
        for level, v in by_level.items()}

    # Level changes over each user's whole timeline, counted when they fall in the period. A
    # stretch is the user's events on one level in a row, from its first event to the next
    # stretch's; a change into a stretch that lasted under an hour with the same level on
    # both sides, or out of one, is a reversal: neither an upgrade nor a downgrade.
    timeline = defaultdict(list)
    for e in every:
        if e["userId"]:
            timeline[e["userId"]].append((e["ts"], e["sessionId"], e["itemInSession"], e["level"]))
    changes: dict = defaultdict(lambda: [0, 0, 0])
    upgrades, level_at_end = {}, {}  # user -> (free stretch's first ts, upgrade ts, paid stretch's end ts or None)
    reversed_free: dict = defaultdict(list)  # user -> [(first ts, next stretch's first ts)] of brief free stretches
    for user, items in timeline.items():
        items.sort()
        before_end = [item for item in items if start_time(item[0]) < end]
        if before_end:
            level_at_end[user] = before_end[-1][3]
        starts, levels = [], []
        for ts, _, _, level in items:
            if not levels or levels[-1] != level:
                starts.append(ts)
                levels.append(level)

        reversed_free[user] = [(starts[i], starts[i + 1]) for i in range(len(levels))
                               if levels[i] == "free" and _brief(starts, levels, i)]
        for i in range(1, len(levels)):
            if not in_period(start_time(starts[i]), start, end):
                continue
            day = start_time(starts[i]).date()
            if _brief(starts, levels, i) or _brief(starts, levels, i - 1):
                changes[day][2] += 1
                continue
            changes[day][0 if levels[i] == "paid" else 1] += 1
            if levels[i] == "paid" and user not in upgrades:
                upgrades[user] = (starts[i - 1], starts[i], starts[i + 1] if i + 1 < len(starts) else None)
    out["level_changes"] = {day: tuple(v) for day, v in changes.items()}
    # Net paid growth among the listeners: the level in force at the start (or the first one
    # in the period, for a history that begins in it) against the one in force at the end.
    growth = [0, 0, 0, 0, 0]
    for user in listeners:
        runs = [(ts, level) for ts, level in expected.stretches.get(user, []) if start_time(ts) < end]
        if not runs:
            continue
        before = [level for ts, level in runs if start_time(ts) <= start]
        first, last = (before[-1] if before else runs[0][1]), runs[-1][1]
        growth[0] += 1
        growth[1] += first == "paid"
        growth[2] += first == "free" and last == "paid"
        growth[3] += first == "paid" and last == "free"
        growth[4] += last == "paid"
    out["paid_growth"] = tuple(growth)
    around = defaultdict(lambda: {"users": set(), "plays": 0, "days": set()})
    for e in plays:
        if e["userId"] in upgrades:
            free_from, upgraded, paid_to = upgrades[e["userId"]]
            if free_from <= e["ts"] < upgraded:
                period = "before upgrade"
            elif e["ts"] >= upgraded and (paid_to is None or e["ts"] < paid_to):
                period = "after upgrade"
            else:
                continue
            around[period]["users"].add(e["userId"])
            around[period]["plays"] += 1
            around[period]["days"].add((e["userId"], start_time(e["ts"]).date()))
    out["upgrade_engagement"] = {p: (len(v["users"]), v["plays"], len(v["days"]), v["plays"] / len(v["days"]))
                                 for p, v in around.items()}
    # The path to paying: what users did while free in the period (an upgrader only before
    # their first genuine upgrade in it; nothing in a brief free stretch, which is a reversal),
    # per active day on free, upgraders against those
    # who stayed free; and the days from sign-up to that upgrade, stamps to the second.
    free_activity: dict = defaultdict(lambda: {"pages": 0, "plays": 0, "sessions": set(), "days": set()})
    for e in unique:
        if not e["userId"] or e["level"] != "free":
            continue
        if e["userId"] in upgrades and e["ts"] >= upgrades[e["userId"]][1]:
            continue
        if any(first <= e["ts"] < after for first, after in reversed_free[e["userId"]]):
            continue  # a downgrade undone within the hour: not a free user's activity
        entry = free_activity[e["userId"]]
        entry["plays" if e["page"] == "NextSong" else "pages"] += 1
        entry["sessions"].add(e["sessionId"])
        entry["days"].add(start_time(e["ts"]).date())
    groups: dict = {}
    for user, v in free_activity.items():
        group = groups.setdefault("upgraded" if user in upgrades else "stayed free", [0, 0, 0, 0, 0])
        for i, n in enumerate((1, len(v["days"]), v["pages"], v["plays"], len(v["sessions"]))):
            group[i] += n
    days_to_upgrade = [(start_time(upgraded).replace(microsecond=0)
                        - expected.users[int(user)][4].replace(microsecond=0)).total_seconds() / 86400
                       for user, (_, upgraded, _) in upgrades.items() if expected.users[int(user)][4] is not None]
    timing = (len(days_to_upgrade), median(days_to_upgrade), min(days_to_upgrade), max(days_to_upgrade)) \
        if days_to_upgrade else (0, None, None, None)
    out["path_to_paying"] = {
        group: (users, days, pages / days, plays / days, sessions / days,
                *(timing if group == "upgraded" else (None, None, None, None)))
        for group, (users, days, pages, plays, sessions) in groups.items()}

    # Who pays: each listener once, with the location and user agent of most of their plays
    # (ties to the first in code-point order) and their level at their last event in the period.
    home, agent = defaultdict(Counter), defaultdict(Counter)
    for e in plays:
        if e["userId"]:
            home[e["userId"]][e["location"]] += 1
            agent[e["userId"]][e["userAgent"]] += 1
    groups: dict = defaultdict(lambda: [0, 0])
    by_location = Counter()
    for user in listeners:
        location = min(home[user], key=lambda loc: (-home[user][loc], loc))
        ua = min(agent[user], key=lambda a: (-agent[user][a], a))
        paid = int(level_at_end.get(user) == "paid")
        by_location[location] += 1
        for key in (("all", "all listeners"), ("gender", expected.users[int(user)][2] or "unknown"),
                    ("location", location), ("browser", classify_browser(ua)),
                    ("operating system", classify_os(ua)), ("device", classify_device(ua))):
            groups[key][0] += 1
            groups[key][1] += paid
    # Metros of fewer than five listeners pooled into one row, as the page states.
    pooled: dict = defaultdict(lambda: [0, 0])
    for (dimension, value), (n, paid) in groups.items():
        if dimension == "location" and by_location[value] < SMALL_GROUP:
            value = f"metros with fewer than {SMALL_GROUP} listeners each"
        pooled[(dimension, value)][0] += n
        pooled[(dimension, value)][1] += paid
    out["paid_share"] = {key: (n, paid, paid / n) for key, (n, paid) in pooled.items()}

    out["latest_event"] = max(start_time(e["ts"]) for e in unique)
    out["events"] = len(unique)
    return out


# --- the analyses/ sample queries, from the raw JSON ---------------------------------------
# One function per analyses/<name>.sql, named after it, returning the rows that query must
# return, in its order, following the semantics its header states.

ANALYSES: dict = {}


def analysis(function):
    ANALYSES[function.__name__] = function
    return function


@dataclass
class RawData:
    """The events once each (first copy of a key) within the period, the plays among them,
    and compute()'s expectations over all the data, which the analyses build on (catalog
    matches, users, artists). period_end (exclusive) is None when the period is open."""

    events: list
    plays: list
    expected: Expected
    period_end: datetime | None = None

    def as_played(self, e: dict) -> tuple:
        """A play as the plays view shows it: (song_id, artist_id, title, artist name), the
        catalog's song and artist when it matched, else the event's own (repaired) names."""
        song_id = self.expected.plays[(e["userId"], e["sessionId"], e["itemInSession"])][0]
        if song_id is None:
            return None, None, fix_double_encoding(e["song"]), fix_double_encoding(e["artist"])
        song = self.expected.songs[song_id]
        return song_id, song["artist_id"], as_text(song["title"]), self.expected.artists[song["artist_id"]]


def unique_events(data: Path) -> list[dict]:
    """Every log event once: the first copy of each (userId, sessionId, itemInSession)."""
    events = []
    for path in sorted((data / "log_data").rglob("*.json")):
        events += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    seen, unique = set(), []
    for e in events:
        key = (e["userId"], e["sessionId"], e["itemInSession"])
        if key not in seen:
            seen.add(key)
            unique.append(e)
    return unique


def in_period(moment: datetime, start: datetime | None, end: datetime | None) -> bool:
    """Whether moment lies in [start, end); None leaves that side open."""
    return (start is None or moment >= start) and (end is None or moment < end)


def read_raw(data: Path, start: datetime | None = None, end: datetime | None = None,
             expected: Expected | None = None) -> RawData:
    """The raw data, its events limited to [start, end) (UTC) when given; expected is
    compute(data), if already made."""
    unique = [e for e in unique_events(data) if in_period(start_time(e["ts"]), start, end)]
    return RawData(unique, [e for e in unique if e["page"] == "NextSong"], expected or compute(data), end)


def analysis_results(data: Path, start: datetime | None = None, end: datetime | None = None,
                     expected: Expected | None = None) -> dict:
    """Every analysis's expected rows, by the name of its .sql file, over [start, end)."""
    raw = read_raw(data, start, end, expected)
    return {name: function(raw) for name, function in ANALYSES.items()}


def _ranked_top(counts: dict, order_key, limit: int = 10) -> list:
    """(rank, key) for the keys whose count ranks within limit (standard competition
    ranking: ties share a rank and the next rank skips), ordered by count then order_key."""
    ordered = sorted(counts, key=lambda k: (-counts[k], order_key(k)))
    out = []
    for position, key in enumerate(ordered, start=1):
        rank = out[-1][0] if out and counts[out[-1][1]] == counts[key] else position
        if rank > limit:
            break
        out.append((rank, key))
    return out


def _share(part, whole):
    return part / whole if whole else None


def _week_start(moment: datetime) -> datetime:
    day = datetime(moment.year, moment.month, moment.day)
    return day - timedelta(days=day.weekday())


@analysis
def top_songs(raw: RawData) -> list:
    plays, listeners, in_catalog = Counter(), defaultdict(set), Counter()
    for e in raw.plays:
        song_id, _, title, artist = raw.as_played(e)
        plays[(title, artist)] += 1
        listeners[(title, artist)].add(e["userId"])
        in_catalog[(title, artist)] += song_id is not None
    return [(rank, title, artist, plays[(title, artist)], len(listeners[(title, artist)]), in_catalog[(title, artist)])
            for rank, (title, artist) in _ranked_top(plays, lambda k: k)]


@analysis
def top_artists(raw: RawData) -> list:
    plays, listeners, titles, in_catalog = Counter(), defaultdict(set), defaultdict(set), Counter()
    for e in raw.plays:
        song_id, _, title, artist = raw.as_played(e)
        plays[artist] += 1
        listeners[artist].add(e["userId"])
        if title is not None:
            titles[artist].add(title)
        in_catalog[artist] += song_id is not None
    return [(rank, artist, plays[artist], len(listeners[artist]), len(titles[artist]), in_catalog[artist])
            for rank, artist in _ranked_top(plays, lambda k: k)]


@analysis
def daily_active_users(raw: RawData) -> list:
    days: dict = defaultdict(lambda: {"active": set(), "listeners": set(), "plays": 0, "events": 0})
    for e in raw.events:
        day = days[start_time(e["ts"]).date()]
        day["events"] += 1
        if e["userId"]:
            day["active"].add(e["userId"])
        if e["page"] == "NextSong":
            day["plays"] += 1
            if e["userId"]:
                day["listeners"].add(e["userId"])
    return [(day, len(v["active"]), len(v["listeners"]), v["plays"], v["events"]) for day, v in sorted(days.items())]


@analysis
def monthly_active_users(raw: RawData) -> list:
    months, days = defaultdict(set), defaultdict(set)
    for e in raw.events:
        if e["userId"]:
            moment = start_time(e["ts"])
            months[moment.date().replace(day=1)].add(e["userId"])
            days[moment.date()].add(e["userId"])
    out = []
    for month, users in sorted(months.items()):
        daily = [len(active) for day, active in days.items() if day.replace(day=1) == month]
        average = sum(daily) / len(daily)
        out.append((month, len(users), len(daily), average, average / len(users)))
    return out


def _sessions(raw: RawData) -> dict:
    """(user_id, session_id) -> its logged-in events, ordered by time then item."""
    sessions = defaultdict(list)
    for e in raw.events:
        if e["userId"]:
            sessions[(int(e["userId"]), e["sessionId"])].append(e)
    for items in sessions.values():
        items.sort(key=lambda e: (e["ts"], e["itemInSession"]))
    return sessions


def _session_seconds(items: list) -> float:
    """The report's session length: from its first event to the end of its last song (that
    play's start plus its length) or its last event, whichever is later, each stamp
    truncated to the second."""
    ends = [items[-1]["ts"] // 1000] + [e["ts"] // 1000 + (e["length"] or 0)
                                        for e in items if e["page"] == "NextSong"]
    return float(max(ends) - items[0]["ts"] // 1000)


@analysis
def sessions(raw: RawData) -> list:
    return [(user, session, start_time(items[0]["ts"]), start_time(items[-1]["ts"]), len(items),
             sum(e["page"] == "NextSong" for e in items), items[0]["level"], _session_seconds(items) / 60)
            for (user, session), items in sorted(_sessions(raw).items())]


@analysis
def session_length_by_level(raw: RawData) -> list:
    from statistics import median

    by_level: dict = defaultdict(lambda: {"users": set(), "sessions": 0, "plays": [], "minutes": []})
    for (user, _), items in _sessions(raw).items():
        entry = by_level[items[0]["level"]]
        entry["users"].add(user)
        entry["sessions"] += 1
        plays = sum(e["page"] == "NextSong" for e in items)
        if plays:  # sessions without a play are counted apart, not averaged in
            entry["plays"].append(plays)
            entry["minutes"].append(_session_seconds(items) / 60)
    out = []
    for level, v in sorted(by_level.items()):
        listening = len(v["plays"])
        stats = ((sum(v["plays"]) / listening, sum(v["minutes"]) / listening, median(v["minutes"]),
                  max(v["minutes"])) if listening else (None, None, None, None))
        out.append((level, len(v["users"]), v["sessions"], v["sessions"] - listening, listening or None, *stats))
    return out


FUNNEL_STEPS = ["Home", "NextSong", "Upgrade", "Submit Upgrade"]


def reversing_upgrade(raw: RawData, e: dict) -> bool:
    """A Submit Upgrade that undoes a downgrade: the user was on paid less than an hour before."""
    runs = raw.expected.stretches.get(e["userId"], [])
    return e["page"] == "Submit Upgrade" and any(
        level == "paid" and n + 1 < len(runs) and e["ts"] - HOUR_MS < runs[n + 1][0] <= e["ts"]
        for n, (_, level) in enumerate(runs))


@analysis
def conversion_funnel(raw: RawData) -> list:
    """Free users only: their events on the free level, each step after the one before."""
    timelines = defaultdict(list)
    for e in raw.events:
        if e["userId"] and e["level"] == "free" and not reversing_upgrade(raw, e):
            timelines[e["userId"]].append((e["ts"], e["page"]))
    reached = Counter()
    for items in timelines.values():
        items.sort()
        at = None  # when the user reached the step before
        for step, page in enumerate(FUNNEL_STEPS, start=1):
            later = [ts for ts, p in items if p == page and (at is None or ts > at)]
            if not later:
                break
            at = min(later)
            reached[step] += 1
    return [(step, page, reached[step], _share(reached[step], reached[1]),
             None if step == 1 else _share(reached[step], reached[step - 1]))
            for step, page in enumerate(FUNNEL_STEPS, start=1)]


@analysis
def weekly_cohort_retention(raw: RawData) -> list:
    # A cohort's size and activity come from the same period: its users have an event in it.
    in_period_users = {int(e["userId"]) for e in raw.events if e["userId"]}
    cohorts = {uid: _week_start(user[4]) for uid, user in raw.expected.users.items()
               if user[4] is not None and (raw.period_end is None or user[4] < raw.period_end)
               and uid in in_period_users}
    sizes = Counter(cohorts.values())
    active = defaultdict(set)  # week -> users active in it
    for e in raw.events:
        if e["userId"]:
            active[_week_start(start_time(e["ts"]))].add(int(e["userId"]))
    rows = []
    for cohort, size in sorted(sizes.items()):
        for week in sorted(w for w in active if w >= cohort):
            users = sum(1 for uid in active[week] if cohorts.get(uid) == cohort)
            rows.append((cohort.date(), (week - cohort).days // 7, size, users, users / size))
    return rows


CHURN_PAGES = ("Cancellation Confirmation", "Submit Downgrade")


def reversed_downgrade(raw: RawData, e: dict) -> bool:
    """A Submit Downgrade the user undid: back on paid less than an hour after it."""
    stretches = raw.expected.stretches.get(e["userId"], [])
    return e["page"] == "Submit Downgrade" and any(level == "paid" and e["ts"] < ts < e["ts"] + HOUR_MS
                                                   for ts, level in stretches)


@analysis
def churn_summary(raw: RawData) -> list:
    rows = []
    for page in sorted(CHURN_PAGES):
        times = [e["ts"] for e in raw.events if e["page"] == page]
        users = {e["userId"] for e in raw.events if e["page"] == page and e["userId"]}
        undone = sum(reversed_downgrade(raw, e) for e in raw.events if e["page"] == page)
        rows.append((page, len(times), len(users), start_time(min(times)) if times else None,
                     start_time(max(times)) if times else None, undone))
    return rows


DAY_MS = 86_400_000


@analysis
def churned_users(raw: RawData) -> list:
    signals = defaultdict(dict)  # user -> page -> first ts
    for e in raw.events:
        if e["page"] in CHURN_PAGES and e["userId"] and not reversed_downgrade(raw, e):
            first = signals[e["userId"]].get(e["page"])
            signals[e["userId"]][e["page"]] = e["ts"] if first is None else min(first, e["ts"])
    rows = []
    for user, pages in signals.items():
        churned = min(pages.values())
        stamps = [e["ts"] for e in raw.plays if e["userId"] == user]
        visits = [e["ts"] for e in raw.events if e["userId"] == user and e["page"] == "Downgrade"]
        downgraded, cancelled = pages.get("Submit Downgrade"), pages.get("Cancellation Confirmation")
        rows.append((int(user), start_time(downgraded) if downgraded else None,
                     start_time(cancelled) if cancelled else None, start_time(churned),
                     sum(ts < churned for ts in stamps), sum(ts > churned for ts in stamps),
                     sum(churned - 14 * DAY_MS <= ts < churned - 7 * DAY_MS for ts in stamps),
                     sum(churned - 7 * DAY_MS <= ts < churned for ts in stamps),
                     sum(ts < churned for ts in visits),
                     raw.expected.users[int(user)][3]))
    return sorted(rows, key=lambda r: (r[3], r[0]))


RISK_PAGES = ("Downgrade", "Cancel")


@analysis
def churn_risk(raw: RawData) -> list:
    """Users whose latest Downgrade/Cancel page visit in the period has no submission at or
    after it; their plays in the 7 days before the period's close (its end, or the end of
    the last day with events when that is earlier), most active first."""
    users = _events_by_user(raw)
    if not users:
        return []
    last = max(items[-1]["ts"] for items in users.values())
    close = start_time(last).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    if raw.period_end is not None:
        close = min(close, raw.period_end)
    rows = []
    for user, items in users.items():
        visits = [e["ts"] for e in items if e["page"] in RISK_PAGES]
        if not visits or any(e["page"] in CHURN_PAGES and e["ts"] >= max(visits) for e in items):
            continue
        recent = sum(e["page"] == "NextSong" and start_time(e["ts"]) >= close - timedelta(days=7) for e in items)
        rows.append((user, len(visits), start_time(max(visits)), start_time(items[-1]["ts"]), recent,
                     items[-1]["level"]))
    return sorted(rows, key=lambda r: (-r[4], -r[3].timestamp(), r[0]))


def _events_by_user(raw: RawData) -> dict:
    """user_id -> their logged-in events in the period, ordered by time then item."""
    users = defaultdict(list)
    for e in raw.events:
        if e["userId"]:
            users[int(e["userId"])].append(e)
    for items in users.values():
        items.sort(key=lambda e: (e["ts"], e["itemInSession"]))
    return users


@analysis
def level_at_play(raw: RawData) -> list:
    from bisect import bisect_right

    timelines = defaultdict(list)
    for e in raw.events:
        if e["userId"] and e["level"] is not None:
            timelines[e["userId"]].append((e["ts"], e["sessionId"], e["itemInSession"], e["level"]))
    stretches = {}  # user -> ([valid_from ts], [level]): a stretch starts where the level changes
    for user, items in timelines.items():
        items.sort()
        starts, levels = [], []
        for ts, _, _, level in items:
            if not levels or levels[-1] != level:
                starts.append(ts)
                levels.append(level)
        stretches[user] = (starts, levels)
    pairs = Counter()
    for e in raw.plays:
        starts, levels = stretches.get(e["userId"], ([], []))
        index = bisect_right(starts, e["ts"]) - 1
        pairs[(levels[index] if index >= 0 else None, e["level"])] += 1
    total = len(raw.plays)
    return [(history, on_play, int(history is not None and history == on_play), n, n / total)
            for (history, on_play), n in sorted(pairs.items(), key=lambda kv: (kv[0][0] is None, kv[0][0] or "",
                                                                               kv[0][1] is None, kv[0][1] or ""))]


@analysis
def catalog_coverage(raw: RawData) -> list:
    played = [raw.as_played(e) for e in raw.plays]
    matched = [p for p in played if p[0] is not None]
    songs_played = len({(title, artist) for _, _, title, artist in played})
    catalog_songs, catalog_artists = len(raw.expected.songs), len(raw.expected.artists)
    song_ids, artist_ids = {p[0] for p in matched}, {p[1] for p in matched if p[1] is not None}
    return [(len(played), len(matched), _share(len(matched), len(played)), songs_played, len(song_ids),
             catalog_songs, _share(len(song_ids), catalog_songs), len(artist_ids), catalog_artists,
             _share(len(artist_ids), catalog_artists))]


@analysis
def listening_by_hour(raw: RawData) -> list:
    plays, listeners, paid = Counter(), defaultdict(set), Counter()
    for e in raw.plays:
        hour = start_time(e["ts"]).hour
        plays[hour] += 1
        listeners[hour].add(e["userId"])
        paid[hour] += e["level"] == "paid"
    total = len(raw.plays)
    return [(hour, plays[hour], len(listeners[hour]), plays[hour] / total, paid[hour] / plays[hour])
            for hour in sorted(plays)]


@analysis
def top_listeners(raw: RawData) -> list:
    plays, sessions, days = Counter(), defaultdict(set), defaultdict(set)
    for e in raw.plays:
        user = int(e["userId"])
        plays[user] += 1
        sessions[user].add(e["sessionId"])
        days[user].add(start_time(e["ts"]).date())
    rows = []
    for rank, user in _ranked_top(plays, lambda k: k):
        first, last, gender, level, registered = raw.expected.users[user]
        rows.append((rank, user, first, last, gender, level, registered, plays[user], len(sessions[user]),
                     len(days[user])))
    return rows
