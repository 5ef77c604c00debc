"""Drops and re-creates the Sparkify warehouse tables (staging and star schema)."""

import sys

from sparkify import bootstrap

bootstrap.use_project_environment()

from sparkify import cli, schema  # noqa: E402


def main(argv=None) -> int:
    parser = cli.parser(
        "create_tables.py",
        "Drop and re-create every table of the warehouse named by the config: the staging "
        "tables, the star schema (songplays, users, songs, artists, time) and the toolkit's "
        "bookkeeping, and the analysts' views; grant the read-only analysts' role. Everything "
        "loaded before is deleted (it says how much); views analysts made on the tables stop it "
        "before anything is dropped. --if-missing keeps what is there.",
        "python create_tables.py --config dwh.cfg",
    )
    parser.add_argument("--dry-run", action="store_true",
                        help="print the statements for the configured engine, secrets masked, and run nothing")
    parser.add_argument("--if-missing", action="store_true",
                        help="drop nothing: create only the tables and views that do not exist yet, keeping "
                             "what is loaded (python3 tasks.py run does this)")
    args = parser.parse_args(argv)
    committed = []  # the tables were committed: an interruption after it must not say "nothing"

    def job(config):
        if args.dry_run:
            print(schema.dry_run_create_tables(config), end="")
            return 0
        done = schema.create_tables(config, if_missing=args.if_missing, committed=lambda: committed.append(True))
        print("\n".join(done.lines(config.describe_target())))
        return 0

    def interrupted(config) -> str:
        if not committed:
            return cli.NOTHING_COMMITTED
        return ("Interrupted after the tables were committed, while granting the analysts' role; "
                "python create_tables.py --if-missing grants it without dropping anything")

    return cli.main(args, job, (schema.SchemaError,), interrupted=interrupted)


if __name__ == "__main__":
    sys.exit(main())
