"""The scale benchmark (not part of the tests): how far one machine goes, measured.

On the embedded PostgreSQL, for each size: generate the data (once, kept in the work
folder), measure the ceiling (COPY FROM STDIN of the same events pre-rendered as rows into
staging_events), run create_tables.py + etl.py as a user would and report each phase's
time, events/s, the client's peak memory and the database size; then load one more day
into the largest warehouse, time insights.py on it, and print the ratios the targets are
judged by. Beside the time it prints what the design costs: the statements one run sends
(all, and after staging) and the rows it writes per event staged; and, in the same run on
the same files, the anchors: a plain orjson -> COPY -> INSERT ... SELECT load of the same
star with no bookkeeping (reference), and DuckDB building that star from the files. Results
go to stdout and to results.md in the work folder, each etl.py run's per-statement log to
etl-<size>.log (etl-one-more-day.log) beside it, and insights.py's per-query log to insights.log.

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
    import sql_queries as q
    from sparkify import jsoncopy, pipeline, sources
    from sparkify.config import load_config
    from sparkify.warehouse import connect

    config = load_config(config_path)
    with connect(config) as wh, tempfile.TemporaryFile() as rendered:
        columns = q.json_columns("staging_events", wh.table_columns("staging_events"))  # then the row's file
        paths = jsoncopy.parse_jsonpaths(sources.read_bytes(config.log_jsonpath))
        objects = sources.list_objects(config.log_data)
        copier = jsoncopy.JsonCopy("staging_events", columns, paths, pipeline.copy_options(config),
                                   object_ids={obj.url: number for number, obj in enumerate(objects, 1)})
        for row in copier.rows(objects):
            rendered.write(row)
        rendered.seek(0)
        wh.execute("truncate table staging_events")
        wh.commit()
        started = time.perf_counter()
        cur = wh.conn.cursor()
        cur.copy_expert(f"copy staging_events ({', '.join(copier.columns)}, object_id) from stdin", rendered,
                        size=1 << 20)
        wh.commit()
        seconds = time.perf_counter() - started
        wh.execute("truncate table staging_events")
        wh.commit()
    return copier.result.rows, seconds


# Steps whose count is not rows written: reads, statistics, locks, BRIN ranges summarized.
NOT_WRITES = ("analyze ", "find new", "count rows", "commit", "load lock", "quality checks", "copy ")
NOT_WRITES_IN = (": find values out of range", "summarize new blocks", "skipped, changed too little")


def rows_written(steps: Path) -> int:
    """The rows etl.py wrote (inserted, deleted, updated or created as a table, staging
    included), from its step log."""
    written = 0
    for step in map(json.loads, steps.read_text(encoding="utf-8").splitlines()):
        label = step["label"]
        if step.get("unit", "rows") != "rows" or label.startswith(NOT_WRITES) or any(
                part in label for part in NOT_WRITES_IN):
            continue
        written += max(step["count"] or 0, 0)
    return written


def statements_per_run(config_path: Path) -> tuple[int, int]:
    """(statements one etl.py run sends, those after staging), read from its dry run on the
    same config: the same code path, so the count is what a run sends."""
    from sparkify import pipeline
    from sparkify.config import load_config

    bodies = []
    for chunk in pipeline.dry_run_etl(load_config(config_path)).split(";\n"):
        if pipeline.ONLY_WHEN["changed"] in chunk:
            continue  # a load of new files changes none loaded before
        body = "\n".join(line for line in chunk.splitlines() if not line.startswith("--")).strip()
        if body and body not in ("commit", "rollback"):
            bodies.append(body)
    copies = [n for n, body in enumerate(bodies) if body.startswith("copy ")]
    return len(bodies), len(bodies) - (copies[-1] + 1 if copies else 0)


def _copy_text(values) -> bytes:
    """One row of COPY's text format."""
    out = []
    for value in values:
        if value is None:
            out.append("\\N")
        else:
            text = str(value)
            out.append(text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
                       .replace("\r", "\\r"))
    return ("\t".join(out) + "\n").encode("utf-8")


EVENT_KEYS = ["userId", "firstName", "lastName", "gender", "level", "sessionId", "itemInSession", "page", "ts",
              "song", "artist", "length", "location", "userAgent"]
SONG_KEYS = ["song_id", "title", "artist_id", "artist_name", "artist_location", "artist_latitude",
             "artist_longitude", "duration", "year"]
