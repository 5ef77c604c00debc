"""insights.py: every reported figure against the plain-Python oracle, on the real dataset
(its whole month and a chosen period) and on a generated month whose funnel, cohorts,
churn and paying users are known by construction; and the report as a person sees it, in
headless Chromium."""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import re
import shutil
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import planted
import pytest
from conftest import DATA, fresh_database
from oracle import analysis_results, compute, default_period, insight_figures

import create_tables
import etl
import insights

SCREENSHOTS = os.environ.get("SPARKIFY_REPORT_SCREENSHOTS")  # a folder to keep the section screenshots in
# The real data's second and third weeks: no churn signal falls in them.
PERIOD = (date(2018, 11, 10), date(2018, 11, 20))
NAMES = ["population", "daily_activity", "weekly_trend", "listening_hours", "conversion_funnel",
         "weekly_cohort_retention", "churn_summary", "churned_users", "churn_risk", "paid_share", "top_songs",
         "top_artists", "catalog_coverage", "level_share", "gender_share", "top_locations", "platforms", "engagement",
         "paid_growth", "level_changes", "upgrade_engagement", "path_to_paying", "load_health",
         "load_error_reasons", "schema_drift"]


def load_in_process(warehouse) -> None:
    arguments = ["--config", str(warehouse.config), "--quiet"]
    assert create_tables.main(arguments) == 0
    assert etl.main(arguments) == 0


def run_insights(warehouse, folder: Path, *extra: str) -> tuple[int, str, str]:
    """insights.py's main() in this process; returns (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = insights.main(["--config", str(warehouse.config), "--output", str(folder), "--quiet", *extra])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def real_warehouse(server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("insights")
    with fresh_database(server, folder, log_data=str(DATA / "log_data"),
                        song_data=str(DATA / "song_data")) as warehouse:
        load_in_process(warehouse)
        yield warehouse


@pytest.fixture(scope="module")
def planted_warehouse(server, tmp_path_factory):
    folder = planted.write(tmp_path_factory.mktemp("planted"))
    with fresh_database(server, folder, log_data=str(folder / "log_data"),
                        song_data=str(folder / "song_data")) as warehouse:
        load_in_process(warehouse)
        yield warehouse


EXPECTED: dict = {}  # compute(data) once per data folder of this module


class Case:
    """One report (its stdout and output folder) and what the oracle expects of it."""

    def __init__(self, name, warehouse, folder, data, since=None, until=None):
        args = ([f"--since={since}"] if since else []) + ([f"--until={until}"] if until else [])
        code, self.stdout, stderr = run_insights(warehouse, folder, *args)
        assert code == 0, stderr
        self.name, self.folder, self.data = name, folder, data
        start = datetime(since.year, since.month, since.day) if since else None
        end = datetime(until.year, until.month, until.day) + timedelta(days=1) if until else None
        if data not in EXPECTED:
            EXPECTED[data] = compute(data)
        expected = EXPECTED[data]
        self.figures = insight_figures(data, start, end, expected)
        self.analyses = analysis_results(data, *self.figures["period"], expected)

    def read(self, name: str) -> list[dict]:
        with open(self.folder / f"{name}.csv", encoding="utf-8", newline="") as handle:
            return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def report(real_warehouse, tmp_path_factory):
    """The real data's whole month."""
    return Case("real", real_warehouse, tmp_path_factory.mktemp("report") / "out", DATA)


@pytest.fixture(scope="module")
def period_report(real_warehouse, tmp_path_factory):
    return Case("period", real_warehouse, tmp_path_factory.mktemp("period") / "out", DATA, *PERIOD)


@pytest.fixture(scope="module")
def planted_report(planted_warehouse, tmp_path_factory):
    return Case("planted", planted_warehouse, tmp_path_factory.mktemp("planted-report") / "out",
                Path(str(planted_warehouse.config)).parent)


@pytest.fixture(params=["report", "period_report", "planted_report"])
def case(request) -> Case:
    return request.getfixturevalue(request.param)


# --- every figure against the oracle, in each case -----------------------------------------

def test_every_table_is_a_csv_and_the_summary_names_the_report(case):
    assert sorted(p.stem for p in case.folder.glob("*.csv")) == sorted(NAMES)
    assert f"Report: {case.folder / 'index.html'}" in case.stdout
    for label in ("activity", "hours", "funnel", "retention", "churn", "churn risk", "paying", "songs", "artists",
                  "free/paid", "platforms", "path", "engagement", "money", "data health"):
        assert f"  {label} " in case.stdout


