"""The insights report: one self-contained HTML page with its charts inline as SVG.

The page loads nothing: no script, no font, no stylesheet from elsewhere, and a Content
Security Policy that forbids any fetch, so it opens offline from disk and shows the same
anywhere. Charts are drawn with matplotlib; each has labelled axes with units and a
takeaway computed from the data. Axes that count (users, plays, events) have integer
ticks and start at zero; a time axis spans the whole period; no tick label is rotated, so
none can overlap its neighbour; and every section fits 1280 px without a sideways scroll
(wide one-row tables are shown as label/value pairs, an empty table as "none").
"""

from __future__ import annotations

import functools
import html
import io
import math
import multiprocessing
import re
import textwrap
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import date, datetime, timedelta, timezone

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first
from matplotlib.ticker import MaxNLocator, PercentFormatter  # noqa: E402

from insight_queries import MIN_GROUP  # noqa: E402

from .parallelrows import usable_cores  # noqa: E402
from .reportmodel import WEEKDAYS, Findings, Period, Table, day_label, gender_label, observed_churners, pct, whole_week  # noqa: E402

plt.rcParams.update({
    "svg.fonttype": "none",          # text stays text: crisp, searchable, small
    "font.family": "DejaVu Sans",
    "font.size": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titleweight": "bold",
})
BLUE, ORANGE, GREY, GREEN, PURPLE = "#1f77b4", "#ff7f0e", "#9e9e9e", "#2ca02c", "#9467bd"
# Shares are shown as percentages wherever they appear in a preview.
SHARE_COLUMNS = {"share_of_first", "share_of_previous", "retention", "paid_share"}


# Every chart is drawn twice: wide for screens of 700 px and more, and narrow (NARROW_INCHES,
# panels stacked, labels wrapped shorter) for phones, where the wide one scaled down would
# shrink its text below 10 px. The page shows one of the two by a CSS media query.
NARROW_INCHES = 3.6
_layout = {"narrow": False}


NARROW_POINTS = 250  # the widest a narrow chart may be: 333 CSS px, inside a 390 px screen's section


def _svg(fig) -> str:
    """The figure as SVG, cut to what it draws. A narrow chart whose labels make it wider
    than NARROW_POINTS is drawn again that much narrower, so the page never scales it down
    (which would shrink its text below 10 px)."""
    if _layout["narrow"]:
        for ax in fig.axes:  # a phone's title on two lines rather than wider than the screen
            if ax.get_title(loc="left"):
                ax.set_title(_wrap(ax.get_title(loc="left"), 30), loc="left")
    text = _save(fig)
    width = float(re.search(r'<svg[^>]* width="([\d.]+)pt"', text).group(1))  # type: ignore[union-attr]
    if _layout["narrow"] and width > NARROW_POINTS:
        inches, height = fig.get_size_inches()
        fig.set_size_inches(max(2.0, inches - (width - NARROW_POINTS + 4) / 72), height)
        text = _save(fig)
    plt.close(fig)
    return text[text.index("<svg"):]


def _save(fig) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    return buffer.getvalue()


def two_widths(draw):
    """A chart function drawing its chart wide and narrow, each in its own box (nothing when
    it draws nothing)."""
    @functools.wraps(draw)
    def both(*args, **kwargs) -> str:
        wide = draw(*args, **kwargs)
        if not wide:
            return ""
        _layout["narrow"] = True
        try:
            narrow = draw(*args, **kwargs)
        finally:
            _layout["narrow"] = False
        return f"<div class=wide>{wide}</div><div class=narrow>{narrow}</div>"
    return both


def _width(inches: float) -> float:
    return min(inches, NARROW_INCHES) if _layout["narrow"] else inches


def _panels(count: int, width: float, height: float, **kwargs):
    """count panels side by side (wide) or stacked (narrow)."""
    if _layout["narrow"]:
        ratios = kwargs.pop("width_ratios", None)
        return plt.subplots(count, 1, figsize=(NARROW_INCHES, height * count * 0.9),
                            **({"height_ratios": ratios} if ratios else {}), **kwargs)
    return plt.subplots(1, count, figsize=(width, height), **kwargs)


def _wrap(label: str, limit: int = 40) -> str:
    """A long label on two or more lines, broken between words, never inside one."""
    limit = min(limit, 24) if _layout["narrow"] else limit
    return textwrap.fill(label, limit, break_long_words=False)


def _counts(axis) -> None:
    """A count's axis: whole numbers only, from zero."""
    axis.set_major_locator(MaxNLocator(nbins=4 if _layout["narrow"] else 5, integer=True))
    if axis is axis.axes.yaxis:
        axis.axes.set_ylim(bottom=0)
    else:
        axis.axes.set_xlim(left=0)


def _day_ticks(ax, days: list[date]) -> None:
    """Day labels along the x axis at positions 0 … n-1, at most about ten (four on a
    phone), never rotated."""
    step = max(1, math.ceil(len(days) / (4 if _layout["narrow"] else 10)))
    ax.set_xticks(range(0, len(days), step), [day_label(d) for d in days[::step]])
    ax.set_xlim(-0.6, len(days) - 0.4)


def _bar_values(ax, bars, values, fmt="{:,}") -> None:
    """Each bar's value beside it, so a bar too short to see still says what it is."""
    ax.bar_label(bars, [fmt.format(v) if v is not None and not (isinstance(v, float) and math.isnan(v)) else ""
                        for v in values], padding=2, fontsize=9)