# The reference's star, and DuckDB's: the same five tables by the same rules as the toolkit's
# (one play per NextSong event, users by their latest event, artists by their most used
# spelling reduced to one row each, time per distinct play time), in SQL both engines run.
STAR_SQL = [
    """create table songs as select song_id, min(title) as title, min(artist_id) as artist_id,
       min(artist_name) as artist_name, min(nullif(year, 0)) as year, min(duration) as duration
       from songs_raw where song_id is not null group by song_id""",
    """create table artists as select artist_id, name, location, latitude, longitude from (
       select artist_id, artist_name as name, artist_location as location, artist_latitude as latitude,
              artist_longitude as longitude,
              row_number() over (partition by artist_id order by artist_name, song_id) as choice
       from songs_raw where artist_id is not null) a where choice = 1""",
    """create table songplays as select md5(coalesce(e.user_id, '') || '|' || cast(e.session_id as varchar) || '|'
              || cast(e.item_in_session as varchar) || '|' || cast(e.ts as varchar)) as songplay_id,
              {start_time} as start_time, cast(nullif(e.user_id, '') as integer) as user_id, e.level,
              s.song_id, s.artist_id, e.session_id, e.item_in_session, e.location, e.user_agent
       from events e
       left join (select min(song_id) as song_id, min(artist_id) as artist_id, title, artist_name, duration
                  from songs_raw group by title, artist_name, duration) s
         on s.title = e.song and s.artist_name = e.artist and s.duration = e.length
       where e.page = 'NextSong'""",
    """create table users as select user_id, first_name, last_name, gender, level from (
       select cast(user_id as integer) as user_id, first_name, last_name, gender, level,
              row_number() over (partition by user_id order by ts desc, session_id desc, item_in_session desc) as r
       from events where user_id <> '') u where r = 1""",
    """create table time as select start_time, extract(hour from start_time) as hour, extract(day from start_time)
       as day, extract(week from start_time) as week, extract(month from start_time) as month,
       extract(year from start_time) as year, extract(dow from start_time) as weekday
       from (select distinct start_time from songplays) t""",
]


def reference_load(config_path: Path) -> tuple[int, float]:
    """The plain anchor in a schema of its own, dropped after: orjson parses the files, COPY
    FROM STDIN loads them, one CREATE TABLE AS per star table (INSERT ... SELECT into new
    tables), no bookkeeping, checks or history. Returns (events, seconds end to end)."""
    import orjson

    from sparkify import sources
    from sparkify.config import load_config
    from sparkify.warehouse import connect

    config = load_config(config_path)
    started = time.perf_counter()
    events = 0
    with connect(config) as wh:
        wh.execute("drop schema if exists reference cascade")
        wh.execute("create schema reference")
        wh.execute("set search_path to reference")
        wh.execute("create unlogged table events (user_id varchar, first_name varchar, last_name varchar, "
                   "gender varchar, level varchar, session_id bigint, item_in_session integer, page varchar, "
                   "ts bigint, song varchar, artist varchar, length double precision, location varchar, "
                   "user_agent varchar)")
        wh.execute("create unlogged table songs_raw (song_id varchar, title varchar, artist_id varchar, "
                   "artist_name varchar, artist_location varchar, artist_latitude double precision, "
                   "artist_longitude double precision, duration double precision, year integer)")
        for table, source, keys in (("events", config.log_data, EVENT_KEYS), ("songs_raw", config.song_data,
                                                                               SONG_KEYS)):
            with tempfile.TemporaryFile() as rows:
                for obj in sources.list_objects(source):
                    for line in Path(obj.url).read_bytes().splitlines():
                        if line.strip():
                            record = orjson.loads(line)
                            rows.write(_copy_text(record.get(key) for key in keys))
                            events += table == "events"
                rows.seek(0)
                wh.conn.cursor().copy_expert(f"copy {table} from stdin", rows, size=1 << 20)
        start_time = ("timestamp 'epoch' + (e.ts / 1000) * interval '1 second' "
                      "+ (e.ts % 1000) * interval '1 millisecond'")
        for statement in STAR_SQL:
            wh.execute(statement.format(start_time=start_time))
        wh.commit()
        seconds = time.perf_counter() - started
        wh.execute("drop schema reference cascade")
        wh.commit()
    return events, seconds