def test_the_population_is_defined_once(case):
    row = case.read("population")[0]
    got = {k: (date.fromisoformat(v) if k.endswith("_day") else (float(v) if v else None) if k.startswith("median")
               else datetime.fromisoformat(v) if k.endswith("_at") else int(v))
           for k, v in row.items()}
    assert got == case.figures["population"]
    # Listeners by level count an upgrader at each level, as the page says beside the figure.
    levels = case.read("level_share")
    assert sum(int(r["listeners"]) for r in levels) == got["listeners"] + got["listeners_on_both_levels"]
    assert sum(int(r["listeners"]) for r in case.read("gender_share")) == got["listeners"]
    # Each term is defined once on the page, with the period's figure.
    page = (case.folder / "index.html").read_text(encoding="utf-8")
    paying = case.figures["paid_share"][("all", "all listeners")][1]
    for term, figure in (("Users", got["users"]), ("Listeners", got["listeners"]), ("New users", got["new_users"]),
                         ("First seen", got["first_seen_users"]), ("Paying users", paying)):
        assert page.count(f"<dt>{term}</dt>") == 1 and f"<dt>{term}</dt><dd><b>{figure:,}</b> " in page, term
    # Every other term the page uses is defined there too, once; a session with its count.
    sessions = sum(entry[1] for entry in case.figures["engagement"].values())
    assert f"<dt>Session</dt><dd><b>{sessions:,}</b> " in page
    for term in ("Level", "Session", "Active day", "Metro", "Catalog", "Published batch", "Names repaired"):
        assert page.count(f"<dt>{term}</dt>") == 1, term


def test_activity_over_time(case):
    rows = case.read("daily_activity")
    got = {date.fromisoformat(r["day"]): (int(r["plays"]), int(r["active_users"]), int(r["new_users"]),
                                          int(r["first_seen_users"])) for r in rows}
    assert got == case.figures["daily_activity"]


def test_weekly_trend(case):
    got = {date.fromisoformat(r["week_start"]): (int(r["days_with_events"]), int(r["plays"]), int(r["active_users"]),
                                                 int(r["listeners"])) for r in case.read("weekly_trend")}
    assert got == case.figures["weekly_trend"]
    data_first, data_end = default_period(case.data)  # a week is whole inside the period and the data
    first_day = max(case.figures["period"][0], data_first).date()
    last_day = (min(case.figures["period"][1], data_end) - timedelta(days=1)).date()
    whole = sorted(w for w in got if first_day <= w and w + timedelta(days=6) <= last_day)
    line = next(line for line in case.stdout.splitlines() if line.startswith("  trend"))
    if len(whole) >= 2:
        first, last = got[whole[0]], got[whole[-1]]
        assert f"from {first[1]:,} in the week of {whole[0]:%b} {whole[0].day} to {last[1]:,} in the week of " \
               f"{whole[-1]:%b} {whole[-1].day}" in line
        assert f"listeners from {first[3]:,} to {last[3]:,}" in line
    else:
        assert "fewer than two whole weeks" in line


def test_listening_hours(case):
    rows = case.read("listening_hours")
    assert {(int(r["weekday"]), int(r["hour"])): int(r["plays"]) for r in rows} == case.figures["listening_hours"]
    observed = case.figures["weekdays_observed"]
    for r in rows:
        assert int(r["weekdays_observed"]) == observed[int(r["weekday"])]
        assert float(r["plays_per_weekday"]) == pytest.approx(int(r["plays"]) / observed[int(r["weekday"])], abs=0.006)
    # The busiest slot is compared per occurrence of its weekday, and the sentence says so.
    best = max(rows, key=lambda r: (float(r["plays_per_weekday"]), -int(r["weekday"]), -int(r["hour"])))
    day = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"][int(best["weekday"])]
    mean = float(best["plays_per_weekday"])
    assert f"busiest slot per {day}: {day}s at {int(best['hour'])}:00, a mean of {mean:,.1f} songs played on " \
           f"each of the {int(best['weekdays_observed'])} {day}s with events" in case.stdout


def test_top_songs_and_artists_count_every_play(case):
    oracle = case.figures
    songs = case.read("top_songs")
    assert [int(r["plays"]) for r in songs] == sorted((v[0] for v in oracle["songs"].values()), reverse=True)[:10]
    for r in songs:
        assert oracle["songs"][(r["song_title"], r["artist_name"])] == (int(r["plays"]), int(r["listeners"]),
                                                                         int(r["in_catalog"]))
    artists = case.read("top_artists")
    assert [int(r["plays"]) for r in artists] == sorted((v[0] for v in oracle["artists"].values()), reverse=True)[:10]
    for r in artists:
        assert oracle["artists"][r["artist_name"]] == (int(r["plays"]), int(r["listeners"]))
    coverage = case.read("catalog_coverage")[0]
    assert (int(coverage["plays"]), int(coverage["plays_matched"]), int(coverage["songs_played"])) == \
        oracle["coverage"]