def _rows_height(labels: list[str]) -> float:
    """Inches for one row per label, each as tall as the longest label (its lines of 10 pt
    text), so wrapped labels of neighbouring rows never overlap."""
    lines = max([label.count("\n") + 1 for label in labels] or [1])
    return len(labels) * (0.17 * lines + 0.14)


def _hbar(labels, values, xlabel, title, color=BLUE, notes=None):
    labels = [_wrap(str(label)) for label in labels]
    fig, ax = plt.subplots(figsize=(_width(7), _rows_height(labels) + 1.2))
    positions = range(len(labels))[::-1]
    ax.barh(list(positions), values, color=color)
    ax.set_yticks(list(positions), labels)
    ax.set_xlabel(_wrap(xlabel, 60))
    ax.set_title(title, loc="left")
    _counts(ax.xaxis)
    ax.set_xlim(right=max(values or [1]) * (1.6 if _layout["narrow"] and notes else 1.15))
    for y, v, note in zip(positions, values, notes or [""] * len(labels), strict=True):
        text = f" {v:,}{note}"
        ax.text(v, y, _wrap(text, 30) if _layout["narrow"] else text, va="center", fontsize=9)
    return _svg(fig)


@two_widths
def chart_activity(t: Table, period: Period) -> str:
    """Three panels, one axis each: plays, active users, and sign-ups beside first-seen users."""
    days = period.days()
    rows = {r["day"]: r for r in t.records()}
    column = {name: [rows[d][name] if d in rows else 0 for d in days]
              for name in ("plays", "active_users", "new_users", "first_seen_users")}
    positions = list(range(len(days)))
    fig, (top, middle, bottom) = plt.subplots(3, 1, figsize=(_width(8), 6.4), sharex=True,
                                              height_ratios=[2, 1.4, 1])
    top.bar(positions, column["plays"], color=BLUE)
    top.set_ylabel("songs played")
    top.set_title("Per day (UTC): plays, active users, sign-ups", loc="left")
    _counts(top.yaxis)
    middle.plot(positions, column["active_users"], color=ORANGE, marker="o", markersize=3)
    middle.set_ylabel("active users")
    _counts(middle.yaxis)
    bottom.bar([p - 0.2 for p in positions], column["new_users"], width=0.4, color=GREEN,
               label="new users (signed up that day)")
    bottom.bar([p + 0.2 for p in positions], column["first_seen_users"], width=0.4, color=GREY,
               label="users first seen that day")
    bottom.set_ylabel("users")
    bottom.set_xlabel(_wrap(f"day (UTC, {period.label()})", 60))
    if _layout["narrow"]:  # below the chart, never on the bars
        bottom.legend(frameon=False, fontsize=9, loc="upper left", bbox_to_anchor=(0, -1.0))
    else:
        bottom.legend(frameon=False, fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1))
    _counts(bottom.yaxis)
    _day_ticks(bottom, days)
    return _svg(fig)


@two_widths
def chart_trend(t: Table, period: Period) -> str:
    """Plays and listeners per week, one axis each; a partial week is drawn pale and its
    label starred, so its low bar does not read as a drop."""
    weeks = t.records()
    if not weeks:
        return ""
    whole = [whole_week(w["week_start"], period) for w in weeks]
    shown = (lambda d: f"{d:%b}\n{d.day}") if _layout["narrow"] else day_label  # a phone: month over day
    labels = [shown(w["week_start"]) + ("" if full else "*") for w, full in zip(weeks, whole, strict=True)]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(_width(8), 4.4), sharex=True)
    for ax, column, color, label in ((top, "plays", BLUE, "songs played"), (bottom, "listeners", GREEN, "listeners")):
        values = [w[column] for w in weeks]
        bars = ax.bar(range(len(weeks)), values, color=[color if full else "#cccccc" for full in whole])
        _bar_values(ax, bars, values)
        ax.set_ylabel(label)
        _counts(ax.yaxis)
        ax.margins(y=0.25)
    top.set_title("Per week (from Monday, UTC); * = a partial week", loc="left", pad=16)
    bottom.set_xticks(range(len(weeks)), labels)
    bottom.set_xlabel("week of")
    return _svg(fig)


@two_widths
def chart_hours(t: Table) -> str:
    """Plays per occurrence of the weekday: a weekday the period holds five times is not
    drawn as busier than one it holds four times for that reason alone."""
    grid = [[0.0] * 24 for _ in range(7)]
    for r in t.records():
        grid[r["weekday"]][r["hour"]] = r["plays_per_weekday"]
    fig, ax = plt.subplots(figsize=(_width(8), 3.4))
    image = ax.imshow(grid, aspect="auto", cmap="Blues", vmin=0)
    ax.set_yticks(range(7), [d[:3] for d in WEEKDAYS] if _layout["narrow"] else WEEKDAYS)
    step = 6 if _layout["narrow"] else 3
    ax.set_xticks(range(0, 24, step), [f"{h}:00" for h in range(0, 24, step)])
    ax.set_xlabel("hour of day (UTC)")
    ax.set_title(_wrap("Songs played per weekday occurrence, by hour (UTC)", 60), loc="left")
    bar = fig.colorbar(image, ax=ax, orientation="horizontal" if _layout["narrow"] else "vertical", pad=0.25
                       if _layout["narrow"] else 0.05)
    bar.set_label(_wrap("mean songs played on one such day", 60))
    return _svg(fig)


