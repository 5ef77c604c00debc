"""Sparkify-like data of any size, calibrated on the real dataset, deterministic for a seed.

Calibration reads the real files in data/ once: the order of pages within sessions (a
Markov chain per level, including logged-out browsing), the gaps between events, the
weekday x hour profile of session starts, how active users are, their names, locations
and user agents, the share of paid users, which share of plays match the catalog, and how
popular songs are. Generation then writes the bucket's layout: one JSON-lines file per
day under log_data/YYYY/MM/ and one song per file under song_data/A/B/C/, including the
quirks the toolkit must handle (double-encoded names, numbers as titles, empty userIds).
"""

from __future__ import annotations

import bisect
import itertools
import json
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson

from . import progress
from .textrepair import repair_mojibake

START, END = "<start>", "<end>"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
PAGE_META = {  # page -> (method, status), as in the real logs
    "NextSong": ("PUT", 200), "Home": ("GET", 200), "Login": ("PUT", 307), "Logout": ("PUT", 307),
    "Downgrade": ("GET", 200), "Settings": ("GET", 200), "Help": ("GET", 200), "About": ("GET", 200),
    "Upgrade": ("GET", 200), "Save Settings": ("PUT", 307), "Error": ("GET", 404),
    "Submit Upgrade": ("PUT", 307), "Submit Downgrade": ("PUT", 307),
}


class Sampler:
    """Weighted choice with precomputed cumulative weights (random.choices, but reusable)."""

    def __init__(self, items, weights):
        self.items = list(items)
        self.cumulative = list(itertools.accumulate(weights))
        self.total = self.cumulative[-1]

    def pick(self, rng: random.Random):
        return self.items[bisect.bisect_right(self.cumulative, rng.random() * self.total)]


def double_encode(text: str) -> str:
    """What the real logs do to non-ASCII names: UTF-8 read as Latin-1, twice."""
    for _ in range(2):
        text = text.encode("utf-8").decode("latin-1")
    return text


@dataclass
class Calibration:
    chains: dict = field(default_factory=dict)       # level -> page -> Sampler of next page
    anonymous_chain: dict = field(default_factory=dict)
    gaps: dict = field(default_factory=dict)         # page -> Sampler of ms to the next event
    hours: dict = field(default_factory=dict)         # weekday -> Sampler of session start hours
    weekday_share: list = field(default_factory=list)  # share of sessions starting on each weekday
    anonymous_share: float = 0.0                      # share of sessions that are logged out
    profiles: list = field(default_factory=list)     # (first, last, gender, location, agent, registration)
    activity: list = field(default_factory=list)     # relative activity of each real user
    paid_share: float = 0.0                           # users whose first event is paid
    match_share: float = 0.0                          # plays that match the catalog
    outside: list = field(default_factory=list)      # (song, artist, length) of plays the catalog lacks
    songs: list = field(default_factory=list)        # the real catalog, one dict per song
    zipf: float = 0.9                                 # popularity: weight of rank r is r ** -zipf


