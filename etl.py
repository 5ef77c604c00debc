"""Loads the Sparkify JSON into the warehouse: staging with COPY, then the star schema."""

import sys

from sparkify import cli, pipeline


def main(argv=None) -> int:
    args = cli.parser(
        "etl.py",
        "Stage the song files and event logs named in [S3] (COPY), repair double-encoded "
        "names, and merge them into the star schema with INSERT … SELECT. Rerunning it "
        "never duplicates a row. Ends with a summary: rows per table, songplays matched to "
        "the catalog, bad records and time taken.",
        "python etl.py --config dwh.cfg",
    ).parse_args(argv)

    def job(config):
        summary = pipeline.run_etl(config)
        print("\n".join(summary.lines()))
        return 0

    return cli.main(args, job, (pipeline.EtlError,))


if __name__ == "__main__":
    sys.exit(main())