def duckdb_load(data: Path, work: Path) -> tuple[int, float]:
    """DuckDB building the same star from the same files (read_json over the log and song
    files, the same CREATE TABLE AS statements), in a database file of its own, on the
    machine's cores. Returns (events, seconds end to end)."""
    import duckdb

    path = work / "anchor.duckdb"
    path.unlink(missing_ok=True)
    started = time.perf_counter()
    con = duckdb.connect(str(path))
    con.execute("set enable_progress_bar = false")
    event_columns = {"userId": "VARCHAR", "firstName": "VARCHAR", "lastName": "VARCHAR", "gender": "VARCHAR",
                     "level": "VARCHAR", "sessionId": "BIGINT", "itemInSession": "INTEGER", "page": "VARCHAR",
                     "ts": "BIGINT", "song": "VARCHAR", "artist": "VARCHAR", "length": "DOUBLE",
                     "location": "VARCHAR", "userAgent": "VARCHAR"}
    song_columns = {"song_id": "VARCHAR", "title": "VARCHAR", "artist_id": "VARCHAR", "artist_name": "VARCHAR",
                    "artist_location": "VARCHAR", "artist_latitude": "DOUBLE", "artist_longitude": "DOUBLE",
                    "duration": "DOUBLE", "year": "INTEGER"}
    con.execute(f"""create table events as select "userId" as user_id, "firstName" as first_name,
        "lastName" as last_name, gender, level, "sessionId" as session_id, "itemInSession" as item_in_session,
        page, ts, song, artist, length, location, "userAgent" as user_agent
        from read_json('{data / "log_data"}/**/*.json', format = 'newline_delimited', columns = {event_columns})""")
    con.execute(f"""create table songs_raw as select * from read_json('{data / "song_data"}/**/*.json',
        format = 'auto', columns = {song_columns})""")
    start_time = "make_timestamp(e.ts * 1000)"
    for statement in STAR_SQL:
        con.execute(statement.format(start_time=start_time))
    [(events,)] = con.execute("select count(*) from events").fetchall()
    con.close()
    seconds = time.perf_counter() - started
    path.unlink(missing_ok=True)
    return events, seconds


# What the lineage columns (each fact row's batch_id and object_id) take: their bytes in
# both facts, as PostgreSQL stores them (pg_column_size; alignment padding aside).
LINEAGE_BYTES = """
select (select coalesce(sum(pg_column_size(batch_id) + pg_column_size(object_id)), 0) from songplays)
     + (select coalesce(sum(pg_column_size(batch_id) + pg_column_size(object_id)), 0) from app_events)
"""


