"""What every script shares: --config and --help, logging, and one-line errors."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable

from .config import DEFAULT_CONFIG, Config, ConfigError, load_config
from .embedded import EmbeddedServerError
from .sources import SourceError
from .warehouse import WarehouseError

CONFIG_HELP = f"""\
configuration (dwh.cfg, the course template's sections and keys):
  [CLUSTER] HOST DB_NAME DB_USER DB_PASSWORD DB_PORT
      HOST empty      the embedded PostgreSQL: started by the toolkit itself, data kept
                      in .pgdata/ beside the config file, no server to install
      HOST set        a server reached over psycopg2: Redshift when HOST ends in
                      .redshift.amazonaws.com, PostgreSQL otherwise
                      (ENGINE = postgres|redshift overrides the guess)
  [CLUSTER] ANALYST_ROLE
                      the read-only role create_tables.py grants SELECT on the star
                      schema, views and summaries (optional, default sparkify_analyst;
                      empty: none)
  [IAM_ROLE] ARN      the role Redshift's COPY reads S3 with (Redshift only)
  [S3] LOG_DATA LOG_JSONPATH SONG_DATA
                      s3:// URLs or local paths (relative to the config file)
  [S3] REGION         the bucket's region, for listing and COPY
                      (optional, default us-west-2, where udacity-dend is)
  [S3] ENDPOINT_URL   an S3-compatible store (http:// or https://) instead of AWS
                      (optional)
  [S3] MANIFEST_PREFIX
                      Redshift: an s3:// prefix where each batch writes a manifest of
                      exactly its new files for COPY (optional; without it COPY reads
                      the whole prefix and the merge drops what is already loaded)
  [ETL] MAXERROR      a load fails when a table rejects this many records or more
                      (0 or 1: the first; optional, default 100, at most 100000);
                      rejected records go to load_errors
  [ETL] ACCEPTINVCHARS
                      load invalid UTF-8 with '?' (noted in load_errors) instead of
                      rejecting the record (optional, default true)
  [ETL] TRUNCATECOLUMNS
                      cut values longer than their column instead of rejecting the
                      record (optional, default false)
  [ETL] SCHEMA_CONTRACT
                      report: record schema drift (new, vanished or retyped keys) and
                      load; freeze: fail the batch on any, naming file and line
                      (optional, default report)
  [ETL] FRESHNESS_WARN_AFTER FRESHNESS_ERROR_AFTER
                      etl.py --status exits 1 / 2 when the newest event is older,
                      e.g. 36h and 3d (optional; empty: not checked)
  [INFRA] ...         infra.py only: see python infra.py --help

default config: {DEFAULT_CONFIG.name} beside the scripts
"""

ERRORS = (ConfigError, WarehouseError, EmbeddedServerError, SourceError)


def parser(prog: str, description: str, example: str, notes: str = "") -> argparse.ArgumentParser:
    """The parser every script starts from: --config, -q, and an epilog with the config keys,
    any notes of the script's own and an example."""
    p = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=f"{notes}{CONFIG_HELP}\nexample:\n  {example}\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", metavar="PATH", default=None,
                   help=f"config file to use (default: {DEFAULT_CONFIG.name} beside the scripts)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the summary and errors")
    return p


NOTHING_COMMITTED = "Error: interrupted; nothing of this run was committed"


def main(args: argparse.Namespace, job: Callable[[Config], int], extra_errors: tuple = (),
         interrupted: Callable[[Config], str] | None = None) -> int:
    """Runs job(config); known failures become 'Error: …' on stderr and exit code 1. An
    interruption (Ctrl-C, SIGTERM) exits with 130 and says what it left: interrupted(config),
    for a job that may have committed, asks the warehouse; otherwise nothing was committed."""
    quiet = args.quiet or getattr(args, "dry_run", False)  # a dry run prints statements, not progress
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
    )
    # The AWS SDK tells at INFO level where it found credentials and endpoints: not progress.
    for library in ("boto3", "botocore", "urllib3"):
        logging.getLogger(library).setLevel(logging.WARNING)
    config = None
    # SIGTERM (kill, timeout) and SIGHUP (the terminal closed) end a run as Ctrl-C does.
    stops = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {signum: signal.signal(signum, _interrupt) for signum in stops}
    try:
        config = load_config(args.config)
        return job(config)
    except ERRORS + extra_errors as exc:
        message = str(exc)
        if config is not None:
            message = config.redact(message)
        print(f"Error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        outcome = NOTHING_COMMITTED
        if interrupted is not None and config is not None:
            outcome = config.redact(interrupted(config))
        print(outcome, file=sys.stderr)
        return 130
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _interrupt(signum, frame):
    """SIGTERM and SIGHUP end a run as Ctrl-C does: the transaction rolls back and workers stop."""
    raise KeyboardInterrupt
