"""Writes Sparkify-like song files and event logs of any size, calibrated on data/."""

import argparse
import sys
import time
from pathlib import Path

from sparkify import generator
from sparkify.config import ConfigError, load_config
from sparkify.sources import S3, SourceError

ROOT = Path(__file__).resolve().parent


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="generate_data.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Write song_data/ and log_data/ in the bucket's layout to a folder or an s3:// prefix: "
                    "a catalog of --songs songs (the real ones first) and --days daily log files of about "
                    "--events-per-day events from --users users, with the real data's page order, hours, "
                    "levels, agents, locations, song popularity and catalog match rate. Same seed, same bytes.",
        epilog="example:\n  python generate_data.py output/data-1m --users 3000 --days 30 --events-per-day 33334 "
               "--songs 100000\n  then point [S3] LOG_DATA / SONG_DATA at output/data-1m/log_data and song_data")
    parser.add_argument("target", help="folder, or s3://bucket/prefix (S3 settings from --config)")
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--events-per-day", type=int, default=270)
    parser.add_argument("--songs", type=int, default=14896, help="catalog size")
    parser.add_argument("--start", default="2018-11-01", help="first day, YYYY-MM-DD (UTC)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--bad-share", type=float, default=0.0, help="share of log lines to spoil, e.g. 0.001")
    parser.add_argument("--logs-only", action="store_true",
                        help="write only log_data (e.g. one more day for a catalog written before, same seed)")
    parser.add_argument("--config", default=None, help="config whose [S3] REGION / ENDPOINT_URL to use for s3://")
    args = parser.parse_args(argv)
    try:
        from datetime import datetime, timezone

        start = datetime.strptime(args.start, "%Y-%m-%d").replace(tzinfo=timezone.utc)
        s3 = S3(load_config(args.config)) if args.target.startswith("s3://") else None
        started = time.perf_counter()
        cal = generator.calibrate(ROOT / "data")
        spec = generator.Spec(users=args.users, days=args.days, events_per_day=args.events_per_day,
                              catalog=args.songs, start=start, seed=args.seed, bad_share=args.bad_share,
                              write_catalog=not args.logs_only)
        counts = generator.generate(cal, spec, generator.Writer(args.target, s3))
    except (ValueError, ConfigError, SourceError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    print(f"Wrote {counts['events']:,} events ({counts['plays']:,} plays, {counts['bad_records']:,} spoiled) "
          f"over {counts['days']} days from {counts['users']:,} users, and {counts['songs']:,} songs, "
          f"to {args.target} in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