def calibrate(data: Path) -> Calibration:
    cal = Calibration()
    events = []
    for path in sorted((data / "log_data").rglob("*.json")):
        events += [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    for path in sorted((data / "song_data").rglob("*.json")):
        text = path.read_text(encoding="utf-8")
        decoder, pos = json.JSONDecoder(), 0
        while pos < len(text.rstrip()):
            obj, pos = decoder.raw_decode(text, pos)
            cal.songs.append(obj)
            while pos < len(text) and text[pos].isspace():
                pos += 1

    sessions = defaultdict(list)
    for e in events:
        sessions[(e["userId"], e["sessionId"])].append(e)
    transitions: dict[str, defaultdict[str, Counter[str]]] = {
        "free": defaultdict(Counter), "paid": defaultdict(Counter), "anonymous": defaultdict(Counter)}
    gaps: defaultdict[str, list[int]] = defaultdict(list)
    starts: Counter[tuple[int, int]] = Counter()
    for (user, _), items in sessions.items():
        items.sort(key=lambda e: (e["ts"], e["itemInSession"]))
        kind = "anonymous" if not user else items[0]["level"]
        previous = START
        for e, following in zip(items, items[1:] + [None], strict=True):
            transitions[kind][previous][e["page"]] += 1
            previous = e["page"]
            if following is not None and e["page"] != "NextSong":
                gaps[e["page"]].append(max(1000, following["ts"] - e["ts"]))
        transitions[kind][previous][END] += 1
        moment = EPOCH + timedelta(milliseconds=items[0]["ts"])
        starts[(moment.isoweekday() % 7, moment.hour)] += 1
    for level in ("free", "paid"):
        cal.chains[level] = {p: Sampler(c.keys(), c.values()) for p, c in transitions[level].items()}
    cal.anonymous_chain = {p: Sampler(c.keys(), c.values()) for p, c in transitions["anonymous"].items()}
    cal.gaps = {page: Sampler(values, [1] * len(values)) for page, values in gaps.items()}
    for weekday in range(7):
        row = {hour: starts[(weekday, hour)] for hour in range(24)}
        cal.hours[weekday] = Sampler(row.keys(), [w + 0.01 for w in row.values()])
    per_weekday = [sum(starts[(w, h)] for h in range(24)) for w in range(7)]
    cal.weekday_share = [n / sum(per_weekday) for n in per_weekday]
    cal.anonymous_share = sum(1 for (u, _) in sessions if not u) / len(sessions)

    first: dict[str, dict] = {}
    counts: Counter[str] = Counter()
    for e in sorted(events, key=lambda e: e["ts"]):
        if e["userId"]:
            first.setdefault(e["userId"], e)
            counts[e["userId"]] += 1
    cal.profiles = [(e["firstName"], e["lastName"], e["gender"], e["location"], e["userAgent"], e["registration"])
                    for e in first.values()]
    cal.activity = [counts[u] for u in first]
    cal.paid_share = sum(1 for e in first.values() if e["level"] == "paid") / len(first)

    catalog = {(str(s["title"]), str(s["artist_name"]), s["duration"]) for s in cal.songs}
    plays = [e for e in events if e["page"] == "NextSong"]

    repaired = repair_mojibake
    matched = [e for e in plays if (repaired(e["song"]), repaired(e["artist"]), e["length"]) in catalog]
    cal.match_share = len(matched) / len(plays)
    cal.outside = sorted({(repaired(e["song"]), repaired(e["artist"]), e["length"]) for e in plays}
                         - catalog)
    # Popularity: the Zipf exponent whose top-10 share over the distinct songs played
    # matches the real one.
    played = Counter((e["song"], e["artist"]) for e in plays)
    top10 = sum(n for _, n in played.most_common(10)) / len(plays)
    ranks = range(1, len(played) + 1)
    cal.zipf = min((abs(sum(r ** -s for r in ranks[:10]) / sum(r ** -s for r in ranks) - top10), s)
                   for s in [x / 100 for x in range(5, 121, 5)])[1]
    return cal


@dataclass
class Spec:
    users: int = 100
    days: int = 30
    events_per_day: int = 270
    catalog: int = 14896
    start: datetime = datetime(2018, 11, 1, tzinfo=timezone.utc)
    seed: int = 42
    bad_share: float = 0.0
    write_catalog: bool = True


class Writer:
    """Files into a folder, or objects into an s3:// prefix."""

    def __init__(self, target: str, s3=None):
        self.target, self.s3 = target.rstrip("/"), s3

    def write(self, key: str, body: bytes) -> None:
        if self.target.startswith("s3://"):
            self.s3.write(f"{self.target}/{key}", body)
        else:
            path = Path(self.target) / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)


def _song_id(rng: random.Random, prefix: str) -> str:
    return prefix + "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(16))


