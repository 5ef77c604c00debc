"""Insights: run the analysts' queries over a period and turn their results into findings.

Every figure comes from a query in insight_queries.py; this module only reads the result
tables and phrases what they say (a ratio of two query results at most). Each sentence
names its statistic (a mean, a median, a share) and its unit.
"""

from __future__ import annotations

import csv
import logging
import time
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import insight_queries as iq

from . import progress, report
from .reportmodel import (
    WEEKDAYS,
    Findings,
    Period,
    Table,
    day_label,
    gender_label,
    observed_churners,
    pct,
    plural,
    whole_week,
)

# The funnel's pages as a reader says them.
FUNNEL_STEPS = {"Home": "opened Home", "NextSong": "played a song", "Upgrade": "visited the Upgrade page",
                "Submit Upgrade": "submitted an upgrade"}


log = logging.getLogger(__name__)


class NothingToReport(Exception):
    """The warehouse, or the chosen period, has no events; the message says what it has."""


def resolve_period(wh, since: date | None, until: date | None) -> Period:
    """The period to report on: the days given, clipped to the days the warehouse has
    events on (so a period costs what the data costs, whatever its bounds), or those days."""
    first_day, last_day = wh.execute(iq.data_span).fetchone()
    if first_day is None:
        raise NothingToReport("the warehouse has no events yet: load some with etl.py first")
    if (since and since > last_day) or (until and until < first_day):
        chosen = f"from {since} to {until}" if since and until else (f"from {since} on" if since else f"up to {until}")
        raise NothingToReport(f"no events {chosen}; the warehouse has events from {first_day} to {last_day}")
    first = max(since, first_day) if since else first_day
    last = min(until, last_day) if until else last_day
    return Period(first, last, chosen=since is not None or until is not None, logs_begin=first_day,
                  logs_end=last_day, asked=(since, until))


def run_queries(wh, period: Period) -> dict[str, Table]:
    tables = {}
    queries = iq.statements(period.start, period.end)
    # On a large warehouse the queries take minutes: a bar on a terminal, lines elsewhere.
    with progress.Progress("report queries", len(queries), unit="queries") as running:
        for number, (name, question, statement) in enumerate(queries, 1):
            started = time.perf_counter()
            cur = wh.execute(statement)
            rows = [tuple(_plain(v) for v in row) for row in cur.fetchall()]
            columns = [d[0] for d in cur.description]
            tables[name] = Table(name, question, columns, rows, time.perf_counter() - started)
            running.update(number, last=name)
    # Each query's time in the run's log, as etl.py logs its statements: which question a
    # large warehouse makes slow is there to read, not to guess.
    for table in tables.values():
        log.info("query %-26s %8s rows %7.2f s", table.name, f"{len(table.rows):,}", table.seconds)
    log.info("queries: %.1f s in all", sum(table.seconds for table in tables.values()))
    return tables


def _plain(value):
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and "." not in str(value) else float(value)
    return value


def write_csvs(tables: dict[str, Table], folder: Path) -> list[Path]:
    paths = []
    for table in map(report.with_labels, tables.values()):
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


def ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}×" if b else "n/a"


