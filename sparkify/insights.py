"""Insights: run the analysts' queries and turn their results into findings.

Every figure comes from a query in insight_queries.py; this module only reads the result
tables and phrases what they say (a ratio of two query results at most).
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import insight_queries as iq

WEEKDAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]


@dataclass
class Table:
    name: str
    question: str
    columns: list[str]
    rows: list[tuple]
    seconds: float

    def records(self) -> list[dict]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def column(self, name: str) -> list:
        index = self.columns.index(name)
        return [row[index] for row in self.rows]


def run_queries(wh) -> dict[str, Table]:
    tables = {}
    for name, question, statement in iq.QUERIES:
        started = time.perf_counter()
        cur = wh.execute(statement)
        rows = [tuple(_plain(v) for v in row) for row in cur.fetchall()]
        columns = [d[0] for d in cur.description]
        tables[name] = Table(name, question, columns, rows, time.perf_counter() - started)
    return tables


def _plain(value):
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and "." not in str(value) else float(value)
    return value


def write_csvs(tables: dict[str, Table], folder: Path) -> list[Path]:
    paths = []
    for table in tables.values():
        path = folder / f"{table.name}.csv"
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(table.columns)
            writer.writerows([[_csv(v) for v in row] for row in table.rows])
        paths.append(path)
    return paths


def _csv(value):
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return "" if value is None else value


def pct(part: float, whole: float) -> str:
    """A share in whole percent; below 1 % with one decimal, so a real share never reads 0%."""
    if not whole:
        return "n/a"
    share = 100.0 * part / whole
    if 0 < share < 0.1:
        return "under 0.1%"
    return f"{share:.1f}%" if 0 < share < 1 else f"{share:.0f}%"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}×" if b else "n/a"


def day_label(day: date) -> str:
    return f"{day:%b} {day.day}"


@dataclass
class Findings:
    """One sentence per chart, computed from the tables."""

    activity: str
    hours: str
    songs: str
    artists: str
    levels: str
    gender: str
    locations: str
    platforms: str
    engagement: str
    changes: str
    upgrade: str
    health: str


def findings(t: dict[str, Table]) -> Findings:
    days = t["daily_activity"].records()
    busiest = max(days, key=lambda d: (d["plays"], d["day"])) if days else None
    mean_active = sum(d["active_users"] for d in days) / len(days) if days else 0
    new_users = sum(d["new_users"] for d in days)
    activity = (f"Plays peaked on {day_label(busiest['day'])} ({busiest['plays']:,}); on average "
                f"{mean_active:,.0f} users were active per day, and {new_users:,} users were seen for the first "
                f"time between {day_label(days[0]['day'])} and {day_label(days[-1]['day'])}." if busiest
                else "No activity loaded yet.")

    cells = t["listening_hours"].records()
    peak = max(cells, key=lambda c: (c["plays"], -c["weekday"], -c["hour"])) if cells else None
    by_hour: dict[int, int] = {}
    for cell in cells:
        by_hour[cell["hour"]] = by_hour.get(cell["hour"], 0) + cell["plays"]
    quiet = min(by_hour, key=lambda h: (by_hour[h], h)) if by_hour else 0
    loud = max(by_hour, key=lambda h: (by_hour[h], -h)) if by_hour else 0
    hours = (f"Listening peaks at {loud}:00 UTC across the week (busiest slot: {WEEKDAYS[peak['weekday']]}s at "
             f"{peak['hour']}:00, {peak['plays']:,} plays) and is quietest at {quiet}:00 UTC."
             if peak else "No plays yet.")

    coverage = t["catalog_coverage"].records()[0]
    songs_rows = t["top_songs"].records()
    missing = sum(1 for s in songs_rows if not s["in_catalog"])
    songs = (f"The most played song is “{songs_rows[0]['song_title']}” by {songs_rows[0]['artist_name']} "
             f"({songs_rows[0]['plays']:,} plays); {missing} of the top {len(songs_rows)} are not in the song "
             f"catalog, which covers only {pct(coverage['plays_matched'], coverage['plays'])} of all plays."
             if songs_rows else "No plays yet.")
    artists_rows = t["top_artists"].records()
    artists = (f"{artists_rows[0]['artist_name']} leads with {artists_rows[0]['plays']:,} plays by "
               f"{artists_rows[0]['listeners']:,} listeners; the top 10 artists account for "
               f"{pct(sum(a['plays'] for a in artists_rows), coverage['plays'])} of plays."
               if artists_rows else "No plays yet.")

    levels_rows = {r["level"]: r for r in t["level_share"].records()}
    paid, free = levels_rows.get("paid"), levels_rows.get("free")
    if paid and free:
        per_paid, per_free = paid["plays"] / paid["users"], free["plays"] / free["users"]
        levels = (f"Paid listening makes up {pct(paid['plays'], paid['plays'] + free['plays'])} of all plays: "
                  f"{per_paid:.0f} plays per paid listener against {per_free:.0f} per free listener "
                  f"({ratio(per_paid, per_free)}).")
    else:
        levels = "Only one level has plays so far."

    genders = t["gender_share"].records()
    total_plays = sum(g["plays"] for g in genders)
    gender = ("; ".join(f"{_gender(g['gender'])}: {g['users']} listeners, {pct(g['plays'], total_plays)} of plays"
                        for g in genders) + ".") if genders else "No plays yet."

    places = t["top_locations"].records()
    locations = (f"{places[0]['location']} is the top location ({places[0]['plays']:,} plays from "
                 f"{places[0]['users']} listener{'s' if places[0]['users'] != 1 else ''}); the top 10 locations "
                 f"give {pct(sum(p['plays'] for p in places), total_plays)} of plays." if places else "No plays yet.")

    leaders = {}
    for row in t["platforms"].records():
        leaders.setdefault(row["dimension"], row)
    platforms = ("Most plays come from " + ", ".join(
        f"{leaders[d]['value']} ({pct(leaders[d]['plays'], total_plays)})"
        for d in ("browser", "operating system", "device") if d in leaders) + ".") if leaders else "No plays yet."

    engaged = {r["level"]: r for r in t["engagement"].records()}
    if "paid" in engaged and "free" in engaged:
        p, f = engaged["paid"], engaged["free"]
        engagement = (f"A paid session holds {p['songs_per_session']:.1f} songs against {f['songs_per_session']:.1f} "
                      f"on free ({ratio(p['songs_per_session'], f['songs_per_session'])}), and lasts "
                      f"{p['median_session_minutes']:.0f} minutes at the median against "
                      f"{f['median_session_minutes']:.0f}.")
    else:
        engagement = "Sessions of one level only so far."

    changes_rows = t["level_changes"].records()
    ups = sum(r["upgrades"] for r in changes_rows)
    downs = sum(r["downgrades"] for r in changes_rows)
    changes = (f"{ups:,} upgrade{'s' if ups != 1 else ''} to paid and "
               f"{downs:,} downgrade{'s' if downs != 1 else ''} to free.")
    around = {r["period"]: r for r in t["upgrade_engagement"].records()}
    if "before upgrade" in around and "after upgrade" in around:
        b, a = around["before upgrade"], around["after upgrade"]
        upgrade = (f"After upgrading, the {a['users']:,} upgraders played {a['plays_per_active_day']:.1f} songs per "
                   f"active day, {ratio(a['plays_per_active_day'], b['plays_per_active_day'])} the "
                   f"{b['plays_per_active_day']:.1f} before.")
    else:
        upgrade = "No upgrade with plays on both sides yet."

    health_row = t["load_health"].records()[0]
    health = (f"{health_row['source_files']:,} source files in {health_row['batches_published']:,} published "
              f"batch{'es' if health_row['batches_published'] != 1 else ''} ({health_row['batches_failed']} failed); "
              f"{health_row['records_rejected']:,} records rejected; "
              f"{pct(health_row['plays_matched'], health_row['plays'])} of plays matched to the catalog; "
              f"latest event {health_row['latest_event']:%Y-%m-%d %H:%M} UTC."
              if health_row["latest_event"] else "Nothing loaded yet.")
    return Findings(activity, hours, songs, artists, levels, gender, locations, platforms, engagement, changes,
                    upgrade, health)


def _gender(code: str) -> str:
    return {"F": "women", "M": "men"}.get(code, code)


def generate(config, folder: Path) -> tuple[Path, Findings, dict[str, Table]]:
    """Runs every query on the configured engine; writes the CSVs and the HTML report."""
    from . import report
    from .warehouse import connect

    with connect(config) as wh:
        tables = run_queries(wh)
        wh.rollback()
    folder.mkdir(parents=True, exist_ok=True)
    write_csvs(tables, folder)
    found = findings(tables)
    page = folder / "index.html"
    page.write_text(report.render(tables, found, config.describe_target()), encoding="utf-8")
    return page, found, tables


def summary_lines(found: Findings, page: Path, seconds: float) -> list[str]:
    lines = ["Sparkify insights (UTC):"]
    for label, text in (("activity", found.activity), ("hours", found.hours), ("songs", found.songs),
                        ("artists", found.artists), ("free/paid", found.levels), ("platforms", found.platforms),
                        ("engagement", found.engagement), ("money", f"{found.changes} {found.upgrade}"),
                        ("data health", found.health)):
        lines.append(f"  {label:<11} {text}")
    lines.append(f"Report: {page} (and one CSV per table beside it), written in {seconds:.1f} s")
    return lines