def test_who_listens(case):
    oracle = case.figures
    assert {r["level"]: (int(r["listeners"]), int(r["plays"])) for r in case.read("level_share")} == \
        oracle["levels"]
    assert {r["level"]: float(r["median_plays"]) for r in case.read("level_share")} == oracle["median_plays"]
    assert {r["gender"]: (int(r["listeners"]), int(r["plays"])) for r in case.read("gender_share")} == \
        oracle["gender"]
    # The CSVs keep the codes and say them as the page does, in a label column beside them.
    words = {"F": "women", "M": "men"}
    assert {r["gender"]: r["gender_label"] for r in case.read("gender_share")} == \
        {g: words.get(g, g) for g in oracle["gender"]}
    assert {r["value"]: r["value_label"] for r in case.read("paid_share") if r["dimension"] == "gender"} == \
        {g: words.get(g, g) for (dimension, g) in case.figures["paid_share"] if dimension == "gender"}
    locations = case.read("top_locations")
    assert [int(r["plays"]) for r in locations] == sorted((v[1] for v in oracle["locations"].values()),
                                                          reverse=True)[:10]
    for r in locations:
        assert oracle["locations"][r["location"]] == (int(r["listeners"]), int(r["plays"]))
    platforms = {(r["dimension"], r["value"]): int(r["plays"]) for r in case.read("platforms")}
    assert platforms == oracle["platforms"]


def test_who_the_paying_users_are(case):
    rows = case.read("paid_share")
    got = {(r["dimension"], r["value"]): (int(r["listeners"]), int(r["paid_listeners"]), float(r["paid_share"]))
           for r in rows}
    assert got.keys() == case.figures["paid_share"].keys()
    for key, (listeners, paid, share) in case.figures["paid_share"].items():
        assert got[key][:2] == (listeners, paid), key
        assert math.isclose(got[key][2], share, rel_tol=1e-9), key


def test_engagement(case):
    rows = case.read("engagement")
    assert {r["level"] for r in rows} == set(case.figures["engagement"])
    for r in rows:
        users, sessions, without, per_user, songs, mean_minutes, median_minutes = case.figures["engagement"][r["level"]]
        assert (int(r["users"]), int(r["sessions"]), int(r["sessions_without_plays"])) == (users, sessions, without)
        assert float(r["sessions_per_user"]) == pytest.approx(per_user, abs=0.006)
        assert float(r["songs_per_session"]) == pytest.approx(songs, abs=0.006)
        assert float(r["avg_session_minutes"]) == pytest.approx(mean_minutes, abs=0.051)
        assert float(r["median_session_minutes"]) == pytest.approx(median_minutes, abs=0.051)


def test_net_paid_growth(case):
    row = case.read("paid_growth")[0]
    got = tuple(int(row[k]) for k in ("listeners", "paid_at_start", "moved_to_paid", "moved_to_free", "paid_at_end"))
    assert got == case.figures["paid_growth"]
    assert got[1] + got[2] - got[3] == got[4]
    line = next(line for line in case.stdout.splitlines() if line.startswith("  growth"))
    assert f"Paid listeners went from {got[1]:,} at the start of the period to {got[4]:,} at its end" in line


def test_money(case):
    changes = {date.fromisoformat(r["day"]): (int(r["upgrades"]), int(r["downgrades"]), int(r["reversed_changes"]))
               for r in case.read("level_changes")}
    assert changes == case.figures["level_changes"]
    around = case.read("upgrade_engagement")
    assert {r["period"] for r in around} == set(case.figures["upgrade_engagement"])
    for r in around:
        users, plays, days, per_day = case.figures["upgrade_engagement"][r["period"]]
        assert (int(r["users"]), int(r["plays"]), int(r["active_days"])) == (users, plays, days)
        assert float(r["plays_per_active_day"]) == pytest.approx(per_day, abs=0.006)


def as_csv(value) -> str:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return "" if value is None else str(value)


@pytest.mark.parametrize("name", ["conversion_funnel", "weekly_cohort_retention", "churn_summary", "churned_users",
                                  "churn_risk"])
def test_funnel_cohorts_and_churn_are_the_analyses_over_the_period(case, name):
    """The report runs analyses/<name>.sql itself: its CSV is the oracle's rows for that file."""
    rows = [list(r.values()) for r in case.read(name)]
    want = case.analyses[name]
    assert len(rows) == len(want), (rows, want)
    for got, wanted in zip(rows, want, strict=True):
        for value, expected in zip(got, wanted, strict=True):
            if isinstance(expected, float):
                assert math.isclose(float(value), expected, rel_tol=1e-9), (got, wanted)
            else:
                assert value == as_csv(expected), (got, wanted)