def findings(t: dict[str, Table], period: Period) -> Findings:
    people = t["population"].records()[0]
    span = (f"{period.label()} (UTC), chosen with --since/--until" if period.chosen
            else f"{period.label()} (UTC), every day the warehouse has events on")
    if period.clipped():
        span += f" ({period.clipped()})"
    if people["first_day"] and (people["first_day"], people["last_day"]) != (period.first, period.last):
        span += f"; events in it from {day_label(people['first_day'])} to {day_label(people['last_day'])}"

    days = [d for d in t["daily_activity"].records() if d["active_users"]]
    busiest = max(days, key=lambda d: (d["plays"], d["day"])) if days else None
    mean_active = sum(d["active_users"] for d in days) / len(days) if days else 0
    activity = (f"Plays peaked on {day_label(busiest['day'])} ({busiest['plays']:,} songs played), and a mean of "
                f"{mean_active:,.0f} users were active per day (on the {len(days)} days with events)."
                if busiest else "No activity in this period.")
    seen = people["first_seen_users"]
    why = (f"because the logs begin on {day_label(period.logs_begin)}, that is everyone active early on"
           if period.logs_begin and period.first <= period.logs_begin else "their first event in the warehouse")
    newcomers = (f"{plural(people['new_users'], 'new user')} signed up in the period (their registration date); "
                 f"{plural(seen, 'user')} {'was' if seen == 1 else 'were'} first seen in it ({why}), "
                 f"which is not a count of new users.")

    cells = t["listening_hours"].records()
    peak = max(cells, key=lambda c: (c["plays_per_weekday"], -c["weekday"], -c["hour"])) if cells else None
    by_hour: dict[int, int] = {}
    for cell in cells:
        by_hour[cell["hour"]] = by_hour.get(cell["hour"], 0) + cell["plays"]
    quiet = min(by_hour, key=lambda h: (by_hour[h], h)) if by_hour else 0
    loud = max(by_hour, key=lambda h: (by_hour[h], -h)) if by_hour else 0
    if peak:
        day = WEEKDAYS[peak["weekday"]]
        hours = (f"Listening peaks at {loud}:00 UTC across the week (busiest slot per {day}: {day}s at "
                 f"{peak['hour']}:00, a mean of {peak['plays_per_weekday']:,.1f} songs played on each of the "
                 f"{peak['weekdays_observed']} {day}s with events) and is quietest at {quiet}:00 UTC.")
    else:
        hours = "No plays in this period."

    panel = ""
    if people["last_registered_at"] is not None:
        first, last = people["first_registered_at"], people["last_registered_at"]
        if last.date() < period.last:
            panel = (f"Every user in the warehouse signed up between {day_label(first)}, {first.year} and "
                     f"{day_label(last)}, {last.year}, and nobody after, though the period runs to "
                     f"{day_label(period.last)}: the logs follow a fixed group of users (a panel), not the app's "
                     f"sign-ups, so every cohort here is active by construction.")
    return Findings(
        span, activity, newcomers, hours, _funnel(t["conversion_funnel"]),
        _retention(t["weekly_cohort_retention"], period),
        _churn(t["churn_summary"], t["churned_users"], period), _paying(t["paid_share"]),
        *_listening(t), *_money(t), _health(t["load_health"].records()[0]), panel,
        _trend(t["weekly_trend"], period), _growth(t["paid_growth"].records()[0]),
        _churn_risk(t["churn_risk"].records()), _path(t["path_to_paying"].records()))


def _path(rows: list[dict]) -> str:
    """Upgraders against those who stayed free, per active day on free, and the time from
    sign-up to upgrade: who upgrades, not what makes them."""
    groups = {r["free_users"]: r for r in rows}
    up, stayed = groups.get("upgraded"), groups.get("stayed free")
    if not up:
        return "No free user upgraded in this period."
    def rates(r: dict) -> str:
        # Two decimals, as the chart's bars say them.
        return (f"{r['plays_per_active_day']:.2f} songs, {r['pages_per_active_day']:.2f} other pages and "
                f"{r['sessions_per_active_day']:.2f} sessions per active day")
    text = f"While free, the {plural(up['users'], 'user')} who upgraded in the period had {rates(up)}"
    text += f", against {rates(stayed)} for the {stayed['users']:,} who stayed free" if stayed else ""
    if up["median_days_to_upgrade"] is not None:
        text += (f"; the median upgrader upgraded {up['median_days_to_upgrade']:.1f} days after signing up "
                 f"({up['min_days_to_upgrade']:.1f} to {up['max_days_to_upgrade']:.1f})")
    return text + ". This describes who upgrades, not what makes them."


