"""Loads the Sparkify JSON into the warehouse: staging with COPY, then the star schema."""

import sys

from sparkify import bootstrap

bootstrap.use_project_environment()

from sparkify import cli, pipeline  # noqa: E402


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
    parser.add_argument("--dry-run", action="store_true",
                        help="print, in order, the statements one run sends to the configured engine, "
                             "secrets masked; connect to nothing and change nothing")
    args = parser.parse_args(argv)
    committing = pipeline.Committing()  # an interruption after the COMMIT asks what landed

    def job(config):
        if args.dry_run:
            print(pipeline.dry_run_etl(config, rebuild=args.rebuild), end="")
            return 0
        summary = pipeline.run_etl(config, rebuild=args.rebuild, full_checks=args.full_checks, committing=committing)
        print("\n".join(summary.lines()))
        return 0

    return cli.main(args, job, (pipeline.EtlError,),
                    interrupted=lambda config: pipeline.interrupted_outcome(config, committing))


if __name__ == "__main__":
    sys.exit(main())