@two_widths
def chart_funnel(t: Table) -> str:
    steps = t.records()
    if not steps or not steps[0]["users"]:
        return ""
    names = {"Home": "Home", "NextSong": "played a song", "Upgrade": "Upgrade page",
             "Submit Upgrade": "Submit Upgrade"}
    labels = [f"{s['step']}. {names.get(s['page'], s['page'])}" for s in steps]
    notes = []
    for s in steps:
        note = f"  ({pct(s['users'], steps[0]['users'])} of step 1"
        if s["share_of_previous"] is not None and s["step"] > 1:
            note += f"; {pct(s['users'], steps[s['step'] - 2]['users'])} of step {s['step'] - 1}"
        notes.append(note + ")")
    return _hbar(labels, [s["users"] for s in steps], "free users reaching the step",
                 "Conversion funnel of free users", color=GREEN, notes=notes)


@two_widths
def chart_retention(t: Table, period: Period) -> str:
    rows = t.records()
    if not rows:
        return ""
    cohorts = sorted({r["cohort_week"] for r in rows})
    sizes = {r["cohort_week"]: r["cohort_users"] for r in rows}
    weeks = max(r["week_number"] for r in rows) + 1
    grid = [[math.nan] * weeks for _ in cohorts]
    partial = set()
    for r in rows:
        grid[cohorts.index(r["cohort_week"])][r["week_number"]] = r["retention"]
        if not whole_week(r["cohort_week"] + timedelta(weeks=r["week_number"]), period):
            partial.add((cohorts.index(r["cohort_week"]), r["week_number"]))
    fig, ax = plt.subplots(figsize=(_width(8), 0.5 * len(cohorts) + 1.9))
    image = ax.imshow(grid, aspect="auto", cmap="Greens", vmin=0, vmax=1)
    for y, line in enumerate(grid):
        for x, share in enumerate(line):
            if not math.isnan(share):
                mark = "*" if (y, x) in partial else ""
                ax.text(x, y, f"{share:.0%}{mark}", ha="center", va="center", fontsize=9,
                        color="white" if share > 0.6 else "black")
    label = "{d}\n({n:,})" if _layout["narrow"] else "week of {d} ({n:,} users)"
    ax.set_yticks(range(len(cohorts)), [label.format(d=day_label(c), n=sizes[c]) for c in cohorts])
    ax.set_xticks(range(weeks), [str(w) for w in range(weeks)])
    ax.set_xlabel("weeks since the sign-up week\n(* = a partial week)" if _layout["narrow"] else
                  _wrap("weeks since the sign-up week (0 = the week of signing up; blank = not observed; "
                        "* = a week only partly in the data or the period)", 70))
    ax.set_title(_wrap("Share of each sign-up week's users active in each later week", 60), loc="left")
    ax.spines[["left", "bottom"]].set_visible(False)
    bar = fig.colorbar(image, ax=ax, format=PercentFormatter(1.0),
                       orientation="horizontal" if _layout["narrow"] else "vertical",
                       pad=0.45 if _layout["narrow"] else 0.05)
    bar.set_label("share of the cohort active")
    return _svg(fig)


@two_widths
def chart_churn(users: Table, period: Period, limit: int = 20) -> str:
    """The plays of the churners whose two weeks before lie in the period (the first 20)."""
    churners = observed_churners(users, period)[0][:limit]
    if not churners:
        return ""
    positions = list(range(len(churners)))
    fig, ax = plt.subplots(figsize=(_width(min(8, 2.5 + 0.6 * len(churners))), 3))
    earlier = ax.bar([p - 0.2 for p in positions], [c["plays_days_8_to_14_before"] for c in churners], width=0.4,
                     color=GREY, label="days 8–14 before")
    later = ax.bar([p + 0.2 for p in positions], [c["plays_days_1_to_7_before"] for c in churners], width=0.4,
                   color=ORANGE, label="days 1–7 before")
    _bar_values(ax, earlier, [c["plays_days_8_to_14_before"] for c in churners])
    _bar_values(ax, later, [c["plays_days_1_to_7_before"] for c in churners])
    ax.set_xticks(positions, [str(c["user_id"]) for c in churners])
    ax.set_xlim(-0.6, len(churners) - 0.4)
    ax.set_xlabel("user who downgraded or cancelled (user id)")
    ax.set_ylabel("songs played")
    ax.set_title("Listening in the two weeks before churning", loc="left")
    ax.legend(frameon=False, fontsize=9, loc="upper left", bbox_to_anchor=(0, -0.3) if _layout["narrow"] else (1, 1))
    _counts(ax.yaxis)
    return _svg(fig)


@two_widths
def chart_churn_risk(t: Table, limit: int = 20) -> str:
    """The users at risk, most active first (the first 20): their plays in the period's
    last 7 days, each bar saying its level."""
    users = t.records()[:limit]
    if not users:
        return ""
    return _hbar([f"user {u['user_id']}" for u in users], [u["plays_last_7_days"] for u in users],
                 "songs played in the period's last 7 days", "Users who visited Downgrade or Cancel without submitting",
                 color=ORANGE, notes=[f" ({u['level']})" for u in users])


@two_widths
def chart_path(t: Table) -> str:
    """While free, per active day: songs, other pages and sessions, upgraders beside those
    who stayed free; one panel per measure, so each has its own axis."""
    rows = t.records()
    if not rows:
        return ""
    measures = [("plays_per_active_day", "songs"), ("pages_per_active_day", "other pages"),
                ("sessions_per_active_day", "sessions")]
    narrow = _layout["narrow"]
    fig, axes = plt.subplots(len(measures) if narrow else 1, 1 if narrow else len(measures),
                             figsize=(_width(8), 7.0 if narrow else 2.6))
    for ax, (column, label) in zip(axes, measures, strict=True):
        values = [r[column] for r in rows]
        bars = ax.bar([r["free_users"] for r in rows], values, color=[BLUE if r["free_users"] == "upgraded" else GREY
                                                                      for r in rows])
        ax.bar_label(bars, [f"{v:.2f}" for v in values], fontsize=9)
        ax.set_title(f"{label} per active day", loc="left", fontsize=10)
        ax.margins(y=0.25)
    fig.tight_layout(h_pad=3.5 if narrow else None)
    return _svg(fig)


