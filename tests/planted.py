"""A generated month with known answers: who opens Home, plays, visits the Upgrade page and
submits an upgrade, who signed up in which week and is active in which weeks, who
downgrades or cancels and what they did before, and who pays, all decided here, so the
insights report's funnel, cohorts, churn and paid shares can be checked against figures
known by construction (as well as against the oracle).

January 2019, weeks from Monday (UTC): W0 = Dec 31, W1 = Jan 7, W2 = Jan 14, W3 = Jan 21,
W4 = Jan 28. Each active user-week is one session on the week's Wednesday at 10:00 (plus
seven minutes per user, so no two sessions share a time), events 30 seconds apart.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path

from conftest import event, write_events, write_song

EPOCH = datetime(1970, 1, 1)
WEEK_STARTS = [date(2018, 12, 31) + timedelta(weeks=n) for n in range(5)]
WINDOWS = ("Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/36.0.1985.143 "
           "Safari/537.36")
MAC = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_4) AppleWebKit/537.78.2 (KHTML, like Gecko) Version/7.0.6 "
       "Safari/537.78.2")
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 7_1_2 like Mac OS X) AppleWebKit/537.51.2 (KHTML, like Gecko) "
          "Version/7.0 Mobile/11D257 Safari/9537.53")

# Cohorts: sign-up time, and the weeks (index into WEEK_STARTS) each user is active in.
COHORT_A = {"registered": datetime(2018, 12, 26, 8), "users": {
    101: [0, 1, 2, 3, 4], 102: [0, 1, 2, 3, 4], 103: [0, 1, 2], 104: [0, 1], 105: [0, 1], 106: [0],
    107: [0, 1, 2], 108: [0], 109: [0, 1, 2, 3, 4], 110: [0, 1, 2, 3]}}
COHORT_B = {"registered": datetime(2019, 1, 8, 8), "users": {
    201: [1, 2, 3], 202: [1, 2, 3], 203: [1, 2, 3], 204: [1], 205: [1], 206: [1]}}
COHORT_C = {"registered": datetime(2019, 1, 15, 8), "users": {301: [2, 3], 302: [2], 303: [2], 304: [2]}}
COHORTS = [COHORT_A, COHORT_B, COHORT_C]

# A metro of one listener, who pays: 100% paid, and never ranked above the metros of five or more.
TINY_METRO = "Tinytown, WY"
GENDER = {101: "M", 102: "F", 103: "M", 104: "F", 105: "M", 106: "F", 107: "M", 108: "F", 109: "F", 110: "M",
          201: "F", 202: "M", 203: "F", 204: "M", 205: "F", 206: "M", 301: "F", 302: "M", 303: "F", 304: "M"}
PAID_ALL_ALONG = {109, 110}
LOCATION = {**{u: "Austin, TX" for u in COHORT_A["users"]}, **{u: "Boston, MA" for u in COHORT_B["users"]},
            **{u: "Denver, CO" for u in COHORT_C["users"]}, 102: "Boston, MA", 109: TINY_METRO, 110: "Denver, CO"}
AGENT = {**{u: WINDOWS for u in GENDER}, 102: MAC, 109: MAC, 110: MAC, 301: IPHONE}

# Pages of each user's first session (W0), in order, before the plain sessions of later weeks.
FIRST_SESSION = {
    101: ["Home", "NextSong", "NextSong", "NextSong", "Upgrade", "Submit Upgrade", "Home", "NextSong"],
    102: ["Home", "NextSong", "NextSong", "NextSong", "Upgrade", "Submit Upgrade", "Home", "NextSong"],
    103: ["Home", "NextSong", "NextSong", "NextSong", "Upgrade", "NextSong"],
    104: ["Home", "NextSong", "NextSong", "NextSong", "Upgrade", "NextSong"],
    105: ["Upgrade", "Home", "NextSong", "NextSong", "NextSong"],  # the Upgrade page before Home: steps 1-2 only
    106: ["Home", "NextSong", "NextSong", "NextSong"],
    107: ["Home", "Settings"],  # never plays: a user, not a listener
    108: ["Home", "Settings"],
    109: ["Home", "NextSong", "NextSong", "NextSong"],  # paid: no step of the free users' funnel
    110: ["Home", "NextSong", "NextSong", "NextSong"],
}
SKEWED_PLAYS = 120
LATER_SESSION = {107: ["Home", "Help"]}  # everyone else: three plays
SESSION_PAGES = {(101, 2): ["Downgrade"] + ["NextSong"] * 5,  # W2: 5 plays, days 8-14 before the downgrade
                 (101, 3): ["Downgrade", "Downgrade", "NextSong", "NextSong"],  # W3: 2 plays, days 1-7 before
                 (110, 1): ["NextSong"] * SKEWED_PLAYS,  # a skewed listener: far above the median
                 # A same-session reversal: paid user 109 submits a downgrade and upgrades again 60 seconds
                 # later (two events on free, no Home: no step of the funnel). Neither change counts.
                 (109, 2): ["NextSong", "Downgrade", "Submit Downgrade", "Upgrade", "Submit Upgrade", "NextSong"]}
REVERSER = 109
DOWNGRADE_AT = datetime(2019, 1, 24, 12)      # user 101 submits a downgrade (paid until then)
CANCELLED_AT = datetime(2019, 1, 29, 12)      # user 102 cancels (their W4 session ends with it)
EXTRA_DAYS = {109: [datetime(2019, 1, 1, 9), datetime(2019, 1, 31, 9)]}  # one play each: the month's first and last day

# The answers, by construction.
FUNNEL = [8, 6, 4, 2]  # Home: 101-108; played after: 101-106; Upgrade page after: 101-104; submitted: 101, 102
RETENTION = {  # (cohort week, week number) -> (cohort users, active users)
    **{(date(2018, 12, 24), n + 1): (10, active) for n, active in enumerate([10, 8, 6, 4, 3])},
    **{(date(2019, 1, 7), n): (6, active) for n, active in enumerate([6, 3, 3, 0])},
    **{(date(2019, 1, 14), n): (4, active) for n, active in enumerate([4, 1, 0])},
}
# page -> (events, users, reversed): 109's downgrade is submitted, and undone within the minute
CHURN = {"Submit Downgrade": (2, 2, 1), "Cancellation Confirmation": (1, 1, 0)}
DOWNGRADER = {"user_id": 101, "plays_days_8_to_14_before": 5, "plays_days_1_to_7_before": 2,
              "downgrade_visits_before": 4}  # W2: 1, W3: 2, and the one just before submitting
POPULATION = {"users": 20, "listeners": 18, "new_users": 10, "first_seen_users": 20, "listeners_on_both_levels": 2}
PAID_SHARE = {  # (dimension, value) -> (listeners, paid listeners at the end of the period: 102, 109, 110)
    ("all", "all listeners"): (18, 3), ("gender", "F"): (9, 2), ("gender", "M"): (9, 1),
    ("location", "Boston, MA"): (7, 1), ("location", "Austin, TX"): (5, 0), ("location", "Denver, CO"): (5, 1),
    ("location", "metros with fewer than 5 listeners each"): (1, 1),
    ("browser", "Safari"): (4, 3), ("browser", "Chrome"): (14, 0), ("operating system", "macOS"): (3, 3),
    ("operating system", "Windows"): (14, 0), ("operating system", "iOS"): (1, 0), ("device", "desktop"): (17, 3),
    ("device", "mobile"): (1, 0)}
# day -> (upgrades, downgrades, reversed changes): 109's reversal on Jan 16 counts as neither
LEVEL_CHANGES = {date(2019, 1, 2): (2, 0, 0), date(2019, 1, 16): (0, 0, 2), date(2019, 1, 24): (0, 1, 0)}
PERIOD = (date(2019, 1, 1), date(2019, 1, 31))


def _ms(moment: datetime) -> int:
    return int((moment - EPOCH).total_seconds() * 1000)


def _songs():
    titles = [("Song A", "Artist A", 200.5), ("Song B", "Artist A", 180.0), ("Song C", "Artist B", 240.0)]
    n = 0
    while True:
        yield titles[n % len(titles)]
        n += 1


def events() -> list[dict]:
    registered = {u: c["registered"] for c in COHORTS for u in c["users"]}
    weeks = {u: w for c in COHORTS for u, w in c["users"].items()}
    order = sorted(registered)
    songs = _songs()
    out = []

    def session(user: int, session_id: int, begin: datetime, pages: list[str]) -> None:
        level = "paid" if user in PAID_ALL_ALONG else "free"
        for item, page in enumerate(pages):
            moment = begin + timedelta(seconds=30 * item)
            level = _level(user, moment, level)
            if user == REVERSER and item and pages[item - 1] in ("Submit Downgrade", "Submit Upgrade"):
                level = "free" if pages[item - 1] == "Submit Downgrade" else "paid"
            title, artist, length = next(songs)
            out.append(event(str(user), session_id, item, page, _ms(moment), level, song=title, artist=artist,
                             length=length, first_name=f"U{user}", last_name="Planted", gender=GENDER[user],
                             registration=float(_ms(registered[user])), location=LOCATION[user],
                             userAgent=AGENT[user]))

    for user in order:
        offset = timedelta(minutes=7 * order.index(user))
        for week in weeks[user]:
            wednesday = datetime.combine(WEEK_STARTS[week] + timedelta(days=2), datetime.min.time())
            begin = wednesday + timedelta(hours=10) + offset
            if user == 102 and week == 4:  # the cancelling session replaces 102's last Wednesday
                session(user, user * 10 + week, CANCELLED_AT - timedelta(minutes=5),
                        ["NextSong", "Cancel", "Cancellation Confirmation"])
                continue
            if (user, week) in SESSION_PAGES:
                pages = SESSION_PAGES[(user, week)]
            elif week == weeks[user][0] and user in FIRST_SESSION:
                pages = FIRST_SESSION[user]
            else:
                pages = LATER_SESSION.get(user, ["NextSong"] * 3)
            session(user, user * 10 + week, begin, pages)
        for n, moment in enumerate(EXTRA_DAYS.get(user, [])):
            session(user, user * 10 + 5 + n, moment, ["NextSong"])
    session(101, 1019, DOWNGRADE_AT - timedelta(seconds=30), ["Downgrade", "Submit Downgrade", "Home"])
    return out


def _level(user: int, moment: datetime, level: str) -> str:
    """The level an event of this user carries at this moment (upgrades and downgrades take
    effect on the event after the submitting one)."""
    if user in PAID_ALL_ALONG:
        return "paid"
    if user in (101, 102):
        upgraded = datetime(2019, 1, 2, 10) + timedelta(minutes=7 * (user - 101)) + timedelta(seconds=30 * 5)
        if moment <= upgraded:
            return "free"
        if user == 101 and moment > DOWNGRADE_AT:
            return "free"
        return "paid"
    return level


def write(folder: Path) -> Path:
    """Writes the month's events (one file per day) and a small song catalog under folder."""
    by_day = defaultdict(list)
    for e in events():
        by_day[(EPOCH + timedelta(milliseconds=e["ts"])).date()].append(e)
    for day, items in sorted(by_day.items()):
        write_events(folder, f"{day}-events.json", items)
    write_song(folder, {"song_id": "SOPLA01", "title": "Song A", "artist_id": "ARPLA01", "artist_name": "Artist A",
                        "duration": 200.5, "year": 2001, "num_songs": 1, "artist_latitude": None,
                        "artist_location": "", "artist_longitude": None})
    return folder