def test_churn_risk_says_the_oracle_s_list(case):
    """The sentence's counts are the oracle's: who is at risk, on paid, still listening, most active."""
    users = case.analyses["churn_risk"]
    line = next(line for line in case.stdout.splitlines() if line.startswith("  churn risk"))
    if not users:
        assert "Nobody visited" in line
        return
    listening = [u for u in users if u[4]]
    paid = sum(u[5] == "paid" for u in users)
    on_paid = "(all on the paid level" if paid == len(users) > 1 else f"({paid:,} of them on the paid level"
    assert f" {len(users):,} user" in line and on_paid in line
    assert f"and {len(listening):,} of them played" in line
    if listening:
        assert f"user {users[0][0]} ({users[0][5]}), played {users[0][4]:,} songs" in line


def test_the_path_to_paying(case):
    """Upgraders against those who stayed free, while free, and the days from sign-up to
    upgrade: the CSV and the sentence are the oracle's."""
    want = case.figures["path_to_paying"]
    rows = {r["free_users"]: r for r in case.read("path_to_paying")}
    assert rows.keys() == want.keys()
    for group, expected in want.items():
        got = [rows[group][c] for c in ("users", "active_days", "pages_per_active_day", "plays_per_active_day",
                                        "sessions_per_active_day", "upgraders_timed", "median_days_to_upgrade",
                                        "min_days_to_upgrade", "max_days_to_upgrade")]
        for value, wanted in zip(got, expected, strict=True):
            if wanted is None:
                assert value == "", (group, got, expected)
            else:
                assert math.isclose(float(value), wanted, rel_tol=1e-9), (group, got, expected)
    line = next(line for line in case.stdout.splitlines() if line.startswith("  path"))
    if "upgraded" in want:
        up = want["upgraded"]
        assert f"the {up[0]:,} user" in line and f"{up[3]:.2f} songs, {up[2]:.2f} other pages" in line
        if up[6] is not None:
            assert f"upgraded {up[6]:.1f} days after signing up" in line
    else:
        assert "No free user upgraded" in line


def test_data_health(case):
    health = case.read("load_health")[0]
    assert health["latest_event"] == case.figures["latest_event"].isoformat(sep=" ")
    assert int(health["events"]) == case.figures["events"]
    assert int(health["plays"]) == case.figures["coverage"][0]
    assert int(health["plays_matched"]) == case.figures["coverage"][1]
    assert int(health["records_rejected"]) == 0 and int(health["batches_published"]) == 1


def test_the_page_states_its_period(case):
    first, last = (d.date() for d in (case.figures["period"][0], case.figures["period"][1] - timedelta(days=1)))
    label = f"{first:%b} {first.day} – {last:%b} {last.day}, {last.year}"
    page = (case.folder / "index.html").read_text(encoding="utf-8")
    assert f"Period: {label} (UTC)" in page and f"insights for {label} (UTC)" in case.stdout
    assert ("chosen with --since/--until" in page) == (case.name == "period")


# --- what the sentences say ----------------------------------------------------------------------

def test_takeaways_state_figures_from_the_data(report):
    out, oracle = report.stdout, report.figures
    paid_users, paid_plays = oracle["levels"]["paid"]
    free_users, free_plays = oracle["levels"]["free"]
    ratio = (paid_plays / paid_users) / (free_plays / free_users)
    assert f"({ratio:.1f}×)" in out
    ups = sum(v[0] for v in oracle["level_changes"].values())
    assert f"{ups:,} upgrades to paid" in out
    # New users come from sign-ups; first seen is labelled as such and never called new.
    people = oracle["population"]
    assert people["new_users"] < people["first_seen_users"] == people["users"]
    assert f"{people['new_users']} new users signed up in the period" in out
    assert f"{people['first_seen_users']} users were first seen in it" in out
    assert "seen for the first time" not in out
    # One statistic per sentence, each named and with its unit.
    engagement = next(line for line in out.splitlines() if line.startswith("  engagement"))
    sentences = [s for s in re.split(r"(?<=\.) ", engagement.split(None, 1)[1]) if s]
    assert len(sentences) == 3
    assert "mean" in sentences[0] and "median" not in sentences[0] and sentences[0].count(" songs") == 2
    assert "median" in sentences[1] and "mean" not in sentences[1] and sentences[1].count(" minutes") == 2
    assert "last song" in sentences[1] and sentences[2] == "This says how paid users listen, not what paying " \
                                                          "makes them do."
    assert "before/after comparison of the same people, not an effect of upgrading" in out
    funnel = report.analyses["conversion_funnel"]
    assert funnel[-1][2] == 7  # of 8 submissions: user 15's re-upgrade four minutes after a downgrade is a reversal
    assert f"Of the {funnel[0][2]} free users who opened Home, {funnel[-1][2]} submitted an upgrade" in out


