"""The insights report: one self-contained HTML page with its charts inline as SVG.

The page loads nothing: no script, no font, no stylesheet from elsewhere, and a Content
Security Policy that forbids any fetch, so it opens offline from disk and shows the same
anywhere. Charts are drawn with matplotlib; each has labelled axes with units and a
one-sentence takeaway computed from the data.
"""

from __future__ import annotations

import html
import io
from datetime import datetime, timezone

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first

from .insights import WEEKDAYS, Findings, Table, day_label  # noqa: E402

plt.rcParams.update({
    "svg.fonttype": "none",          # text stays text: crisp, searchable, small
    "font.family": "DejaVu Sans",
    "font.size": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titleweight": "bold",
})
BLUE, ORANGE, GREY = "#1f77b4", "#ff7f0e", "#9e9e9e"


def _svg(fig) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _short(label: str, limit: int = 48) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _hbar(labels, values, xlabel, title, color=BLUE):
    labels = [_short(str(label)) for label in labels]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(labels) + 1.2))
    positions = range(len(labels))[::-1]
    ax.barh(list(positions), values, color=color)
    ax.set_yticks(list(positions), labels)
    ax.set_xlabel(xlabel)
    ax.set_title(title, loc="left")
    for y, v in zip(positions, values, strict=True):
        ax.text(v, y, f" {v:,}", va="center", fontsize=8)
    return _svg(fig)


def chart_activity(t: Table) -> str:
    days, plays, active, new = (t.column(c) for c in ("day", "plays", "active_users", "new_users"))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 4.6), sharex=True, height_ratios=[2, 1])
    top.bar(days, plays, color=BLUE)
    top.set_ylabel("songs played per day")
    top.set_title("Plays and active users per day (UTC)", loc="left")
    twin = top.twinx()
    twin.plot(days, active, color=ORANGE, marker="o", markersize=3)
    twin.set_ylabel("active users per day", color=ORANGE)
    twin.spines["top"].set_visible(False)
    bottom.bar(days, new, color=GREY)
    bottom.set_ylabel("new users")
    bottom.set_xlabel("day (UTC, 2018)")
    bottom.tick_params(axis="x", rotation=45)
    bottom.set_xticks(days[::3], [day_label(d) for d in days[::3]])
    return _svg(fig)


def chart_hours(t: Table) -> str:
    grid = [[0] * 24 for _ in range(7)]
    for weekday, hour, plays in t.rows:
        grid[weekday][hour] = plays
    fig, ax = plt.subplots(figsize=(8, 3.2))
    image = ax.imshow(grid, aspect="auto", cmap="Blues")
    ax.set_yticks(range(7), WEEKDAYS)
    ax.set_xticks(range(0, 24, 2), [f"{h}:00" for h in range(0, 24, 2)], rotation=45)
    ax.set_xlabel("hour of day (UTC)")
    ax.set_title("Plays by weekday and hour (UTC)", loc="left")
    fig.colorbar(image, ax=ax, label="songs played")
    return _svg(fig)


def chart_songs(t: Table) -> str:
    labels = [f"{r['song_title']} — {r['artist_name']}" + ("" if r["in_catalog"] else " *") for r in t.records()]
    return _hbar(labels, t.column("plays"), "plays (all plays; * = not in the catalog)", "Top 10 songs")


def chart_artists(t: Table) -> str:
    return _hbar(t.column("artist_name"), t.column("plays"), "plays", "Top 10 artists")


def chart_levels(t: Table) -> str:
    levels, users, plays = t.column("level"), t.column("users"), t.column("plays")
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 2.8))
    left.bar(levels, users, color=[GREY, BLUE][: len(levels)])
    left.set_ylabel("listeners (users with plays)")
    left.set_title("Listeners by level", loc="left")
    right.bar(levels, plays, color=[GREY, BLUE][: len(levels)])
    right.set_ylabel("songs played")
    right.set_title("Plays by level", loc="left")
    for ax in (left, right):
        ax.set_xlabel("subscription level at the time of the play")
    return _svg(fig)


def chart_gender(t: Table) -> str:
    fig, ax = plt.subplots(figsize=(5, 2.6))
    ax.bar(t.column("gender"), t.column("plays"), color=BLUE)
    ax.set_ylabel("songs played")
    ax.set_xlabel("gender (as registered)")
    ax.set_title("Plays by gender", loc="left")
    return _svg(fig)


def chart_locations(t: Table) -> str:
    return _hbar(t.column("location"), t.column("plays"), "plays", "Top 10 locations")


def chart_platforms(t: Table) -> str:
    groups = ["browser", "operating system", "device"]
    fig, axes = plt.subplots(1, 3, figsize=(9, 2.8))
    for ax, group in zip(axes, groups, strict=True):
        rows = [r for r in t.records() if r["dimension"] == group]
        ax.bar([r["value"] for r in rows], [r["plays"] for r in rows], color=BLUE)
        ax.set_title(group.capitalize(), loc="left")
        ax.set_ylabel("songs played")
        ax.tick_params(axis="x", rotation=45)
    return _svg(fig)


def chart_engagement(t: Table) -> str:
    levels = t.column("level")
    fig, axes = plt.subplots(1, 3, figsize=(9, 2.8))
    for ax, column, label in zip(axes, ("sessions_per_user", "songs_per_session", "median_session_minutes"),
                                 ("sessions per user", "songs per session (mean)", "session length, minutes (median)"),
                                 strict=True):
        ax.bar(levels, t.column(column), color=[GREY, BLUE][: len(levels)])
        ax.set_ylabel(label)
        ax.set_xlabel("level the session started on")
    axes[0].set_title("Engagement by level", loc="left")
    return _svg(fig)


