"""Writes Sparkify-like song files and event logs of any size, calibrated on data/."""

import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository, whose data/ calibrates the generator
if str(ROOT) not in sys.path:  # run as python tools/generate_data.py
    sys.path.insert(0, str(ROOT))

from sparkify import cli, generator  # noqa: E402 - after the path above
from sparkify.sources import S3  # noqa: E402


def main(argv=None) -> int:
    parser = cli.parser(
        "tools/generate_data.py",
        "Write song_data/ and log_data/ in the bucket's layout to a folder or an s3:// prefix: a catalog "
        "of --songs songs (the real ones first) and --days daily log files of about --events-per-day "
        "events from --users users, with the real data's page order, hours, levels, agents, locations, "
        "song popularity and catalog match rate. Same seed, same bytes. An s3:// target is written with "
        "the config's [S3] REGION and ENDPOINT_URL.",
        "python tools/generate_data.py output/data-1m --users 3000 --days 30 --events-per-day 33334 "
        "--songs 100000\n  then point [S3] LOG_DATA / SONG_DATA at output/data-1m/log_data and song_data")
    parser.add_argument("target", help="folder, or s3://bucket/prefix")
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--events-per-day", type=int, default=270)
    parser.add_argument("--songs", type=int, default=14896, help="catalog size")
    parser.add_argument("--start", default="2018-11-01", help="first day, YYYY-MM-DD (UTC)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--bad-share", type=float, default=0.0, help="share of log lines to spoil, e.g. 0.001")
    parser.add_argument("--logs-only", action="store_true",
                        help="write only log_data (e.g. one more day for a catalog written before, same seed)")
    args = parser.parse_args(argv)

    def job(config) -> int:
        try:
            start = datetime.strptime(args.start, "%Y-%m-%d").replace(tzinfo=timezone.utc)
        except ValueError:
            raise GeneratorError(f"--start {args.start} is not a date; write YYYY-MM-DD") from None
        s3 = S3(config) if args.target.startswith("s3://") else None
        started = time.perf_counter()
        cal = generator.calibrate(ROOT / "data")
        spec = generator.Spec(users=args.users, days=args.days, events_per_day=args.events_per_day,
                              catalog=args.songs, start=start, seed=args.seed, bad_share=args.bad_share,
                              write_catalog=not args.logs_only)
        try:
            counts = generator.generate(cal, spec, generator.Writer(args.target, s3))
        except ValueError as exc:  # the spec's own checks
            raise GeneratorError(str(exc)) from None
        print(f"Wrote {counts['events']:,} events ({counts['plays']:,} plays, {counts['bad_records']:,} spoiled) "
              f"over {counts['days']} days from {counts['users']:,} users, and {counts['songs']:,} songs, "
              f"to {args.target} in {time.perf_counter() - started:.1f} s")
        return 0

    return cli.main(args, job, (GeneratorError,))


class GeneratorError(Exception):
    """A --option the generator cannot use; the message names it."""


if __name__ == "__main__":
    sys.exit(main())