@two_widths
def chart_growth(t: Table) -> str:
    """Paid listeners at the start, the moves each way, and at the end: four bars, none
    negative, each with its value."""
    row = t.records()[0]
    if not row["listeners"]:
        return ""
    labels = ["paid at\nthe start", "moved\nto paid", "moved\nto free", "paid at\nthe end"]
    values = [row["paid_at_start"], row["moved_to_paid"], row["moved_to_free"], row["paid_at_end"]]
    fig, ax = plt.subplots(figsize=(_width(6), 2.8))
    _bar_values(ax, ax.bar(labels, values, color=[GREY, BLUE, ORANGE, BLUE]), values)
    ax.set_ylabel("listeners")
    ax.set_title("Net paid growth over the period", loc="left")
    _counts(ax.yaxis)
    ax.margins(y=0.2)
    return _svg(fig)


PAID_GROUPS = [("gender", "Gender", BLUE), ("location", "Metro", GREEN), ("browser", "Browser", ORANGE),
               ("operating system", "OS", PURPLE), ("device", "Device", GREY)]


@two_widths
def chart_paying(t: Table) -> str:
    rows = t.records()
    overall = next((r for r in rows if r["dimension"] == "all"), None)
    if not overall or not overall["listeners"]:
        return ""
    labels, shares, colors, notes = [], [], [], []
    for dimension, heading, color in PAID_GROUPS:
        for r in (r for r in rows if r["dimension"] == dimension):
            value = gender_label(r["value"]) if dimension == "gender" else r["value"]
            labels.append(_wrap(f"{heading}: {value}"))
            shares.append(r["paid_share"])
            colors.append(color)
            notes.append(f" {pct(r['paid_listeners'], r['listeners'])} of {r['listeners']:,}")
    fig, ax = plt.subplots(figsize=(_width(8), _rows_height(labels) + 1.6))
    positions = list(range(len(labels)))[::-1]
    ax.barh(positions, shares, color=colors)
    for y, share, note in zip(positions, shares, notes, strict=True):
        ax.text(share, y, note, va="center", fontsize=9)
    ax.axvline(overall["paid_share"], color="#444", linestyle="--", linewidth=1)
    everyone = pct(overall["paid_listeners"], overall["listeners"])
    ax.text(overall["paid_share"], len(labels) - 0.3, f" all listeners: {everyone}", fontsize=9, color="#444")
    ax.set_yticks(positions, labels)
    ax.set_xlim(0, 1.45 if _layout["narrow"] else 1.15)
    ax.set_xticks([0, 0.5, 1])
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel(_wrap("share of the group's listeners on the paid level at the end of the period", 60))
    ax.set_title(_wrap("Paid share of listeners by group (label: paid share of the group's listeners)", 60),
                 loc="left")
    return _svg(fig)


@two_widths
def chart_songs(t: Table) -> str:
    labels = [f"{r['song_title']} — {r['artist_name']}" + ("" if r["in_catalog"] else " *") for r in t.records()]
    return _hbar(labels, t.column("plays"), "songs played (every play; * = not in the catalog)", "Top 10 songs")


@two_widths
def chart_artists(t: Table) -> str:
    return _hbar(t.column("artist_name"), t.column("plays"), "songs played", "Top 10 artists")


@two_widths
def chart_levels(t: Table) -> str:
    levels, users, plays = t.column("level"), t.column("listeners"), t.column("plays")
    fig, (left, right) = _panels(2, 8, 2.8)
    _bar_values(left, left.bar(levels, users, color=[GREY, BLUE][: len(levels)]), users)
    left.set_ylabel("listeners")
    left.set_title("Listeners by level", loc="left")
    _bar_values(right, right.bar(levels, plays, color=[GREY, BLUE][: len(levels)]), plays)
    right.set_ylabel("songs played")
    right.set_title("Plays by level", loc="left")
    for ax in (left, right):
        ax.set_xlabel("level at the time of the play")
        _counts(ax.yaxis)
        ax.margins(y=0.15)
    fig.tight_layout()
    return _svg(fig)


@two_widths
def chart_gender(t: Table) -> str:
    fig, ax = plt.subplots(figsize=(_width(5), 2.6))
    _bar_values(ax, ax.bar([gender_label(g) for g in t.column("gender")], t.column("plays"), color=BLUE),
                t.column("plays"))
    ax.set_ylabel("songs played")
    ax.set_xlabel("gender (as registered)")
    ax.set_title("Plays by gender", loc="left")
    _counts(ax.yaxis)
    ax.margins(y=0.15)
    return _svg(fig)


@two_widths
def chart_locations(t: Table) -> str:
    return _hbar(t.column("location"), t.column("plays"), "songs played", "Top 10 locations")


