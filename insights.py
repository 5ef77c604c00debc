"""Writes Sparkify's insights report: headline findings, an offline HTML page and CSVs."""

import argparse
import sys
import time
from datetime import date
from pathlib import Path

from sparkify import bootstrap

bootstrap.use_project_environment()

from sparkify import cli  # noqa: E402
from sparkify.insights import NothingToReport, generate, summary_lines  # noqa: E402


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day: write it as YYYY-MM-DD") from None


def main(argv=None) -> int:
    parser = cli.parser(
        "insights.py",
        "Run the analysts' questions on the warehouse named by the config (after etl.py): "
        "who counts as a user, listener and new user; activity over time, listening hours, "
        "the conversion funnel of free users, weekly cohort retention, churn and downgrades, "
        "who the paying users are, top songs and artists over all plays, who listens (level, "
        "gender, location, platform), engagement, upgrades and downgrades, and data health. "
        "Prints the headline findings and writes a self-contained HTML report plus one CSV "
        "per table into the output folder. Every section covers one period: the days the "
        "warehouse has events on, or the days --since and --until give (UTC, both included).",
        "python insights.py --config dwh.cfg --since 2018-11-01 --until 2018-11-14",
    )
    parser.add_argument("--output", metavar="DIR", default=None,
                        help="folder for index.html and the CSVs (default: output/insights beside the config)")
    parser.add_argument("--since", metavar="YYYY-MM-DD", type=_day, default=None,
                        help="first day of the period, UTC (default: the first day with events)")
    parser.add_argument("--until", metavar="YYYY-MM-DD", type=_day, default=None,
                        help="last day of the period, included, UTC (default: the last day with events)")
    args = parser.parse_args(argv)
    if args.since and args.until and args.since > args.until:
        parser.error(f"--since {args.since} is after --until {args.until}")

    def job(config):
        started = time.perf_counter()
        folder = Path(args.output) if args.output else config.path.parent / "output" / "insights"
        page, found, _, _ = generate(config, folder.resolve(), args.since, args.until)
        print("\n".join(summary_lines(found, page, time.perf_counter() - started)))
        return 0

    return cli.main(args, job, extra_errors=(NothingToReport,))


if __name__ == "__main__":
    sys.exit(main())
