"""Drops and re-creates the Sparkify warehouse tables (staging and star schema)."""

import sys

from sparkify import cli, pipeline


def main(argv=None) -> int:
    parser = cli.parser(
        "create_tables.py",
        "Drop and re-create every table of the warehouse named by the config: the staging "
        "tables, the star schema (songplays, users, songs, artists, time) and the toolkit's "
        "bookkeeping. Everything loaded before is deleted.",
        "python create_tables.py --config dwh.cfg",
    )
    parser.add_argument("--dry-run", action="store_true",
                        help="print the statements for the configured engine, secrets masked, and run nothing")
    args = parser.parse_args(argv)

    def job(config):
        if args.dry_run:
            print(pipeline.dry_run_create_tables(config), end="")
            return 0
        tables = pipeline.create_tables(config)
        print(f"Created {len(tables)} tables on {config.describe_target()}: {', '.join(tables)}")
        return 0

    return cli.main(args, job, (pipeline.EtlError,))


if __name__ == "__main__":
    sys.exit(main())