@two_widths
def chart_platforms(t: Table) -> str:
    groups = ["browser", "operating system", "device"]
    fig, axes = _panels(3, 9.5, 2.6)
    for ax, group in zip(axes, groups, strict=True):
        rows = [r for r in t.records() if r["dimension"] == group]
        positions = list(range(len(rows)))[::-1]
        plays = [r["plays"] for r in rows]
        bars = ax.barh(positions, plays, color=BLUE)
        ax.bar_label(bars, [f"{v:,}" for v in plays], padding=2, fontsize=9)
        ax.set_yticks(positions, [r["value"] for r in rows])
        ax.set_title(group.capitalize(), loc="left")
        ax.set_xlabel("songs played")
        ax.xaxis.set_major_locator(MaxNLocator(nbins=3, integer=True))
        ax.set_xlim(0, max(plays or [1]) * 1.3)
    fig.tight_layout()
    return _svg(fig)


@two_widths
def chart_engagement(t: Table) -> str:
    levels = t.column("level")
    fig, axes = _panels(3, 9, 2.8)
    for ax, column, label in zip(axes, ("sessions_per_user", "songs_per_session", "median_session_minutes"),
                                 ("sessions per user (mean)", "songs per session (mean)",
                                  "session length, minutes (median)"),
                                 strict=True):
        values = [math.nan if v is None else v for v in t.column(column)]
        _bar_values(ax, ax.bar(levels, values, color=[GREY, BLUE][: len(levels)]), values, "{:,.1f}")
        ax.set_ylabel(_wrap(label, 20))
        ax.set_xlabel("level the session started on")
        ax.margins(y=0.15)
    axes[0].set_title("Engagement by level", loc="left")
    fig.tight_layout()
    return _svg(fig)


@two_widths
def chart_changes(changes: Table, around: Table, period: Period) -> str:
    days = period.days()
    rows = {r["day"]: r for r in changes.records()}
    positions = list(range(len(days)))
    fig, (left, right) = _panels(2, 10, 3, width_ratios=[2.2, 1])
    left.bar([p - 0.2 for p in positions], [rows[d]["upgrades"] if d in rows else 0 for d in days], width=0.4,
             color=BLUE, label="upgrades to paid")
    left.bar([p + 0.2 for p in positions], [rows[d]["downgrades"] if d in rows else 0 for d in days], width=0.4,
             color=ORANGE, label="downgrades to free")
    left.set_ylabel("users changing level")
    left.set_xlabel("day (UTC)")
    left.legend(frameon=False, fontsize=9, loc="lower right", bbox_to_anchor=(1, 1), ncol=1 if _layout["narrow"]
                else 2)  # above, never on bars
    left.set_title("Level changes per day", loc="left", pad=38 if _layout["narrow"] else 18)
    _counts(left.yaxis)
    left.set_ylim(top=max([1] + [max(r["upgrades"], r["downgrades"]) for r in rows.values()]) * 1.1)
    _day_ticks(left, days)
    periods = around.column("period")
    users = around.column("users")
    values = around.column("plays_per_active_day")
    _bar_values(right, right.bar(["free stretch" if p == "before upgrade" else "paid stretch" for p in periods],
                                 values, color=[GREY, BLUE][: len(periods)]), values, "{:,.1f}")
    right.set_ylabel(_wrap("songs per active day (mean)", 20))
    right.set_xlabel(_wrap(f"the same {max(users or [0]):,} upgraders, before and after", 40))
    right.set_title("Listening around an upgrade", loc="left")
    right.margins(y=0.15)
    fig.tight_layout()
    return _svg(fig)


# --- tables -----------------------------------------------------------------------------

def _table(t: Table, limit: int = 12) -> str:
    """A preview of the table's first rows; label/value pairs for one row; "none" for none."""
    if not t.rows:
        return "<p class=none>none</p>"
    if len(t.rows) == 1 and len(t.columns) > 4:
        return _pairs(t)
    # Column names as words (the CSV keeps them as names); on a phone each row becomes a card
    # of "name: value" lines (data-label), so no table is wider than the screen.
    head = "".join(f"<th>{html.escape(_words(c))}</th>" for c in t.columns)
    body = "".join("<tr>" + "".join(f"<td data-label=\"{html.escape(_words(c))}\">{html.escape(_cell(c, v, record))}"
                                    f"</td>" for c, v in record.items())
                   + "</tr>" for record in t.records()[:limit])
    more = f"<p class=more>{len(t.rows) - limit} more rows in the CSV.</p>" if len(t.rows) > limit else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def _pairs(t: Table) -> str:
    record = t.records()[0]
    items = "".join(f"<dt>{html.escape(_words(c))}</dt><dd>{html.escape(_cell(c, v) or '–')}</dd>"
                    for c, v in record.items())
    return f"<dl class=pairs>{items}</dl>"


def _words(column: str) -> str:
    return column.replace("_", " ")


PAGE_WORDS = {"NextSong": "song played (NextSong)"}


# Columns whose codes the page shows as words (F/M as women/men, weekday numbers 0-6 from
# Sunday as names): a CSV keeps the code, machine-friendly, and beside it a <column>_label
# column with the page's words, so the file and the page say the same thing. (Page names
# need none: the page shows the app's name itself, NextSong with its meaning.)
CODED_COLUMNS = ("gender", "weekday")


def with_labels(table: Table) -> Table:
    """The table with a <column>_label column after each coded column (and after value
    where one of its rows is a gender), holding the words the page shows."""
    records = table.records()
    coded = [c for c in table.columns if c in CODED_COLUMNS]
    if "value" in table.columns and any(r.get("dimension") == "gender" for r in records):
        coded.append("value")
    if not coded:
        return table
    columns: list[str] = []
    for column in table.columns:
        columns += [column, f"{column}_label"] if column in coded else [column]
    rows = []
    for record in records:
        row: list = []
        for column in table.columns:
            row += [record[column], _cell(column, record[column], record)] if column in coded else [record[column]]
        rows.append(tuple(row))
    return Table(table.name, table.question, columns, rows, table.seconds)