def _churn_risk(users: list[dict]) -> str:
    """How many looked at leaving without leaving, how many of them still listen, and who
    listens most: the list the team can act on is the CSV."""
    if not users:
        return "Nobody visited the Downgrade or Cancel page in this period without submitting afterwards."
    paid = sum(u["level"] == "paid" for u in users)
    listening = [u for u in users if u["plays_last_7_days"]]
    top = users[0]
    most = (f"; the most active, user {top['user_id']} ({top['level']}), played {top['plays_last_7_days']:,} "
            f"songs in those days") if listening else ""
    on_paid = ("all on the paid level" if paid == len(users) and len(users) > 1
               else f"{paid:,} of them on the paid level")
    return (f"{plural(len(users), 'user')} visited the Downgrade or Cancel page without submitting afterwards "
            f"({on_paid} at their last event), and {len(listening):,} of them played "
            f"songs in the period's last 7 days{most}: the list to contact is churn_risk.csv.")


def _trend(table: Table, period: Period) -> str:
    """The first and the last whole week compared; partial weeks are named, never compared."""
    weeks = table.records()
    whole = [w for w in weeks if whole_week(w["week_start"], period)]
    partial = [w for w in weeks if w not in whole]
    named = _and(["the week of " + day_label(w["week_start"]) for w in partial]) if partial else ""
    cut = (f" ({named}, only partly in the period or the data, {'is' if len(partial) == 1 else 'are'} "
           f"left out)") if partial else ""
    if len(whole) < 2:
        return f"The period holds fewer than two whole weeks, so no week-on-week trend is stated{cut}."
    a, b = whole[0], whole[-1]
    change = f"{(b['plays'] - a['plays']) / a['plays']:+.0%}" if a["plays"] else "n/a"
    return (f"Over the whole weeks{cut}, plays went from {a['plays']:,} in the week of {day_label(a['week_start'])} "
            f"to {b['plays']:,} in the week of {day_label(b['week_start'])} ({change}), and weekly listeners from "
            f"{a['listeners']:,} to {b['listeners']:,}.")


def _growth(row: dict) -> str:
    if not row["listeners"]:
        return "No listeners in this period."
    return (f"Paid listeners went from {row['paid_at_start']:,} at the start of the period to "
            f"{row['paid_at_end']:,} at its end (of {plural(row['listeners'], 'listener')}): "
            f"{row['moved_to_paid']:,} moved from free to paid and {row['moved_to_free']:,} from paid to free.")


def _funnel(table: Table) -> str:
    steps = table.records()
    first, last = steps[0], steps[-1]
    if not first["users"]:
        return "No free user opened Home in this period."
    later = [s for s in steps[1:] if s["share_of_previous"] is not None]
    drop = min(later, key=lambda s: (s["share_of_previous"], s["step"])) if later else None
    before = steps[drop["step"] - 2] if drop else None
    text = (f"Of the {plural(first['users'], 'free user')} who opened Home, {last['users']:,} "
            f"{FUNNEL_STEPS[last['page']]} ({pct(last['users'], first['users'])})")
    if drop and before:
        text += (f"; the steepest drop is between “{FUNNEL_STEPS[before['page']]}” and "
                 f"“{FUNNEL_STEPS[drop['page']]}”, which {pct(drop['users'], before['users'])} went on to")
    return text + "."


def _retention(table: Table, period: Period) -> str:
    """The largest cohort's share active the week after signing up and in the last week,
    counting only weeks wholly inside the period (a cut week would read as a drop)."""
    rows = table.records()
    if not rows:
        return "Nobody who signed up before the period's end was active in it."
    sizes = {r["cohort_week"]: r["cohort_users"] for r in rows}
    cohort = max(sizes, key=lambda week: (sizes[week], week))
    weeks = {r["week_number"]: r for r in rows if r["cohort_week"] == cohort
             and whole_week(cohort + timedelta(weeks=r["week_number"]), period)}
    text = f"Of the {plural(sizes[cohort], 'user')} who signed up in the week of {day_label(cohort)}, "
    if not weeks:
        return text + "none of the weeks after lies wholly inside the period (see the heatmap)."
    last = max(weeks)
    share = pct(weeks[last]["active_users"], sizes[cohort])
    if 1 in weeks and last > 1:
        return text + (f"{pct(weeks[1]['active_users'], sizes[cohort])} were active the week after and {share} in "
                       f"week {last}, the period's last whole week.")
    return text + f"{share} were active in week {last} after signing up (the period's last whole week)."


