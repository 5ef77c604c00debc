"""The scale benchmark (not part of the tests): how far one machine goes, measured.

On the embedded PostgreSQL, for each size: generate the data (once, kept in the work
folder), measure the ceiling (COPY FROM STDIN of the same events pre-rendered as rows into
staging_events), run create_tables.py + etl.py as a user would and report each phase's
time, events/s, the client's peak memory and the database size; then load one more day
into the largest warehouse, time insights.py on it, and print the ratios the targets are
judged by. Results go to stdout and to results.md in the work folder, each etl.py run's
per-statement log to etl-<size>.log (etl-one-more-day.log) beside it.

    python tools/benchmark.py                 # 1M and 10M events, 100k songs (about 12 minutes
                                              # on 2 cores, 3 of them generating the data)
    python tools/benchmark.py --sizes 100000  # a quick run
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent  # the repository: the scripts it runs are there
sys.path.insert(0, str(ROOT))

from sparkify import progress  # noqa: E402 - after the path above

DAYS = 30
START = datetime(2018, 11, 1)
# Runs a script unchanged in this process, then reports the process's peak memory.
CHILD = """
import resource, runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as exit:
    code = exit.code or 0
else:
    code = 0
print(f"PEAK_RSS_KB {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss} "
      f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}", file=sys.stderr)
sys.exit(code)
"""


def run(*args: str, env=None) -> tuple[float, int, str, str]:
    """Runs a toolkit script in a child; returns (seconds, peak RSS in MB, stdout, stderr).

    The peak counts the script's own process plus, if it forked COPY workers, one per core
    at the largest worker's peak: an upper bound of what the client held at once."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", CHILD, *args], cwd=ROOT, capture_output=True, text=True,
                            env=env)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    peaks = re.search(r"PEAK_RSS_KB (\d+) (\d+)", result.stderr)
    if peaks is None:
        raise SystemExit(f"{' '.join(args)} reported no peak memory:\n{result.stderr}")
    own, workers = (int(kb) for kb in peaks.groups())
    from sparkify.parallelrows import usable_cores

    peak = (own + (usable_cores() * workers if "rendered by" in result.stderr else 0)) // 1024
    return seconds, peak, result.stdout, re.sub(r"^PEAK_RSS_KB .*\n?", "", result.stderr, flags=re.M)


def run_etl(config: Path, steps: Path) -> tuple[float, int, str, str]:
    """etl.py in a child, its steps written as JSON lines to steps (a fresh file)."""
    from sparkify.warehouse import STEP_LOG_ENV

    steps.unlink(missing_ok=True)
    return run("etl.py", "--config", str(config), env=dict(os.environ, **{STEP_LOG_ENV: str(steps)}))


def staged_events(steps: Path) -> int:
    """The events etl.py staged, from its step log."""
    return sum(step["count"] for step in map(json.loads, steps.read_text(encoding="utf-8").splitlines())
               if step["label"] == "stage staging_events")


def phases(steps: Path) -> dict[str, float]:
    """Seconds per phase, from the JSON lines etl.py wrote to its step log."""
    out = {"stage events": 0.0, "stage songs": 0.0, "repair + transform": 0.0, "quality checks": 0.0,
           "bookkeeping": 0.0}
    for line in steps.read_text(encoding="utf-8").splitlines():
        step = json.loads(line)
        label, seconds = step["label"], step["seconds"]
        if label == "stage staging_events":
            out["stage events"] += seconds
        elif label == "stage staging_songs":
            out["stage songs"] += seconds
        elif label == "quality checks":
            out["quality checks"] += seconds
        elif label.startswith(("find new", "record ", "count rows", "commit", "load lock")):
            out["bookkeeping"] += seconds
        elif not label.startswith("copy "):
            out["repair + transform"] += seconds
    return out