def test_the_planted_month_gives_the_answers_it_was_built_with(planted_report):
    read = planted_report.read
    assert [int(r["users"]) for r in read("conversion_funnel")] == planted.FUNNEL
    assert {(date.fromisoformat(r["cohort_week"]), int(r["week_number"])): (int(r["cohort_users"]),
                                                                            int(r["active_users"]))
            for r in read("weekly_cohort_retention")} == planted.RETENTION
    assert {r["page"]: (int(r["events"]), int(r["users"]), int(r["reversed"]))
            for r in read("churn_summary")} == planted.CHURN
    assert planted.REVERSER not in [int(r["user_id"]) for r in read("churned_users")]
    downgrader = next(r for r in read("churned_users") if int(r["user_id"]) == planted.DOWNGRADER["user_id"])
    assert {k: int(downgrader[k]) for k in planted.DOWNGRADER} == planted.DOWNGRADER
    population = read("population")[0]
    assert {k: int(population[k]) for k in planted.POPULATION} == planted.POPULATION
    assert (date.fromisoformat(population["first_day"]), date.fromisoformat(population["last_day"])) == \
        planted.PERIOD
    assert {(r["dimension"], r["value"]): (int(r["listeners"]), int(r["paid_listeners"]))
            for r in read("paid_share")} == planted.PAID_SHARE
    assert {date.fromisoformat(r["day"]): (int(r["upgrades"]), int(r["downgrades"]), int(r["reversed_changes"]))
            for r in read("level_changes")} == planted.LEVEL_CHANGES
    out = planted_report.stdout
    assert "Of the 8 free users who opened Home, 2 submitted an upgrade (25%)" in out
    assert "2 users submitted a downgrade and 1 user cancelled (Cancellation Confirmation) in this period; 1 " \
           "downgrade was undone within an hour (the user back on paid): a reversal, not churn" in out
    assert "2 upgrades to paid and 1 downgrade to free in the level history (users whose level changed between " \
           "two of their events); 2 changes undone within an hour count as neither." in out
    assert "3 of 18 listeners (17%) were on the paid level" in out
    # The one-listener metro (100% paid) is pooled, not ranked; Denver's 1 of 5 leads the metros of five or more.
    assert "of the 3 metros with at least 5 listeners, Denver, CO (1 of 5) has the highest paid share" in out
    assert planted.TINY_METRO not in (planted_report.folder / "paid_share.csv").read_text()
    # The skewed listener: the top five's share and the median listener, beside the mean.
    people = planted_report.figures["population"]
    assert people["plays_of_top_5_listeners"] >= planted.SKEWED_PLAYS
    assert f"the median listener played {people['median_plays_per_listener']:.0f} songs" in out
    # Weeks cut by the period's edge (Dec 31 - Jan 6 begins before Jan 1) are not quoted.
    assert "Of the 10 users who signed up in the week of Dec 24, 40% were active in week 4" in out


def test_no_churn_in_the_period_reads_none_rather_than_an_empty_chart(period_report, report, planted_report):
    page = (period_report.folder / "index.html").read_text(encoding="utf-8")
    assert "No downgrades (Submit Downgrade) and no cancellations (Cancellation Confirmation) in this period." in page
    assert "Listening in the two weeks before churning" not in page
    # The whole month's one downgrade (user 15) was undone four minutes later: said, not charted as churn.
    month = (report.folder / "index.html").read_text(encoding="utf-8")
    assert "1 user submitted a downgrade and none cancelled in this period; 1 downgrade was undone within an hour " \
           "(the user back on paid): a reversal, not churn; so nobody churned." in month
    assert "Listening in the two weeks before churning" not in month and report.read("churned_users") == []
    assert "Cancellation Confirmation: none in this period." in month
    # The planted month's downgrader churned for good: a chart.
    assert "Listening in the two weeks before churning" in (planted_report.folder / "index.html").read_text()


def test_a_period_without_events_is_an_error_that_says_which_days_have_some(real_warehouse, tmp_path):
    code, out, err = run_insights(real_warehouse, tmp_path / "out", "--since", "2019-01-01")
    assert code == 1 and out == ""
    assert err.strip() == "Error: no events from 2019-01-01 on; the warehouse has events from " \
                          "2018-11-01 to 2018-11-30"
    with pytest.raises(SystemExit) as raised, contextlib.redirect_stderr(io.StringIO()) as usage:
        insights.main(["--since", "2018-11-20", "--until", "2018-11-10"])
    assert raised.value.code == 2 and "--since 2018-11-20 is after --until 2018-11-10" in usage.getvalue()
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()) as usage:
        insights.main(["--since", "Nov 10"])
    assert "is not a day: write it as YYYY-MM-DD" in usage.getvalue()