def _cell(column: str, value, record: dict | None = None) -> str:
    """A value as a reader reads it: day names, yes/no, women/men, shares in percent, the
    app's page codes in words."""
    if value is None:
        return ""
    if column == "page":
        return PAGE_WORDS.get(value, value)
    if column == "weekday":
        return WEEKDAYS[value]
    if column == "in_catalog":
        return "yes" if value else "no"
    if column == "gender" or (column == "value" and record and record.get("dimension") == "gender"):
        return gender_label(value)
    if column in SHARE_COLUMNS:
        return f"{100.0 * value:.1f}%"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def definitions(tables: dict[str, Table]) -> str:
    """Who counts as what: each term once, with its figure for the period."""
    p = tables["population"].records()[0]
    both = p["listeners_on_both_levels"]
    days = [d["active_users"] for d in tables["daily_activity"].records() if d["active_users"]]
    paying = next((r["paid_listeners"] for r in tables["paid_share"].records() if r["dimension"] == "all"), 0)
    sessions = sum(r["sessions"] for r in tables["engagement"].records())
    without = sum(r["sessions_without_plays"] for r in tables["engagement"].records())
    terms = [
        ("Users", p["users"], "people who were logged in for at least one event (any page) in the period."),
        ("Listeners", p["listeners"], "users who played at least one song in the period. The “Who listens” "
         f"charts count listeners; the {both:,} who played on both levels (an upgrade or downgrade in the "
         f"period) are counted at each level, so free plus paid listeners is {p['listeners'] + both:,}."),
        ("Active users", round(sum(days) / len(days)) if days else 0, "a day's active users are the users with "
         "any event that day (this is their mean over the days with events); a week's, with any event that week "
         "(cohort retention)."),
        ("New users", p["new_users"], "users who signed up in the period: their registration time "
         "(users.registered_at), not their first event."),
        ("First seen", p["first_seen_users"], "users whose first event in the warehouse falls in the period. "
         "At the start of the logs that is everyone active, so it is labelled as first seen and never counted "
         "as new."),
        ("Paying users", paying, "listeners on the paid level at the end of the period (the level of their last "
         "event in it, from the level history)."),
        ("Free users (funnel)", None, "the funnel counts events on the free level only: a paying user's visits "
         "are no step towards paying."),
        ("Level", None, "free or paid: the subscription a user was on at an event, as the app logged it. A play "
         "counts at the level it was played on, a session at the level it started on."),
        ("Session", sessions, "a user's events with one session id, in the period when its first event is. It ends "
         "when its last song ends (the play's start plus the song's length) or at its last event, whichever is "
         f"later. The {without:,} sessions without a play are counted apart, never averaged in as zero songs."),
        ("Active day", None, "a day (UTC) on which a user had at least one event; “per active day” in the money "
         "section divides a user's plays by the days they played on in that stretch."),
        ("Metro", None, "the metropolitan area the logs give as a user's location (“Atlanta-Sandy Springs-Roswell, "
         f"GA”). A share by metro is ranked only over metros of at least {MIN_GROUP} listeners."),
        ("Catalog", None, "the song files loaded beside the logs (songs and their artists). A play matches the "
         "catalog when its title, artist name and length equal a song's; the others keep the names the log gives."),
        ("Published batch", None, "one run of the loader whose data reached the tables readers query; a failed "
         "batch published nothing."),
        ("Names repaired", None, "names in the logs whose letters arrived garbled (their UTF-8 bytes read as "
         "Latin-1, once or more, so “ö” arrived as three or more odd characters) and were decoded back when loaded; "
         "counted once per distinct garbled name, over every load."),
    ]
    items = "".join(f"<dt>{html.escape(term)}</dt><dd>{'' if n is None else f'<b>{n:,}</b> '}{html.escape(text)}</dd>"
                    for term, n, text in terms)
    return f"<dl class=terms>{items}</dl>"


def _session_note(t: Table) -> str:
    without = sum(r["sessions_without_plays"] for r in t.records())
    sessions = sum(r["sessions"] for r in t.records())
    return ("A session is a user's events with one session id, in the period when its first event is; it starts "
            "at its first event and ends when its last song ends (the play's start plus the song's length) or at "
            "its last event, whichever is later. Its level is the level it started on. Songs per session and "
            f"session length cover the {sessions - without:,} sessions with at least one play; the {without:,} "
            "without one count in sessions per user only.")