def _churn(summary: Table, users: Table, period: Period) -> str:
    counts = {r["page"]: r for r in summary.records()}
    downgrades, cancels = counts["Submit Downgrade"], counts["Cancellation Confirmation"]
    if not downgrades["events"] and not cancels["events"]:
        return ("No downgrades (Submit Downgrade) and no cancellations (Cancellation Confirmation) "
                "in this period.")
    said = []
    for row, verb in ((downgrades, "submitted a downgrade"), (cancels, "cancelled (Cancellation Confirmation)")):
        said.append(f"{plural(row['users'], 'user')} {verb}" if row["users"] else f"none {verb.split(' (')[0]}")
    text = f"{said[0][0].upper()}{said[0][1:]} and {said[1]} in this period"
    undone = downgrades.get("reversed") or 0
    if undone:
        text += (f"; {plural(undone, 'downgrade')} {'was' if undone == 1 else 'were'} undone within an hour (the "
                 f"user back on paid): a reversal, not churn")
    if not users.rows:
        return text + "; so nobody churned."
    churners, left_out = observed_churners(users, period)
    if not churners:
        return text + "; none churned late enough for the two weeks before to lie in the period."
    recent = sum(r["plays_days_1_to_7_before"] for r in churners)
    earlier = sum(r["plays_days_8_to_14_before"] for r in churners)
    visits = sum(r["downgrade_visits_before"] for r in churners)
    who = ("they" if len(churners) != 1 else "the user") if not left_out else \
        f"the {len(churners):,} of them whose two weeks before lie in the period"
    return (f"{text}; in the 7 days before churning, {who} played {plural(recent, 'song')} against {earlier:,} in "
            f"the 7 days before that, after {plural(visits, 'visit')} to the Downgrade page.")