def same_csvs(one: Path, other: Path) -> list[str]:
    """The names of the CSVs that differ between two report folders (none: the same report)."""
    names = sorted(p.name for p in one.glob("*.csv"))
    assert names == sorted(p.name for p in other.glob("*.csv")) and names
    return [n for n in names if (one / n).read_bytes() != (other / n).read_bytes()]


def test_bounds_far_outside_the_data_are_clipped_to_it_and_cost_what_the_data_costs(real_warehouse, report,
                                                                                     tmp_path):
    started = time.perf_counter()
    assert run_insights(real_warehouse, tmp_path / "default")[0] == 0
    default = time.perf_counter() - started
    started = time.perf_counter()
    code, out, err = run_insights(real_warehouse, tmp_path / "wide", "--since", "0001-01-01", "--until", "9999-12-31")
    seconds = time.perf_counter() - started
    assert code == 0, err
    assert same_csvs(tmp_path / "wide", report.folder) == []
    said = "--since 0001-01-01 and --until 9999-12-31 clipped to the days the warehouse has events on"
    assert said in out and said in (tmp_path / "wide" / "index.html").read_text(encoding="utf-8")
    assert "Nov 1 – Nov 30, 2018 (UTC), chosen with --since/--until" in out
    # Unclipped: an OverflowError, or 17 GB and minutes. Clipped: what the default period costs
    # (measured beside it, so a busy machine slows both).
    assert seconds < 2 * default + 10, f"a wide period took {seconds:.0f} s against {default:.0f} s"
    code, out, err = run_insights(real_warehouse, tmp_path / "late", "--until", "2100-12-31")
    assert code == 0 and "(--until 2100-12-31 clipped to the days the warehouse has events on)" in out


def test_a_run_that_reports_nothing_leaves_no_earlier_report_behind(real_warehouse, tmp_path):
    folder = tmp_path / "out"
    assert run_insights(real_warehouse, folder, "--since", "2018-11-20")[0] == 0
    assert (folder / "index.html").exists() and (folder / "population.csv").exists()
    code, _, err = run_insights(real_warehouse, folder, "--since", "2019-01-01")
    assert code == 1 and err.startswith("Error: no events from 2019-01-01 on")
    assert not (folder / "index.html").exists() and list(folder.glob("*.csv")) == []


def test_the_report_runs_under_the_analysts_read_only_role(real_warehouse, report, tmp_path):
    """The report reads the loader's bookkeeping only through the views made for analysts."""
    real_warehouse.execute("drop role if exists report_reader; "
                           "create role report_reader login in role sparkify_analyst")
    try:
        text = real_warehouse.config.read_text()
        config = tmp_path / "dwh.cfg"
        config.write_text(re.sub(r"(?m)^DB_USER = .*$", "DB_USER = report_reader", text))
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = insights.main(["--config", str(config), "--output", str(tmp_path / "out"), "--quiet"])
        assert code == 0, err.getvalue()
        assert same_csvs(tmp_path / "out", report.folder) == []
    finally:
        real_warehouse.execute("drop owned by report_reader; drop role report_reader")


def test_a_small_share_never_reads_zero_percent():
    from sparkify.insights import pct

    assert [pct(0, 10), pct(1, 10_000), pct(5, 1_000), pct(3, 10), pct(1, 0)] == \
        ["0%", "under 0.1%", "0.5%", "30%", "n/a"]


# --- the page in a browser -----------------------------------------------------------------------

def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


# Every axis of every chart: its label and its tick labels with their rendered boxes.
AXES_JS = """() => [...document.querySelectorAll('figure.chart svg')].map((svg, chart) => {
    const section = svg.closest('section').id, visible = svg.getBoundingClientRect().width > 0;
    return [...svg.querySelectorAll('g[id^="matplotlib.axis"]')].map(axis => {
        const ticks = [...axis.querySelectorAll('g[id^="xtick"] text, g[id^="ytick"] text')]
            .filter(t => t.textContent.trim() !== '')
            .map(t => { const b = t.getBoundingClientRect();
                        return {text: t.textContent.trim(), x: b.x, y: b.y, w: b.width, h: b.height}; });
        const label = [...axis.querySelectorAll('text')]
            .filter(t => !t.closest('g[id^="xtick"], g[id^="ytick"]')).map(t => t.textContent.trim()).join(' ');
        return {section, chart, label, ticks, visible};
    });
}).flat()"""
# An axis whose label names a count (of users, plays, …) rather than a mean, median or share.
COUNT_LABEL = re.compile(r"\b(users|listeners|songs played|plays|events|sessions|upgraders|visits)\b")
NOT_A_COUNT = re.compile(r"mean|median|share|%|minutes|per user|per session|per active day|per listener")
NUMBER = re.compile(r"^[−-]?[\d,]*\.?\d+$")  # a tick of a numeric axis (matplotlib writes − for minus)
WHOLE_NUMBER = re.compile(r"^\d[\d,]*$")