def generate(folder: Path, events: int, songs: int, extra_day: bool = False) -> None:
    users = max(100, events // 330)
    per_day = events // DAYS
    args = ["tools/generate_data.py", str(folder), "--users", str(users), "--events-per-day", str(per_day),
            "--songs", str(songs), "--seed", "1"]
    if extra_day:
        args += ["--days", "1", "--start", (START + timedelta(days=DAYS)).strftime("%Y-%m-%d"), "--logs-only"]
    else:
        args += ["--days", str(DAYS), "--start", START.strftime("%Y-%m-%d")]
    done = folder / (".extra-day.done" if extra_day else ".done")  # beside the data, not in a prefix
    if done.exists():
        return
    print(f"  generating {'one more day' if extra_day else f'{events:,} events'} in {folder} ...", flush=True)
    seconds, _, out, _ = run(*args)
    print(f"  {out.strip()}", flush=True)
    done.write_text(str(seconds))


def forget_extra_day(folder: Path) -> None:
    """Removes the one more day an earlier run wrote into folder, so the full load is the
    30 days alone (the day is written again, in seconds, after it)."""
    day = START + timedelta(days=DAYS)
    (folder / "log_data" / f"{day:%Y}" / f"{day:%m}" / f"{day:%Y-%m-%d}-events.json").unlink(missing_ok=True)
    (folder / ".extra-day.done").unlink(missing_ok=True)


def write_config(path: Path, db: str, data: Path) -> Path:
    path.write_text(f"[CLUSTER]\nHOST =\nDB_NAME = {db}\nDB_USER = bench\nDB_PASSWORD =\nDB_PORT = 5432\n"
                    f"[IAM_ROLE]\nARN =\n[S3]\nLOG_DATA = {data / 'log_data'}\n"
                    f"LOG_JSONPATH = {ROOT / 'data' / 'log_json_path.json'}\nSONG_DATA = {data / 'song_data'}\n"
                    "[ETL]\nMAXERROR = 1000\n")
    return path


def ceiling(config_path: Path) -> tuple[int, float]:
    """COPY FROM STDIN of the events pre-rendered as rows (rendering not timed): rows, seconds."""
    from sparkify import jsoncopy, pipeline, sources
    from sparkify.config import load_config
    from sparkify.warehouse import connect

    config = load_config(config_path)
    with connect(config) as wh, tempfile.TemporaryFile() as rendered:
        columns = wh.table_columns("staging_events")
        paths = jsoncopy.parse_jsonpaths(sources.read_bytes(config.log_jsonpath))
        copier = jsoncopy.JsonCopy("staging_events", columns, paths, pipeline.copy_options(config))
        for row in copier.rows(sources.list_objects(config.log_data)):
            rendered.write(row)
        rendered.seek(0)
        wh.execute("truncate table staging_events")
        wh.commit()
        started = time.perf_counter()
        cur = wh.conn.cursor()
        cur.copy_expert(f"copy staging_events ({', '.join(copier.columns)}) from stdin", rendered, size=1 << 20)
        wh.commit()
        seconds = time.perf_counter() - started
        wh.execute("truncate table staging_events")
        wh.commit()
    return copier.result.rows, seconds


def database_mb(config_path: Path) -> float:
    from sparkify.config import load_config
    from sparkify.warehouse import connect

    with connect(load_config(config_path)) as wh:
        return wh.scalar("select pg_database_size(current_database())") / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000,10000000", help="comma-separated event counts")
    parser.add_argument("--songs", type=int, default=100_000, help="catalog size")
    parser.add_argument("--workdir", default=str(ROOT / "output" / "benchmark"))
    args = parser.parse_args()
    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    results: list[dict[str, Any]] = []
    # A run takes most of an hour at 10M: a bar over its steps on a terminal, else a plain
    # line every 30 s (the scripts it runs print to its logs, not here).
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    overall = progress.Progress("benchmark", 5 * len(sizes) + 3, unit="steps")
    done = 0

    def finished(step: str) -> None:
        nonlocal done
        done += 1
        overall.update(done, last=step)

    for events in sizes:
        label = f"{events / 1e6:g}M" if events >= 1e6 else f"{events / 1e3:g}k"
        print(f"== {label} events, {args.songs:,} songs", flush=True)
        data = work / f"data-{label}"
        generate(data, events, args.songs)
        finished(f"generate {label}")
        forget_extra_day(data)
        config = write_config(work / f"bench-{label}.cfg", f"bench_{label.lower()}", data)
        run("create_tables.py", "--config", str(config), "-q")
        finished(f"create tables {label}")
        rows, copy_seconds = ceiling(config)
        finished(f"COPY ceiling {label}")
        steps = work / f"etl-{label}.steps.jsonl"
        wall, peak, out, err = run_etl(config, steps)
        finished(f"etl {label}")
        (work / f"etl-{label}.log").write_text(err)
        staged = staged_events(steps)
        result = {"label": label, "events": staged, "ceiling_rows_per_s": rows / copy_seconds,
                  "etl_seconds": wall, "events_per_s": staged / wall, "peak_rss_mb": peak,
                  "db_mb": database_mb(config), "phases": phases(steps)}
        finished(f"database size {label}")
        print(f"  ceiling {result['ceiling_rows_per_s']:,.0f} rows/s; etl {wall:.1f} s = "
              f"{result['events_per_s']:,.0f} events/s; peak client RSS {peak} MB; database {result['db_mb']:,.0f} MB",
              flush=True)
        results.append(result)
    largest = results[-1]
    data = work / f"data-{largest['label']}"
    config = work / f"bench-{largest['label']}.cfg"
    generate(data, sizes[-1], args.songs, extra_day=True)
    finished("generate one more day")
    day_steps = work / "etl-one-more-day.steps.jsonl"
    day_wall, day_peak, day_out, day_err = run_etl(config, day_steps)
    finished("etl one more day")
    (work / "etl-one-more-day.log").write_text(day_err)
    day_phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in phases(day_steps).items())
    day_events = staged_events(day_steps)
    insights_wall, _, _, _ = run("insights.py", "--config", str(config), "--output", str(work / "insights"))
    finished("insights")
    overall.close()
    day_share = day_events / largest["events_per_s"]
    ratios = {
        "end-to-end events/s / COPY ceiling rows/s (1st size)": results[0]["events_per_s"]
        / results[0]["ceiling_rows_per_s"],
        "end-to-end events/s / COPY ceiling rows/s (largest)": largest["events_per_s"] / largest["ceiling_rows_per_s"],
        "time per event, largest / smallest": (largest["etl_seconds"] / largest["events"])
        / (results[0]["etl_seconds"] / results[0]["events"]),
        "incremental day / its share of a full load": day_wall / day_share,
    }
    lines = [f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
             f"embedded PostgreSQL; command: python tools/benchmark.py --sizes {args.sizes} --songs {args.songs}", "",
             "| size | events | COPY ceiling rows/s | etl.py s | events/s | stage events s | stage songs s | "
             "transform s | checks s | bookkeeping s | peak client RSS MB | database MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        p = r["phases"]
        lines.append(f"| {r['label']} | {r['events']:,} | {r['ceiling_rows_per_s']:,.0f} | {r['etl_seconds']:.1f} | "
                     f"{r['events_per_s']:,.0f} | {p['stage events']:.1f} | {p['stage songs']:.1f} | "
                     f"{p['repair + transform']:.1f} | {p['quality checks']:.1f} | {p['bookkeeping']:.1f} | "
                     f"{r['peak_rss_mb']} | "
                     f"{r['db_mb']:,.0f} |")
    lines += ["", f"one more day on the {largest['label']} warehouse: {day_events:,} events in {day_wall:.1f} s "
              f"(peak client RSS {day_peak} MB: {day_phases}); insights.py on it: {insights_wall:.1f} s", ""]
    lines += [f"- {name}: {value:.2f}" for name, value in ratios.items()]
    report = "\n".join(lines)
    print("\n" + report)
    (work / "results.md").write_text(report + "\n")
    (work / "results.json").write_text(json.dumps({"results": results, "ratios": ratios, "day_seconds": day_wall,
                                                   "insights_seconds": insights_wall}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