STYLE = """
body{font-family:"DejaVu Sans",Arial,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#1f3b57;color:#fff;padding:24px 40px}header h1{margin:0 0 6px}header p{margin:0;opacity:.85}
header p.period{font-size:18px;opacity:1;margin:0 0 6px}header p{overflow-wrap:anywhere}
.kpis{display:flex;flex-wrap:wrap;gap:12px;padding:16px 40px}
.kpi{background:#fff;border-radius:8px;padding:12px 18px;box-shadow:0 1px 3px #0002;min-width:130px}
.kpi b{display:block;font-size:24px}
section{background:#fff;margin:16px 40px;padding:16px 24px;border-radius:8px;box-shadow:0 1px 3px #0002;
overflow-x:auto}
h2{margin:4px 0 8px;color:#1f3b57}.takeaway{font-size:15px;font-weight:bold;margin:8px 0 12px}
figure{margin:8px 0}figure svg{max-width:100%;height:auto}.note{font-size:13px;color:#444;margin:4px 0 8px}
.narrow{display:none}
table{border-collapse:collapse;font-size:12px;margin:8px 0;max-width:100%}
th,td{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left}td{overflow-wrap:break-word}
th{background:#f0f3f6}.more,.csv,.none{font-size:12px;color:#555}
dl.pairs{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;font-size:12px;margin:8px 0}
dl.pairs dt{color:#555}dl.pairs dd{margin:0;overflow-wrap:break-word;min-width:0}
dl.terms{display:grid;grid-template-columns:max-content 1fr;gap:6px 16px;margin:8px 0}
dl.terms dt{font-weight:bold}dl.terms dd{margin:0}
@media (max-width:699px){
header{padding:16px 14px}.kpis{padding:10px 8px;gap:8px}.kpi{min-width:0;padding:8px 12px}
section{margin:10px 6px;padding:10px 10px}
.wide{display:none}.narrow{display:block}
table,tbody,tr,td{display:block;width:100%}thead{display:none}
tr{border-bottom:1px solid #bbb;padding:4px 0}td{border:none;padding:1px 0}
td::before{content:attr(data-label) ": ";color:#555}
dl.pairs,dl.terms{grid-template-columns:1fr}dl.pairs dd,dl.terms dd{margin:0 0 6px}
}
"""


def drawn(charts: dict[str, tuple[Callable[..., str], tuple]]) -> dict[str, str]:
    """Each chart's SVG by name, from (chart function, its arguments). Laying out the charts'
    text takes seconds whatever the warehouse's size, and the charts are independent: where
    the OS can fork, one worker process per core draws them (each a copy of this process,
    matplotlib loaded), and the page is the same as drawn here one by one."""
    workers = min(usable_cores(), len(charts))
    if workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return {name: draw(*args) for name, (draw, args) in charts.items()}
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        futures = {name: pool.submit(draw, *args) for name, (draw, args) in charts.items()}
        return {name: future.result() for name, future in futures.items()}


