"""Opt-in: the whole pipeline and the insights report against real Redshift, reading the
public bucket, on a provisioned cluster and on a Redshift Serverless workgroup.

Each deployment runs only when its variables are set (it creates and drops the toolkit's
tables in that database):
  provisioned: SPARKIFY_REDSHIFT_HOST, SPARKIFY_REDSHIFT_DB, SPARKIFY_REDSHIFT_USER,
    SPARKIFY_REDSHIFT_PASSWORD, SPARKIFY_REDSHIFT_ROLE_ARN
  serverless: the same names with SERVERLESS_ after SPARKIFY_REDSHIFT_
    (SPARKIFY_REDSHIFT_SERVERLESS_HOST is the workgroup's endpoint,
    workgroup.account.region.redshift-serverless.amazonaws.com)
and optionally _PORT (5439) and _MANIFEST_PREFIX (an s3:// prefix the machine can write
and the role read) under either prefix. The machine running it needs AWS credentials that
can list s3://udacity-dend (any account can).
"""

from __future__ import annotations

import csv
import os
import re

import pytest
from conftest import run_script, write_config

import insight_queries as iq
import sql_queries as q

DEPLOYMENTS = {"provisioned": "SPARKIFY_REDSHIFT_", "serverless": "SPARKIFY_REDSHIFT_SERVERLESS_"}
REQUIRED = ("HOST", "DB", "USER", "PASSWORD", "ROLE_ARN")


def settings(deployment: str) -> dict[str, str]:
    """The deployment's variables, by name without the prefix; skips, naming what to set,
    when any is missing."""
    prefix = DEPLOYMENTS[deployment]
    missing = [prefix + name for name in REQUIRED if not os.environ.get(prefix + name)]
    if missing:
        pytest.skip(f"no Redshift {deployment} deployment configured (set {', '.join(missing)})")
    return {name: os.environ.get(prefix + name, "") for name in (*REQUIRED, "PORT", "MANIFEST_PREFIX")}


@pytest.fixture(scope="module", params=list(DEPLOYMENTS))
def loaded(request, tmp_path_factory):
    """create_tables.py and etl.py on the deployment, from the public bucket, once for its
    tests: the config, etl.py's result and the variables' values."""
    env = settings(request.param)
    tmp_path = tmp_path_factory.mktemp(request.param)
    if request.param == "serverless":
        assert env["HOST"].endswith(".redshift-serverless.amazonaws.com"), "not a Serverless workgroup's endpoint"
    manifest = env["MANIFEST_PREFIX"]
    config = write_config(
        tmp_path / "redshift.cfg", host=env["HOST"], port=int(env["PORT"] or 5439),
        db_name=env["DB"], user=env["USER"], password=env["PASSWORD"], arn=env["ROLE_ARN"],
        log_data="s3://udacity-dend/log_data", log_jsonpath="s3://udacity-dend/log_json_path.json",
        song_data="s3://udacity-dend/song_data",
        extra="REGION = us-west-2\n" + (f"MANIFEST_PREFIX = {manifest}\n" if manifest else ""))
    run_script("create_tables.py", "--config", str(config))
    result = run_script("etl.py", "--config", str(config), timeout=3600)
    return config, result, env


def test_the_real_bucket_loads_with_the_same_counts(loaded):
    config, result, env = loaded
    out = result.stdout
    assert re.search(r"songplays\s+6,820", out) and re.search(r"users\s+97\b", out)
    assert re.search(r"songs\s+14,896", out) and re.search(r"artists\s+9,553", out)
    assert re.search(r"time\s+6,813", out)
    assert "songplays matched to the catalog: 327 of 6,820" in out
    assert f"quality gate: all {len(q.quality_checks)} checks passed (on every row)" in out
    again = run_script("etl.py", "--config", str(config))
    assert "Nothing new to load" in again.stdout
    for secret in (env["PASSWORD"], env["ROLE_ARN"]):
        assert secret not in out + result.stderr


def test_every_insights_query_runs_on_it(loaded, tmp_path):
    """The report's SQL is checked offline (tests/test_redshift_sql.py); this runs it."""
    config, _, env = loaded
    report = run_script("insights.py", "--config", str(config), "--output", str(tmp_path / "report"), timeout=1800)
    for name, _, _ in iq.QUERIES:
        with open(tmp_path / "report" / f"{name}.csv", encoding="utf-8") as handle:
            assert len(list(csv.reader(handle))) > 1, name  # a header and rows
    assert env["PASSWORD"] not in report.stdout + report.stderr
