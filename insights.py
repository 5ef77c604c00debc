"""Writes Sparkify's insights report: headline findings, an offline HTML page and CSVs."""

import sys
import time
from pathlib import Path

from sparkify import cli
from sparkify.insights import generate, summary_lines


def main(argv=None) -> int:
    parser = cli.parser(
        "insights.py",
        "Run the analysts' questions on the warehouse named by the config (after etl.py): "
        "activity over time, listening hours, top songs and artists over all plays, who "
        "listens (level, gender, location, platform), engagement, upgrades and downgrades, "
        "and data health. Prints the headline findings and writes a self-contained HTML "
        "report plus one CSV per table into the output folder.",
        "python insights.py --config dwh.cfg --output output/insights",
    )
    parser.add_argument("--output", metavar="DIR", default=None,
                        help="folder for index.html and the CSVs (default: output/insights beside the config)")
    args = parser.parse_args(argv)

    def job(config):
        started = time.perf_counter()
        folder = Path(args.output) if args.output else config.path.parent / "output" / "insights"
        page, found, _ = generate(config, folder.resolve())
        print("\n".join(summary_lines(found, page, time.perf_counter() - started)))
        return 0

    return cli.main(args, job)


if __name__ == "__main__":
    sys.exit(main())