def overlapping(ticks: list[dict]) -> list[tuple[str, str]]:
    pairs = []
    for n, a in enumerate(ticks):
        for b in ticks[n + 1:]:
            if a["x"] < b["x"] + b["w"] - 0.5 and b["x"] < a["x"] + a["w"] - 0.5 and \
                    a["y"] < b["y"] + b["h"] - 0.5 and b["y"] < a["y"] + a["h"] - 0.5:
                pairs.append((a["text"], b["text"]))
    return pairs


@pytest.fixture(scope="module")
def browser():
    if chromium() is None:
        missing = "Debian's chromium is not installed (python3 tasks.py test installs it)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{missing}: under CI the page is always checked in a browser")
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium(), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        yield launched
        launched.close()


# Every visible text on the page as rendered: its size in CSS pixels (an SVG's text scaled
# with its chart), and for chart text whether its box lies inside its chart (not cut).
TEXT_JS = """() => {
    const out = [];
    for (const svg of document.querySelectorAll('figure.chart svg')) {
        const box = svg.getBoundingClientRect();
        if (!box.width) continue;                            // the other width's chart, hidden
        const scale = box.width / svg.viewBox.baseVal.width;
        for (const t of svg.querySelectorAll('text')) {
            if (!t.textContent.trim()) continue;
            const b = t.getBoundingClientRect();
            const size = parseFloat(getComputedStyle(t).fontSize) * scale;
            const cut = b.left < box.left - 1 || b.right > box.right + 1
                || b.top < box.top - 1 || b.bottom > box.bottom + 1;
            out.push({where: svg.closest('section').id, text: t.textContent.trim(), size, cut});
        }
    }
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) {
        const node = walker.currentNode, element = node.parentElement;
        if (!node.textContent.trim() || element.closest('svg') || !element.getClientRects().length) continue;
        out.push({where: 'page', text: node.textContent.trim().slice(0, 40),
                  size: parseFloat(getComputedStyle(element).fontSize), cut: false});
    }
    return out;
}"""