def database_mb(config_path: Path) -> tuple[float, float]:
    """(the database's size, what its lineage columns take), in MB."""
    from sparkify.config import load_config
    from sparkify.warehouse import connect

    with connect(load_config(config_path)) as wh:
        return (wh.scalar("select pg_database_size(current_database())") / 2**20,
                wh.scalar(LINEAGE_BYTES) / 2**20)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000,10000000", help="comma-separated event counts")
    parser.add_argument("--songs", type=int, default=100_000, help="catalog size")
    parser.add_argument("--workdir", default=str(ROOT / "output" / "benchmark"))
    parser.add_argument("--no-anchors", action="store_true", help="skip the reference and DuckDB loads")
    parser.add_argument("--no-day", action="store_true", help="skip the one more day and insights.py")
    args = parser.parse_args()
    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    results: list[dict[str, Any]] = []
    # A run takes most of an hour at 10M: a bar over its steps on a terminal, else a plain
    # line every 30 s (the scripts it runs write their own logs, not here).
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    overall = progress.Progress("benchmark", (4 + (0 if args.no_anchors else 2)) * len(sizes)
                                + (0 if args.no_day else 3), unit="steps")
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
        statements, after_staging = statements_per_run(config)
        db_mb, lineage = database_mb(config)
        result = {"label": label, "events": staged, "ceiling_rows_per_s": rows / copy_seconds,
                  "etl_seconds": wall, "events_per_s": staged / wall, "peak_rss_mb": peak,
                  "db_mb": db_mb, "lineage_mb": lineage, "phases": phases(steps),
                  "statements": statements,
                  "statements_after_staging": after_staging, "rows_written_per_event": rows_written(steps) / staged}
        print(f"  ceiling {result['ceiling_rows_per_s']:,.0f} rows/s; etl {wall:.1f} s = "
              f"{result['events_per_s']:,.0f} events/s; peak client RSS {peak} MB; database {result['db_mb']:,.0f} MB "
              f"(lineage columns {result['lineage_mb']:,.0f} MB); "
              f"{statements} statements ({after_staging} after staging); "
              f"{result['rows_written_per_event']:.2f} rows written per event", flush=True)
        if not args.no_anchors:
            ref_events, ref_seconds = reference_load(config)
            finished(f"reference load {label}")
            result["reference_events_per_s"] = ref_events / ref_seconds
            print(f"  reference (orjson -> COPY -> INSERT ... SELECT): {ref_seconds:.1f} s = "
                  f"{result['reference_events_per_s']:,.0f} events/s", flush=True)
            duck_events, duck_seconds = duckdb_load(data, work)
            finished(f"DuckDB load {label}")
            result["duckdb_events_per_s"] = duck_events / duck_seconds
            print(f"  DuckDB (read_json -> the same star): {duck_seconds:.1f} s = "
                  f"{result['duckdb_events_per_s']:,.0f} events/s", flush=True)
        results.append(result)
    largest = results[-1]
    ratios = {
        "end-to-end events/s / COPY ceiling rows/s (1st size)": results[0]["events_per_s"]
        / results[0]["ceiling_rows_per_s"],
        "end-to-end events/s / COPY ceiling rows/s (largest)": largest["events_per_s"] / largest["ceiling_rows_per_s"],
        "time per event, largest / smallest": (largest["etl_seconds"] / largest["events"])
        / (results[0]["etl_seconds"] / results[0]["events"]),
    }
    for r in results:
        for anchor in ("reference", "duckdb"):
            if f"{anchor}_events_per_s" in r:
                ratios[f"etl.py events/s / {anchor} events/s ({r['label']})"] = (r["events_per_s"]
                                                                              / r[f"{anchor}_events_per_s"])
                ratios[f"{anchor} events/s / COPY ceiling rows/s ({r['label']})"] = (r[f"{anchor}_events_per_s"]
                                                                                   / r["ceiling_rows_per_s"])
    day_line, day_seconds, insights_wall = "", None, None
    if not args.no_day:
        data = work / f"data-{largest['label']}"
        config = work / f"bench-{largest['label']}.cfg"
        generate(data, sizes[-1], args.songs, extra_day=True)
        finished("generate one more day")
        day_steps = work / "etl-one-more-day.steps.jsonl"
        day_seconds, day_peak, _, day_err = run_etl(config, day_steps)
        finished("etl one more day")
        (work / "etl-one-more-day.log").write_text(day_err)
        day_phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in phases(day_steps).items())
        day_events = staged_events(day_steps)
        insights_wall, _, _, insights_err = run("insights.py", "--config", str(config), "--output",
                                                str(work / "insights"))
        (work / "insights.log").write_text(insights_err)  # each query's time
        finished("insights")
        ratios["incremental day / its share of a full load"] = day_seconds / (day_events / largest["events_per_s"])
        day_line = (f"one more day on the {largest['label']} warehouse: {day_events:,} events in {day_seconds:.1f} s "
                    f"(peak client RSS {day_peak} MB: {day_phases}); insights.py on it: {insights_wall:.1f} s")
    overall.close()
    lines = [f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
             f"embedded PostgreSQL; command: python tools/benchmark.py --sizes {args.sizes} --songs {args.songs}", "",
             "| size | events | COPY ceiling rows/s | etl.py s | events/s | stage events s | stage songs s | "
             "transform s | checks s | bookkeeping s | peak client RSS MB | database MB | lineage MB | statements "
             "(after staging) | rows written per event | reference events/s | DuckDB events/s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        p = r["phases"]
        anchors = " | ".join(f"{r[key]:,.0f}" if key in r else "—"
                             for key in ("reference_events_per_s", "duckdb_events_per_s"))
        lines.append(f"| {r['label']} | {r['events']:,} | {r['ceiling_rows_per_s']:,.0f} | {r['etl_seconds']:.1f} | "
                     f"{r['events_per_s']:,.0f} | {p['stage events']:.1f} | {p['stage songs']:.1f} | "
                     f"{p['repair + transform']:.1f} | {p['quality checks']:.1f} | {p['bookkeeping']:.1f} | "
                     f"{r['peak_rss_mb']} | {r['db_mb']:,.0f} | {r['lineage_mb']:,.0f} | "
                     f"{r['statements']} ({r['statements_after_staging']}) | "
                     f"{r['rows_written_per_event']:.2f} | {anchors} |")
    lines += ["", day_line, ""] if day_line else [""]
    lines += [f"- {name}: {value:.3f}" for name, value in ratios.items()]
    report = "\n".join(lines)
    print("\n" + report)
    (work / "results.md").write_text(report + "\n")
    (work / "results.json").write_text(json.dumps({"results": results, "ratios": ratios, "day_seconds": day_seconds,
                                                   "insights_seconds": insights_wall}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