def _paying(table: Table) -> str:
    rows = table.records()
    overall = next((r for r in rows if r["dimension"] == "all"), None)
    if not overall or not overall["listeners"]:
        return "No listeners in this period."
    text = (f"{overall['paid_listeners']:,} of {plural(overall['listeners'], 'listener')} "
            f"({pct(overall['paid_listeners'], overall['listeners'])}) were on the paid level at the end of the period")
    genders = [r for r in rows if r["dimension"] == "gender" and r["value"] in ("F", "M")]
    if len(genders) == 2:
        text += "; " + " against ".join(f"{pct(r['paid_listeners'], r['listeners'])} of {gender_label(r['value'])}"
                                        for r in genders)
    places = [r for r in rows if r["dimension"] == "location" and r["value"] != iq.SMALL_METROS]
    if len(places) > 1:
        top = max(r["paid_share"] for r in places)
        best = sorted((r for r in places if r["paid_share"] == top), key=lambda r: r["value"])
        named = _and([f"{r['value']} ({r['paid_listeners']} of {r['listeners']})" for r in best])
        has = "has" if len(best) == 1 else f"share ({len(best)}-way tie)"
        text += (f"; of the {len(places)} metros with at least {iq.MIN_GROUP} listeners, {named} {has} the highest "
                 f"paid share")
    elif places:
        only = places[0]
        text += (f"; only {only['value']} has {iq.MIN_GROUP} or more listeners ({only['paid_listeners']} of "
                 f"{only['listeners']} paid), so no metro is ranked")
    else:
        text += f"; no metro has {iq.MIN_GROUP} or more listeners, so none is ranked"
    return text + "."


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _listening(t: dict[str, Table]) -> tuple[str, str, str, str, str, str, str]:
    coverage = t["catalog_coverage"].records()[0]
    songs_rows = t["top_songs"].records()
    missing = sum(1 for s in songs_rows if not s["in_catalog"])
    songs = (f"The most played song is “{songs_rows[0]['song_title']}” by {songs_rows[0]['artist_name']} "
             f"({songs_rows[0]['plays']:,} plays); {missing} of the top {len(songs_rows)} are not in the song "
             f"catalog, which covers only {pct(coverage['plays_matched'], coverage['plays'])} of all plays."
             if songs_rows else "No plays in this period.")
    artists_rows = t["top_artists"].records()
    artists = (f"{artists_rows[0]['artist_name']} leads with {artists_rows[0]['plays']:,} plays by "
               f"{plural(artists_rows[0]['listeners'], 'listener')}; the top {len(artists_rows)} artists account for "
               f"{pct(sum(a['plays'] for a in artists_rows), coverage['plays'])} of plays."
               if artists_rows else "No plays in this period.")

    levels_rows = {r["level"]: r for r in t["level_share"].records()}
    paid, free = levels_rows.get("paid"), levels_rows.get("free")
    people = t["population"].records()[0]
    both = people["listeners_on_both_levels"]
    if paid and free:
        per_paid, per_free = paid["plays"] / paid["listeners"], free["plays"] / free["listeners"]
        levels = (f"Paid listening makes up {pct(paid['plays'], paid['plays'] + free['plays'])} of all plays. "
                  f"Paid users play more: a mean of {per_paid:.0f} plays per paid listener against {per_free:.0f} "
                  f"per free listener ({ratio(per_paid, per_free)}), and a median of {paid['median_plays']:.0f} "
                  f"against {free['median_plays']:.0f}; the {plural(both, 'listener')} who played on both levels "
                  f"count at each. Plays are skewed: the 5 most active listeners made "
                  f"{pct(people['plays_of_top_5_listeners'], people['listener_plays'])} of them, and the median "
                  f"listener played {people['median_plays_per_listener']:.0f} songs. This describes who pays, "
                  f"not what paying does.")
    else:
        levels = "Only one level has plays in this period."

    genders = t["gender_share"].records()
    total_plays = sum(g["plays"] for g in genders)
    gender = ("; ".join(f"{gender_label(g['gender'])}: {plural(g['listeners'], 'listener')}, "
                        f"{pct(g['plays'], total_plays)} of plays" for g in genders) + ".") if genders \
        else "No plays in this period."

    places = t["top_locations"].records()
    locations = (f"{places[0]['location']} is the top location ({places[0]['plays']:,} plays from "
                 f"{plural(places[0]['listeners'], 'listener')}); the top {len(places)} locations "
                 f"give {pct(sum(p['plays'] for p in places), total_plays)} of plays." if places
                 else "No plays in this period.")

    leaders: dict[str, dict] = {}
    for row in t["platforms"].records():
        leaders.setdefault(row["dimension"], row)
    platforms = ("The largest share of plays comes from " + ", ".join(
        f"{leaders[d]['value']} among {d}s ({pct(leaders[d]['plays'], total_plays)})"
        for d in ("browser", "operating system", "device") if d in leaders) + ".") if leaders \
        else "No plays in this period."

    engaged = {r["level"]: r for r in t["engagement"].records()}
    p, f = engaged.get("paid"), engaged.get("free")
    if p and f and p["songs_per_session"] is not None and f["songs_per_session"] is not None:
        times = ratio(p["songs_per_session"], f["songs_per_session"])
        engagement = (f"A paid session with a play holds a mean of {p['songs_per_session']:.1f} songs against "
                      f"{f['songs_per_session']:.1f} songs on free ({times}). "
                      f"The median paid session lasts {p['median_session_minutes']:.1f} minutes against "
                      f"{f['median_session_minutes']:.1f} minutes on free, counting each session's last song. "
                      f"This says how paid users listen, not what paying makes them do.")
    else:
        engagement = "Sessions with plays on one level only in this period."
    return songs, artists, levels, gender, locations, platforms, engagement