def build_catalog(cal: Calibration, size: int, rng: random.Random) -> list[dict]:
    """The real songs first, then variations of them (new ids and titles) up to size."""
    songs = [dict(s) for s in cal.songs[:size]]
    artist_ids: dict = {}
    version = 1
    while len(songs) < size:
        version += 1
        for base in cal.songs:
            if len(songs) >= size:
                break
            song = dict(base)
            key = (base["artist_id"], version // 3)  # new artists every few rounds, each with many songs
            song["artist_id"] = artist_ids.setdefault(key, _song_id(rng, "AR"))
            song["song_id"] = _song_id(rng, "SO")
            song["title"] = f"{base['title']} (version {version})"
            song["duration"] = round(base["duration"] * rng.uniform(0.9, 1.1), 5)
            songs.append(song)
    return songs


def generate(cal: Calibration, spec: Spec, writer: Writer) -> dict:
    """Writes the catalog and the logs; returns counts of what was written."""
    rng = random.Random(spec.seed)
    catalog = build_catalog(cal, spec.catalog, rng)
    written = progress.Progress("write song files", len(catalog) if spec.write_catalog else 0, unit="files")
    with written:
        for number, song in enumerate(catalog if spec.write_catalog else [], 1):
            track = "TR" + song["song_id"][2:]
            key = f"song_data/{track[2]}/{track[3]}/{track[4]}/{track}.json"
            writer.write(key, orjson.dumps(song, option=orjson.OPT_SORT_KEYS))
            if number % 1000 == 0 or number == len(catalog):
                written.update(number)

    # Songs outside the catalog: the real ones, then invented ones, enough that most plays
    # are of a song played only a few times, as in the real logs (capped to bound memory).
    expected_plays = spec.days * spec.events_per_day
    outside = list(cal.outside)
    for k in range(len(outside), min(max(len(outside), 3 * expected_plays), 1_000_000)):
        outside.append((f"Track {k}", f"Band {k % 5000}", round(rng.uniform(120, 420), 5)))
    in_catalog = [(str(s["title"]), str(s["artist_name"]), s["duration"]) for s in catalog]
    for pool in (in_catalog, outside):
        rng.shuffle(pool)
    popular_in = Sampler(range(len(in_catalog)), [(r + 1) ** -cal.zipf for r in range(len(in_catalog))])
    popular_out = Sampler(range(len(outside)), [(r + 1) ** -cal.zipf for r in range(len(outside))])

    users = []
    for uid in range(1, spec.users + 1):
        first, last, gender, location, agent, registration = cal.profiles[(uid - 1) % len(cal.profiles)]
        level = "paid" if rng.random() < cal.paid_share else "free"
        users.append({"id": str(uid), "first": first, "last": last, "gender": gender, "location": location,
                      "agent": agent, "registration": registration, "level": level})
    activity = Sampler(range(len(users)), [cal.activity[i % len(cal.activity)] for i in range(len(users))])

    # Session ids continue across runs that write later days (--logs-only): each day has its
    # own block of a million ids, so a later day never reuses an earlier day's events' keys.
    first_day = (spec.start.date() - datetime(2018, 1, 1).date()).days
    counts: Counter[str] = Counter()
    days = progress.Progress("write log days", spec.days, unit="days")
    for day in range(spec.days):
        midnight = spec.start + timedelta(days=day)
        day_start = int((midnight - EPOCH).total_seconds() * 1000)
        day_end = day_start + 86_400_000
        session_ids = itertools.count((first_day + day) * 1_000_000 + 1)
        weekday = midnight.isoweekday() % 7
        quota = round(spec.events_per_day * 7 * cal.weekday_share[weekday])  # busier and quieter weekdays
        lines: list[tuple[int, bytes]] = []
        while len(lines) < quota:
            hour = cal.hours[weekday].pick(rng)
            ts = day_start + hour * 3_600_000 + rng.randrange(3_600_000)
            anonymous = rng.random() < cal.anonymous_share
            user = None if anonymous else users[activity.pick(rng)]
            session = next(session_ids)
            page, item = START, 0
            while len(lines) < quota:
                chain = cal.anonymous_chain if user is None else cal.chains[user["level"]]
                page = chain[page].pick(rng) if page in chain else END
                if page == END or ts >= day_end:
                    break
                event, ts = _event(rng, cal, user, session, item, page, ts, in_catalog, outside,
                                   popular_in, popular_out)
                lines.append((event["ts"], orjson.dumps(event)))
                counts[page] += 1
                item += 1
        lines.sort(key=lambda pair: pair[0])
        body = [line for _, line in lines]
        counts["bad"] += _spoil(body, spec.bad_share, rng)
        key = f"log_data/{midnight:%Y}/{midnight:%m}/{midnight:%Y-%m-%d}-events.json"
        writer.write(key, b"\n".join(body))
        days.update(day + 1, events=sum(v for k, v in counts.items() if k != "bad"))
    days.close()
    return {"songs": len(catalog), "events": sum(v for k, v in counts.items() if k != "bad"),
            "plays": counts["NextSong"], "bad_records": counts["bad"], "days": spec.days, "users": spec.users}


def _event(rng, cal, user, session, item, page, ts, in_catalog, outside, popular_in, popular_out):
    method, status = PAGE_META.get(page, ("GET", 200))
    event = {"artist": None, "auth": "Logged In" if user else "Logged Out",
             "firstName": user["first"] if user else None, "gender": user["gender"] if user else None,
             "itemInSession": item, "lastName": user["last"] if user else None, "length": None,
             "level": user["level"] if user else "free", "location": user["location"] if user else None,
             "method": method, "page": page, "registration": user["registration"] if user else None,
             "sessionId": session, "song": None, "status": status, "ts": ts,
             "userAgent": user["agent"] if user else None, "userId": user["id"] if user else ""}
    if page == "NextSong":
        if rng.random() < cal.match_share:
            title, artist, length = in_catalog[popular_in.pick(rng)]
        else:
            title, artist, length = outside[popular_out.pick(rng)]
        event["song"] = double_encode(title) if not title.isascii() else title
        event["artist"] = double_encode(artist) if not artist.isascii() else artist
        event["length"] = length
        gap = int(length * 1000)
    else:
        gap = cal.gaps[page].pick(rng) if page in cal.gaps else 30_000
    if user and page == "Submit Upgrade":
        user["level"] = "paid"
    elif user and page == "Submit Downgrade":
        user["level"] = "free"
    return event, ts + gap


def _spoil(lines: list[bytes], share: float, rng: random.Random) -> int:
    """Replaces a share of lines by the kinds of bad records the loader must keep aside."""
    if share <= 0:
        return 0
    spoiled = 0
    for index in range(len(lines)):
        if rng.random() >= share:
            continue
        kind = rng.randrange(4)
        line = lines[index]
        if kind == 0:
            lines[index] = line[: max(1, len(line) // 2)]                     # truncated
        elif kind == 1:
            lines[index] = line.replace(b'"itemInSession":', b'"itemInSession":"x",  "_":', 1)  # wrong type
        elif kind == 2:
            lines[index] = b"not json at all \xff"                              # garbage, invalid UTF-8
        else:
            record = orjson.loads(line)
            record.pop("ts")
            lines[index] = orjson.dumps(record)                                 # missing required field
        spoiled += 1
    return spoiled


def profile(data: Path) -> dict:
    """The figures the calibration is judged by, for any dataset in the bucket's layout."""
    events = []
    for path in sorted((data / "log_data").rglob("*.json")):
        for line in path.read_bytes().splitlines():
            try:
                events.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue
    catalog = set()
    for path in (data / "song_data").rglob("*.json"):
        s = orjson.loads(path.read_bytes())
        catalog.add((str(s["title"]), str(s["artist_name"]), s["duration"]))
    plays = [e for e in events if e.get("page") == "NextSong"]
    sessions = defaultdict(list)
    for e in events:
        sessions[(e.get("userId"), e.get("sessionId"))].append(e)
    hours = Counter((EPOCH + timedelta(milliseconds=e["ts"])).hour for e in plays if "ts" in e)
    weekdays = Counter((EPOCH + timedelta(milliseconds=e["ts"])).isoweekday() % 7 for e in plays if "ts" in e)
    songs = Counter((e["song"], e["artist"]) for e in plays)
    levels = defaultdict(set)
    for e in events:
        if e.get("userId"):
            levels[e["userId"]].add(e["level"])

    fixed = repair_mojibake
    matched = sum(1 for e in plays if (fixed(e["song"]), fixed(e["artist"]), e["length"]) in catalog)
    agents = Counter("Chrome" if "Chrome/" in (e.get("userAgent") or "") else "other" for e in plays)
    return {
        "events": len(events),
        "plays (NextSong share of events)": len(plays) / len(events),
        "logged-out share of events": sum(1 for e in events if not e.get("userId")) / len(events),
        "events per session": len(events) / len(sessions),
        "paid share of plays": sum(1 for e in plays if e["level"] == "paid") / len(plays),
        "users who change level": sum(1 for v in levels.values() if len(v) > 1) / max(1, len(levels)),
        "plays matching the catalog": matched / len(plays),
        "top-10 songs' share of plays": sum(n for _, n in songs.most_common(10)) / len(plays),
        "distinct songs per play": len(songs) / len(plays),
        "peak hour of plays (UTC)": max(hours, key=lambda hour: hours[hour]),
        "plays in the busiest hour": max(hours.values()) / len(plays),
        "plays on the busiest weekday": max(weekdays.values()) / len(plays),
        "Chrome share of plays": agents["Chrome"] / len(plays),
        "double-encoded artist names": sum(1 for e in plays if fixed(e["artist"]) != e["artist"]) / len(plays),
    }
