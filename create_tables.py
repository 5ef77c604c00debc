"""Drops and re-creates the Sparkify warehouse tables (staging and star schema)."""

import sys

from sparkify import cli, pipeline


def main(argv=None) -> int:
    args = cli.parser(
        "create_tables.py",
        "Drop and re-create every table of the warehouse named by the config: the staging "
        "tables, the star schema (songplays, users, songs, artists, time) and the toolkit's "
        "bookkeeping. Everything loaded before is deleted.",
        "python create_tables.py --config dwh.cfg",
    ).parse_args(argv)

    def job(config):
        tables = pipeline.create_tables(config)
        print(f"Created {len(tables)} tables on {config.describe_target()}: {', '.join(tables)}")
        return 0

    return cli.main(args, job, (pipeline.EtlError,))


if __name__ == "__main__":
    sys.exit(main())