def chart_changes(changes: Table, around: Table) -> str:
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 2.8))
    days = changes.column("day")
    left.bar(days, changes.column("upgrades"), color=BLUE, label="upgrades to paid")
    left.bar(days, [-d for d in changes.column("downgrades")], color=ORANGE, label="downgrades to free")
    left.set_ylabel("users changing level per day")
    left.set_xlabel("day (UTC)")
    left.set_xticks(days, [day_label(d) for d in days], rotation=45)
    left.legend(frameon=False, fontsize=8)
    left.set_title("Level changes", loc="left")
    right.bar(around.column("period"), around.column("plays_per_active_day"), color=[GREY, BLUE])
    right.set_ylabel("songs per active day")
    right.set_xlabel("upgraders' plays")
    right.set_title("Listening around an upgrade", loc="left")
    return _svg(fig)


def _table(t: Table, limit: int = 12) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in t.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
                   for row in t.rows[:limit])
    more = f"<p class=more>{len(t.rows) - limit} more rows in the CSV.</p>" if len(t.rows) > limit else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


STYLE = """
body{font-family:"DejaVu Sans",Arial,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#1f3b57;color:#fff;padding:24px 40px}header h1{margin:0 0 6px}header p{margin:0;opacity:.85}
.kpis{display:flex;flex-wrap:wrap;gap:12px;padding:16px 40px}
.kpi{background:#fff;border-radius:8px;padding:12px 18px;box-shadow:0 1px 3px #0002;min-width:150px}
.kpi b{display:block;font-size:24px}
section{background:#fff;margin:16px 40px;padding:16px 24px;border-radius:8px;box-shadow:0 1px 3px #0002;
overflow-x:auto}
h2{margin:4px 0 8px;color:#1f3b57}.takeaway{font-size:15px;font-weight:bold;margin:8px 0 12px}
figure{margin:8px 0}figure svg{max-width:100%;height:auto}
table{border-collapse:collapse;font-size:12px;margin:8px 0}th,td{border-bottom:1px solid #ddd;padding:3px 8px;
text-align:left}th{background:#f0f3f6}.more,.csv{font-size:12px;color:#555}
"""


def render(tables: dict[str, Table], found: Findings, target: str) -> str:
    health = tables["load_health"].records()[0]
    levels = {r["level"]: r for r in tables["level_share"].records()}
    plays = health["plays"] or 0
    users = sum(r["users"] for r in tables["gender_share"].records())
    kpis = [
        ("songs played", f"{plays:,}"),
        ("listeners", f"{users:,}"),
        ("plays by paid users", f"{100.0 * levels['paid']['plays'] / plays:.0f}%" if "paid" in levels and plays
         else "n/a"),
        ("plays matched to the catalog", f"{100.0 * health['plays_matched'] / plays:.1f}%" if plays else "n/a"),
        ("latest event (UTC)", health["latest_event"].strftime("%Y-%m-%d %H:%M") if health["latest_event"] else "-"),
    ]
    sections = [
        ("Activity over time", found.activity, chart_activity(tables["daily_activity"]), ["daily_activity"]),
        ("When people listen", found.hours, chart_hours(tables["listening_hours"]), ["listening_hours"]),
        ("What they play: songs", found.songs, chart_songs(tables["top_songs"]), ["top_songs", "catalog_coverage"]),
        ("What they play: artists", found.artists, chart_artists(tables["top_artists"]), ["top_artists"]),
        ("Who listens: free and paid", found.levels, chart_levels(tables["level_share"]), ["level_share"]),
        ("Who listens: gender", found.gender, chart_gender(tables["gender_share"]), ["gender_share"]),
        ("Who listens: where", found.locations, chart_locations(tables["top_locations"]), ["top_locations"]),
        ("Who listens: platforms", found.platforms, chart_platforms(tables["platforms"]), ["platforms"]),
        ("Engagement", found.engagement, chart_engagement(tables["engagement"]), ["engagement"]),
        ("Money: upgrades and downgrades", f"{found.changes} {found.upgrade}",
         chart_changes(tables["level_changes"], tables["upgrade_engagement"]), ["level_changes", "upgrade_engagement"]),
        ("Data health", found.health, "", ["load_health", "load_error_reasons"]),
    ]
    parts = []
    for title, takeaway, svg, names in sections:
        figure = f"<figure class=chart>{svg}</figure>" if svg else ""
        data = "".join(f"<p class=csv>{html.escape(n)}.csv</p>{_table(tables[n])}" for n in names)
        parts.append(f"<section><h2>{html.escape(title)}</h2><p class=takeaway>{html.escape(takeaway)}</p>"
                     f"{figure}{data}</section>")
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    kpi_html = "".join(f"<div class=kpi><b>{html.escape(v)}</b>{html.escape(k)}</div>" for k, v in kpis)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sparkify listening insights</title><style>{STYLE}</style></head>
<body><header><h1>Sparkify listening insights</h1>
<p>From {html.escape(target)} · generated {generated} · all times UTC · every figure from a SQL query in
insight_queries.py, and each table is also a CSV beside this page.</p></header>
<div class=kpis>{kpi_html}</div>
{''.join(parts)}
</body></html>
"""