def render(tables: dict[str, Table], found: Findings, period: Period, target: str) -> str:
    people = tables["population"].records()[0]
    health = tables["load_health"].records()[0]
    levels = {r["level"]: r for r in tables["level_share"].records()}
    plays = health["plays"] or 0
    kpis = [
        ("users", f"{people['users']:,}"),
        ("listeners", f"{people['listeners']:,}"),
        ("new users (signed up)", f"{people['new_users']:,}"),
        ("songs played", f"{plays:,}"),
        ("plays on the paid level", pct(levels["paid"]["plays"], plays) if "paid" in levels else "n/a"),
        ("plays matched to the catalog", pct(health["plays_matched"], plays)),
        ("latest event (UTC)", health["latest_event"].strftime("%Y-%m-%d %H:%M") if health["latest_event"] else "-"),
    ]
    both = people["listeners_on_both_levels"]
    svgs = drawn({  # the slowest to draw first, so the workers finish together
        "paying": (chart_paying, (tables["paid_share"],)),
        "churn": (chart_churn, (tables["churned_users"], period)),
        "activity": (chart_activity, (tables["daily_activity"], period)),
        "trend": (chart_trend, (tables["weekly_trend"], period)),
        "hours": (chart_hours, (tables["listening_hours"],)),
        "funnel": (chart_funnel, (tables["conversion_funnel"],)),
        "retention": (chart_retention, (tables["weekly_cohort_retention"], period)),
        "risk": (chart_churn_risk, (tables["churn_risk"],)),
        "path": (chart_path, (tables["path_to_paying"],)),
        "growth": (chart_growth, (tables["paid_growth"],)),
        "songs": (chart_songs, (tables["top_songs"],)),
        "artists": (chart_artists, (tables["top_artists"],)),
        "levels": (chart_levels, (tables["level_share"],)),
        "gender": (chart_gender, (tables["gender_share"],)),
        "where": (chart_locations, (tables["top_locations"],)),
        "platforms": (chart_platforms, (tables["platforms"],)),
        "engagement": (chart_engagement, (tables["engagement"],)),
        "money": (chart_changes, (tables["level_changes"], tables["upgrade_engagement"], period)),
    })
    observed, left_out = observed_churners(tables["churned_users"], period)
    churn_notes = [f"Not charted: {left_out:,} of the {left_out + len(observed):,} churners, whose two weeks before "
                   f"churning begin before the period (those days are not in it)."] if left_out else []
    if len(observed) > 20:
        churn_notes.append(f"Charted: the first 20 of {len(observed):,}, by the time they churned.")
    signals = tables["churn_summary"].records()
    if any(r["events"] for r in signals):  # a signal absent beside one present: said, not drawn as nothing
        churn_notes += [f"{r['page']}: none in this period." for r in signals if not r["events"]]
    at_risk = len(tables["churn_risk"].rows)
    risk_notes = ["At risk: a user whose latest visit to the Downgrade or Cancel page in the period has no Submit "
                  "Downgrade or Cancellation Confirmation at or after it in the period. The last 7 days end with the "
                  "period, or with its last day with events. Level is the one on the user's last event in the period."]
    if at_risk > 20:
        risk_notes.append(f"Charted: the 20 most active of {at_risk:,}; the CSV lists every one.")
    # (id, title, takeaway sentences, chart (SVG, or "" for none), notes beside it, tables);
    # the first section's body is the definitions instead of a chart.
    sections = [
        ("definitions", "Who counts as what", [f"The period: {found.period}."], "", [], ["population"]),
        ("activity", "Activity over time", [found.activity, found.newcomers, *([found.panel] if found.panel else [])],
         svgs["activity"], [], ["daily_activity"]),
        ("trend", "Trend, week on week", [found.trend], svgs["trend"],
         ["A week runs Monday to Sunday, UTC. Active users had any event in the week, listeners a play. A week "
          "only partly in the period or the data (*, pale) counts only its days there (days with events), so it "
          "is shown but never compared."], ["weekly_trend"]),
        ("hours", "When people listen", [found.hours], svgs["hours"],
         ["Each cell is a slot's songs played divided by the days of its weekday with events in the period "
          "(weekdays_observed): a month can hold five Fridays and four Tuesdays."], ["listening_hours"]),
        ("funnel", "Conversion funnel: free users on the way to paying", [found.funnel],
         svgs["funnel"],
         ["Each step counts the free users who reached it after the step before, in this order; shares are of "
          "step 1 and of the step before."], ["conversion_funnel"]),
        ("retention", "Weekly cohort retention", [found.retention],
         svgs["retention"],
         ["A cohort is the users who signed up (registration) in one week, Monday to Sunday UTC, and have an event in "
          "the period (its size and its activity come from the same period); a cell is the share "
          "of them with any event in that later week. Blank cells are weeks not observed (before the logs begin), "
          "not zero; a cell marked * is a week only partly in the data or the period (it counts only its days "
          "there, so its share reads low), and the sentence above quotes whole weeks only."],
         ["weekly_cohort_retention"]),
        ("churn", "Churn and downgrades", [found.churn], svgs["churn"],
         churn_notes,
         ["churn_summary", "churned_users"]),
        ("risk", "Churn risk: looked at leaving, still here", [found.churn_risk],
         svgs["risk"], risk_notes, ["churn_risk"]),
        ("paying", "Who the paying users are", [found.paying], svgs["paying"],
         ["Each listener counts once per dimension: their location and platform are those of most of their plays "
          f"in the period. A metro (the logs' metropolitan area) is shown and ranked only with at least "
          f"{MIN_GROUP} listeners; smaller ones are pooled in one row. Each bar says its listeners."],
         ["paid_share"]),
        ("path", "The path to paying", [found.path], svgs["path"],
         ["While free: a user's events on the free level in the period, an upgrader's only before their first "
          "upgrade in it (a reversal is none). An active day is a day with an event on free; other pages are "
          "events other than a song played; sessions are distinct session ids. Rates pool the group (sums over "
          "sums). Days to upgrade run from sign-up (registration) to that upgrade."], ["path_to_paying"]),
        ("growth", "Net paid growth", [found.growth], svgs["growth"],
         ["Each listener's level at the start is the one in force at the period's first moment (for a listener "
          "whose level history begins in the period, their first level), and at the end the one in force at its "
          "last. A change undone inside the period moves nobody."], ["paid_growth"]),
        ("songs", "What they play: songs", [found.songs], svgs["songs"], [],
         ["top_songs", "catalog_coverage"]),
        ("artists", "What they play: artists", [found.artists], svgs["artists"], [],
         ["top_artists"]),
        ("levels", "Who listens: free and paid", [found.levels], svgs["levels"],
         [f"{both:,} listeners played on both levels and are counted at each: free plus paid listeners is "
          f"{sum(r['listeners'] for r in levels.values()):,}, for {people['listeners']:,} listeners."],
         ["level_share"]),
        ("gender", "Who listens: gender", [found.gender], svgs["gender"], [],
         ["gender_share"]),
        ("where", "Who listens: where", [found.locations], svgs["where"], [],
         ["top_locations"]),
        ("platforms", "Who listens: platforms", [found.platforms], svgs["platforms"],
         ["A listener with plays from two user agents counts at each one's platform (the CSV's listeners column)."],
         ["platforms"]),
        ("engagement", "Engagement", [found.engagement], svgs["engagement"],
         [_session_note(tables["engagement"])], ["engagement"]),
        ("money", "Money: upgrades and downgrades", [found.changes, found.upgrade],
         svgs["money"], [],
         ["level_changes", "upgrade_engagement"]),
        ("health", "Data health", [found.health], "", ["Loads are counted over every load; events, plays and "
                                                        "matches over the period.",
                                                        "Schema drift: keys new, vanished or of another type in "
                                                        "the source files, as the loads recorded them."],
         ["load_health", "load_error_reasons", "schema_drift"]),
    ]
    parts = []
    for slug, title, takeaways, svg, notes, names in sections:
        shown = f"<figure class=chart>{svg}</figure>" if svg else ""
        if slug == "definitions":
            shown = definitions(tables)
        note_html = "".join(f"<p class=note>{html.escape(n)}</p>" for n in notes)
        data = "".join(f"<p class=csv>{html.escape(n)}.csv</p>{_table(tables[n])}" for n in names)
        said = "".join(f"<p class=takeaway>{html.escape(s)}</p>" for s in takeaways)
        parts.append(f"<section id={slug}><h2>{html.escape(title)}</h2>{said}{shown}{note_html}{data}</section>")
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    kpi_html = "".join(f"<div class=kpi><b>{html.escape(v)}</b>{html.escape(k)}</div>" for k, v in kpis)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sparkify listening insights</title><style>{STYLE}</style></head>
<body><header><h1>Sparkify listening insights</h1>
<p class=period>Period: {html.escape(found.period)}</p>
<p>From {html.escape(target)} · generated {generated} · all times UTC · every figure from a SQL query in
insight_queries.py or analyses/, and each table is also a CSV beside this page.</p></header>
<div class=kpis>{kpi_html}</div>
{''.join(parts)}
</body></html>
"""
