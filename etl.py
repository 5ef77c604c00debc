"""Loads the Sparkify JSON into the warehouse: staging with COPY, then the star schema."""

import sys

from sparkify import bootstrap

bootstrap.use_project_environment()

from sparkify import cli, pipeline, status  # noqa: E402
from sparkify.dryrun import DryRunWarehouse  # noqa: E402
from sparkify.warehouse import connect  # noqa: E402


def main(argv=None) -> int:
    parser = cli.parser(
        "etl.py",
        "Load the song files and event logs named in [S3] that are new or changed since the "
        "last run: stage them (COPY), repair double-encoded names, merge them into the star "
        "schema with INSERT … SELECT and check the result, all in one transaction. Rerunning "
        "never duplicates a row; with nothing new it changes nothing. Ends with a summary: "
        "new files, rows per table, songplays matched to the catalog, bad records, checks "
        "and time taken.",
        "python etl.py --config dwh.cfg",
    )
    parser.add_argument("--rebuild", action="store_true",
                        help="empty the star schema and load every source file again, in one transaction")
    parser.add_argument("--full-checks", action="store_true",
                        help="run the quality gate on every row of the warehouse, not only on the rows this batch "
                             "wrote, and also when nothing is new (e.g. nightly); --rebuild always does")
    parser.add_argument("--status", action="store_true",
                        help="load nothing: print the last batches, failed batches and why, the latest event time, "
                             "recent schema drift and freshness against [ETL] FRESHNESS_WARN_AFTER and "
                             "FRESHNESS_ERROR_AFTER; exit 0 fresh, 1 warn, 2 error (or unreadable)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print, in order, the statements one run sends to the configured engine, "
                             "secrets masked; connect to nothing and change nothing")
    args = parser.parse_args(argv)
    committing = pipeline.Committing()  # an interruption after the COMMIT asks what landed

    reported: list[int] = []

    def job(config):
        if args.status and args.dry_run:
            recorder = DryRunWarehouse(config)
            status.status(recorder, config)
            print(recorder.text(), end="")
            return 0
        if args.status:
            with connect(config) as wh:
                found = status.status(wh, config)
                wh.rollback()
            print("\n".join(found.lines))
            reported.append(found.code)
            return found.code
        if args.dry_run:
            print(pipeline.dry_run_etl(config, rebuild=args.rebuild), end="")
            return 0
        summary = pipeline.run_etl(config, rebuild=args.rebuild, full_checks=args.full_checks, committing=committing)
        print("\n".join(summary.lines()))
        return 0

    code = cli.main(args, job, (pipeline.EtlError,),
                    interrupted=lambda config: pipeline.interrupted_outcome(config, committing))
    # A status that cannot be read is an error to a monitor (2), not a warning.
    return status.ERROR if args.status and not args.dry_run and not reported else code


if __name__ == "__main__":
    sys.exit(main())
