"""insights.py on the real dataset: every reported figure against the plain-Python oracle,
and the report as a person sees it, in headless Chromium."""

from __future__ import annotations

import csv
import os
import shutil
from datetime import date
from pathlib import Path

import pytest
from conftest import DATA, fresh_database, load, run_main
from oracle import insight_figures

SCREENSHOT = os.environ.get("SPARKIFY_REPORT_SCREENSHOT")  # where to keep the screenshot, if anywhere


@pytest.fixture(scope="module")
def oracle():
    return insight_figures(DATA)


@pytest.fixture(scope="module")
def report(server, tmp_path_factory):
    """Both scripts then insights.py, on a fresh database; yields (stdout, output folder)."""
    folder = tmp_path_factory.mktemp("insights")
    with fresh_database(server, folder, log_data=str(DATA / "log_data"),
                        song_data=str(DATA / "song_data")) as warehouse:
        load(warehouse)
        result = run_main("insights.py", "--config", str(warehouse.config), "--output", str(folder / "out"))
        yield result.stdout, folder / "out"


def read(folder: Path, name: str) -> list[dict]:
    with open(folder / f"{name}.csv", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_every_table_is_a_csv_and_the_summary_names_the_report(report):
    out, folder = report
    names = sorted(p.stem for p in folder.glob("*.csv"))
    assert names == sorted(["daily_activity", "listening_hours", "top_songs", "top_artists", "catalog_coverage",
                            "level_share", "gender_share", "top_locations", "platforms", "engagement",
                            "level_changes", "upgrade_engagement", "load_health", "load_error_reasons"])
    assert f"Report: {folder / 'index.html'}" in out
    for label in ("activity", "hours", "songs", "artists", "free/paid", "platforms", "engagement", "money",
                  "data health"):
        assert f"  {label} " in out


def test_activity_over_time(report, oracle):
    rows = read(report[1], "daily_activity")
    got = {date.fromisoformat(r["day"]): (int(r["plays"]), int(r["active_users"]), int(r["new_users"])) for r in rows}
    assert got == oracle["daily_activity"]


def test_listening_hours(report, oracle):
    rows = read(report[1], "listening_hours")
    assert {(int(r["weekday"]), int(r["hour"])): int(r["plays"]) for r in rows} == oracle["listening_hours"]


def test_top_songs_and_artists_count_every_play(report, oracle):
    songs = read(report[1], "top_songs")
    expected_counts = sorted((v[0] for v in oracle["songs"].values()), reverse=True)[:10]
    assert [int(r["plays"]) for r in songs] == expected_counts
    for r in songs:
        assert oracle["songs"][(r["song_title"], r["artist_name"])] == (int(r["plays"]), int(r["listeners"]),
                                                                         int(r["in_catalog"]))
    artists = read(report[1], "top_artists")
    assert [int(r["plays"]) for r in artists] == sorted((v[0] for v in oracle["artists"].values()), reverse=True)[:10]
    for r in artists:
        assert oracle["artists"][r["artist_name"]] == (int(r["plays"]), int(r["listeners"]))
    # Names display correctly: the repaired spelling, never the double-encoded one.
    assert any(r["artist_name"] == "Björk" for r in songs)
    coverage = read(report[1], "catalog_coverage")[0]
    plays, matched, distinct = oracle["coverage"]
    assert (int(coverage["plays"]), int(coverage["plays_matched"]), int(coverage["songs_played"])) == \
        (plays, matched, distinct)


def test_who_listens(report, oracle):
    folder = report[1]
    assert {r["level"]: (int(r["users"]), int(r["plays"])) for r in read(folder, "level_share")} == oracle["levels"]
    assert {r["gender"]: (int(r["users"]), int(r["plays"])) for r in read(folder, "gender_share")} == oracle["gender"]
    locations = read(folder, "top_locations")
    assert [int(r["plays"]) for r in locations] == sorted((v[1] for v in oracle["locations"].values()),
                                                          reverse=True)[:10]
    for r in locations:
        assert oracle["locations"][r["location"]] == (int(r["users"]), int(r["plays"]))
    platforms = {(r["dimension"], r["value"]): int(r["plays"]) for r in read(folder, "platforms")}
    assert platforms == oracle["platforms"]


def test_engagement(report, oracle):
    for r in read(report[1], "engagement"):
        users, sessions, per_user, songs, mean_minutes, median_minutes = oracle["engagement"][r["level"]]
        assert (int(r["users"]), int(r["sessions"])) == (users, sessions)
        assert float(r["sessions_per_user"]) == pytest.approx(per_user, abs=0.006)
        assert float(r["songs_per_session"]) == pytest.approx(songs, abs=0.006)
        assert float(r["avg_session_minutes"]) == pytest.approx(mean_minutes, abs=0.051)
        assert float(r["median_session_minutes"]) == pytest.approx(median_minutes, abs=0.051)


def test_money(report, oracle):
    changes = {date.fromisoformat(r["day"]): (int(r["upgrades"]), int(r["downgrades"]))
               for r in read(report[1], "level_changes")}
    assert changes == oracle["level_changes"]
    for r in read(report[1], "upgrade_engagement"):
        users, plays, days, per_day = oracle["upgrade_engagement"][r["period"]]
        assert (int(r["users"]), int(r["plays"]), int(r["active_days"])) == (users, plays, days)
        assert float(r["plays_per_active_day"]) == pytest.approx(per_day, abs=0.006)


def test_data_health(report, oracle):
    health = read(report[1], "load_health")[0]
    assert health["latest_event"] == oracle["latest_event"].isoformat(sep=" ")
    assert int(health["events"]) == oracle["events"]
    assert int(health["source_files"]) == 30 + 14896
    assert int(health["records_rejected"]) == 0 and int(health["batches_published"]) == 1


def test_takeaways_state_figures_from_the_data(report, oracle):
    out = report[0]
    paid_users, paid_plays = oracle["levels"]["paid"]
    free_users, free_plays = oracle["levels"]["free"]
    ratio = (paid_plays / paid_users) / (free_plays / free_users)
    assert f"({ratio:.1f}×)" in out
    ups = sum(v[0] for v in oracle["level_changes"].values())
    assert f"{ups:,} upgrades to paid" in out


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(chromium() is None, reason="Debian's chromium is not installed (python3 tasks.py test installs it)")
def test_the_report_renders_offline_in_a_browser(report, tmp_path):
    from playwright.sync_api import sync_playwright

    page_path = report[1] / "index.html"
    requests, problems = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("request", lambda r: requests.append(r.url))
        page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(page_path.as_uri())
        charts = page.locator("figure.chart svg")
        boxes = [charts.nth(i).bounding_box() for i in range(charts.count())]
        text = page.inner_text("body")
        shot = Path(SCREENSHOT) if SCREENSHOT else tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=False)
        browser.close()
    assert requests == [page_path.as_uri()], "the report fetched something besides itself"
    assert problems == []
    assert len(boxes) == 10
    assert all(box and box["width"] > 200 and box["height"] > 100 for box in boxes), boxes
    assert "Björk" in text and "BjÃ" not in text
    assert shot.stat().st_size > 10_000



def test_a_small_share_never_reads_zero_percent():
    from sparkify.insights import pct

    assert [pct(0, 10), pct(1, 10_000), pct(5, 1_000), pct(3, 10), pct(1, 0)] == \
        ["0%", "under 0.1%", "0.5%", "30%", "n/a"]