@pytest.mark.parametrize("width", [1280, 390])
def test_the_report_reads_well_in_a_browser(case, browser, tmp_path, width):
    """Offline and quiet; at a desktop's 1280 px and a phone's 390 px no section scrolls
    sideways, no text is under 10 px or cut by its chart's edge, and no tick labels overlap;
    a count's axis has whole numbers only; time axes span the period; coded values read as
    words; every section of the real month's report saved as a screenshot."""
    page_path = case.folder / "index.html"
    requests, problems = [], []
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(page_path.as_uri())
    widths = page.evaluate("""() => [document.documentElement.scrollWidth, window.innerWidth,
        [...document.querySelectorAll('section')].map(s => [s.id, s.scrollWidth, s.clientWidth])]""")
    axes = [a for a in page.evaluate(AXES_JS) if a["visible"]]
    texts = page.evaluate(TEXT_JS)
    text = page.inner_text("body")
    # What the previews show for coded columns: every cell of each, by its header.
    coded = page.evaluate("""() => Object.fromEntries(['weekday', 'in catalog', 'gender'].map(name => [name,
        [...document.querySelectorAll('table')].flatMap(table => {
            const column = [...table.querySelectorAll('th')].findIndex(th => th.textContent === name);
            return column < 0 ? [] : [...table.querySelectorAll('tbody tr')].map(tr => tr.children[column].textContent);
        })]))""")
    headers = page.evaluate("() => [...document.querySelectorAll('th, dl.pairs dt')].map(h => h.textContent)")
    saved = []
    if case.name == "real":
        shots = Path(SCREENSHOTS) / ("" if width == 1280 else "phone") if SCREENSHOTS else tmp_path
        shots.mkdir(parents=True, exist_ok=True)
        sections = page.locator("section")
        for n in range(sections.count()):
            path = shots / f"{n:02d}-{sections.nth(n).get_attribute('id')}.png"
            sections.nth(n).screenshot(path=str(path))
            saved.append(path)
    page.close()
    assert requests == [page_path.as_uri()], "the report fetched something besides itself"
    assert problems == []
    page_width, viewport, section_widths = widths
    assert page_width <= viewport
    assert [s for s in section_widths if s[1] > s[2]] == [], f"a section needs a sideways scroll at {width} px"
    assert len(section_widths) == 20
    assert all(p.stat().st_size > 5_000 for p in saved) and len(saved) == (20 if case.name == "real" else 0)
    small = [(t["where"], t["text"], round(t["size"], 1)) for t in texts if t["size"] < 10 - 1e-6]
    assert small == [], f"text under 10 px at {width} px"
    assert [(t["where"], t["text"]) for t in texts if t["cut"]] == [], f"text cut by its chart's edge at {width} px"
    assert [h for h in headers if "_" in h] == [], "column names read as words on the page"
    assert [(a["section"], a["label"], overlapping(a["ticks"])) for a in axes if overlapping(a["ticks"])] == []
    counts = [a for a in axes if COUNT_LABEL.search(a["label"]) and not NOT_A_COUNT.search(a["label"])
              and a["ticks"] and all(NUMBER.match(t["text"]) for t in a["ticks"])]
    assert len(counts) >= 10, [a["label"] for a in axes]
    fractional = [(a["section"], a["label"], [t["text"] for t in a["ticks"]]) for a in counts
                  if not all(WHOLE_NUMBER.match(t["text"]) for t in a["ticks"])]
    assert fractional == [], "a count's axis has a fraction or a negative number"
    first = case.figures["period"][0].date()
    for section in ("activity", "money"):  # a time axis starts on the period's first day
        ticks = [t["text"] for a in axes if a["section"] == section and a["label"].startswith("day")
                 for t in a["ticks"]]
        assert ticks and ticks[0] == f"{first:%b} {first.day}", (section, ticks)
    if width == 1280:  # on a phone each row is a card: the header row is hidden, the labels are in the cells
        assert coded["weekday"] and set(coded["weekday"]) <= {"Sunday", "Monday", "Tuesday", "Wednesday",
                                                              "Thursday", "Friday", "Saturday"}
        assert coded["in catalog"] and set(coded["in catalog"]) <= {"yes", "no"}
        assert coded["gender"] and set(coded["gender"]) <= {"women", "men", "unknown"}
    if case.name == "real":
        assert "Björk" in text and "BjÃ" not in text


def test_every_query_but_the_loads_covers_the_period():
    import insight_queries as iq

    for name, _, statement in iq.QUERIES:
        holds = iq.PERIOD_START in statement and iq.PERIOD_END in statement
        assert holds != (name in iq.EVERY_LOAD), name
    with pytest.raises(ValueError, match="does not hold the period"):
        iq.for_period("select count(*) from songplays", datetime(2018, 11, 1), None)
    with pytest.raises(TypeError):
        iq.for_period(iq.population, "2018-11-01'; drop table users; --", None)
    assert "cast('2018-11-10 00:00:00' as timestamp)" in iq.for_period(iq.population, datetime(2018, 11, 10), None)


def test_churners_whose_two_weeks_before_are_not_all_in_the_period_are_not_compared():
    """Days before the period (or the logs) are not observed: counting them as no plays
    would read as a fall in listening, so such churners are left out of the comparison."""
    from sparkify.insights import _churn
    from sparkify.reportmodel import Period, Table, observed_churners

    columns = ["user_id", "churned_at", "plays_days_8_to_14_before", "plays_days_1_to_7_before",
               "downgrade_visits_before"]
    users = Table("churned_users", "", columns, [(1, datetime(2018, 11, 5, 12), 0, 9, 1),
                                                 (2, datetime(2018, 11, 21, 12), 7, 3, 2)], 0)
    summary = Table("churn_summary", "", ["page", "events", "users"],
                    [("Cancellation Confirmation", 0, 0), ("Submit Downgrade", 2, 2)], 0)
    month = Period(date(2018, 11, 1), date(2018, 11, 30), logs_begin=date(2018, 11, 1))
    assert [r["user_id"] for r in observed_churners(users, month)[0]] == [2]
    assert _churn(summary, users, month) == (
        "2 users submitted a downgrade and none cancelled in this period; in the 7 days before churning, the 1 of them "
        "whose "
        "two weeks before lie in the period played 3 songs against 7 in the 7 days before that, after 2 visits to "
        "the Downgrade page.")
    late = Period(date(2018, 11, 10), date(2018, 11, 30), chosen=True, logs_begin=date(2018, 11, 1))
    assert observed_churners(users, late) == ([], 2)
    assert _churn(summary, users, late).endswith("none churned late enough for the two weeks before to lie in "
                                                 "the period.")