def _money(t: dict[str, Table]) -> tuple[str, str]:
    changes_rows = t["level_changes"].records()
    ups = sum(r["upgrades"] for r in changes_rows)
    downs = sum(r["downgrades"] for r in changes_rows)
    undone = sum(r["reversed_changes"] for r in changes_rows)
    changes = (f"{plural(ups, 'upgrade')} to paid and {plural(downs, 'downgrade')} to free in the level history "
               f"(users whose level changed between two of their events)")
    changes += (f"; {plural(undone, 'change')} undone within an hour {'counts' if undone == 1 else 'count'} as "
                f"neither." if undone else ".")
    around = {r["period"]: r for r in t["upgrade_engagement"].records()}
    if "before upgrade" in around and "after upgrade" in around:
        b, a = around["before upgrade"], around["after upgrade"]
        upgraders = max(a["users"], b["users"])
        some = "" if a["users"] == b["users"] else \
            f" ({b['users']:,} of them played in their free stretch, {a['users']:,} in their paid one)"
        upgrade = (f"The same {plural(upgraders, 'upgrader')} played a mean of {a['plays_per_active_day']:.1f} songs "
                   f"per active day in their paid stretch against {b['plays_per_active_day']:.1f} in the free "
                   f"stretch before it ({ratio(a['plays_per_active_day'], b['plays_per_active_day'])}){some}: a "
                   f"before/after comparison of the same people, not an effect of upgrading.")
    else:
        upgrade = "No upgrade with plays on both sides in this period."
    return changes, upgrade


def _health(row: dict) -> str:
    if not row["latest_event"]:
        return "No events in this period."
    batches = plural(row["batches_published"], "published batch", "published batches")
    return (f"{row['source_files']:,} source files in {batches} "
            f"({row['batches_failed']} failed) and {plural(row['records_rejected'], 'record')} rejected over every "
            f"load; {pct(row['plays_matched'], row['plays'])} of the period's plays matched to the catalog; "
            f"latest event {row['latest_event']:%Y-%m-%d %H:%M} UTC.")


def generate(config, folder: Path, since: date | None = None, until: date | None = None
             ) -> tuple[Path, Findings, dict[str, Table], Period]:
    """Runs every query over the period on the configured engine; writes the CSVs and the
    HTML report."""
    from .warehouse import connect

    # A run that reports nothing leaves no earlier run's page or CSVs behind to be read as its own.
    for stale in [folder / "index.html", *(folder / f"{name}.csv" for name, _, _ in iq.QUERIES)]:
        stale.unlink(missing_ok=True)
    with connect(config) as wh:
        period = resolve_period(wh, since, until)
        tables = run_queries(wh, period)
        wh.rollback()
    if tables["population"].records()[0]["first_day"] is None:
        raise NothingToReport(f"no events from {period.first} to {period.last}, though the warehouse has "
                              f"events before and after")
    folder.mkdir(parents=True, exist_ok=True)
    write_csvs(tables, folder)
    found = findings(tables, period)
    page = folder / "index.html"
    page.write_text(report.render(tables, found, period, config.describe_target()), encoding="utf-8")
    return page, found, tables, period


def summary_lines(found: Findings, page: Path, seconds: float) -> list[str]:
    lines = [f"Sparkify insights for {found.period}:"]
    for label, text in (("activity", f"{found.activity} {found.newcomers} {found.panel}".strip()),
                        ("trend", found.trend), ("hours", found.hours),
                        ("funnel", found.funnel), ("retention", found.retention), ("churn", found.churn),
                        ("churn risk", found.churn_risk), ("path", found.path),
                        ("paying", found.paying), ("growth", found.growth), ("songs", found.songs),
                        ("artists", found.artists),
                        ("free/paid", found.levels), ("platforms", found.platforms),
                        ("engagement", found.engagement), ("money", f"{found.changes} {found.upgrade}"),
                        ("data health", found.health)):
        lines.append(f"  {label:<11} {text}")
    lines.append(f"Report: {page} (and one CSV per table beside it), written in {seconds:.1f} s")
    return lines
