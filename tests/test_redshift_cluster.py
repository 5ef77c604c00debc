"""Opt-in: the whole pipeline against a real Redshift cluster, reading the public bucket.

Runs only when these are set (it creates and drops the toolkit's tables in that database):
  SPARKIFY_REDSHIFT_HOST, SPARKIFY_REDSHIFT_DB, SPARKIFY_REDSHIFT_USER, SPARKIFY_REDSHIFT_PASSWORD,
  SPARKIFY_REDSHIFT_ROLE_ARN, and optionally SPARKIFY_REDSHIFT_PORT (5439),
  SPARKIFY_REDSHIFT_MANIFEST_PREFIX (an s3:// prefix the machine can write and the role read).
The machine running it needs AWS credentials that can list s3://udacity-dend (any account can).
"""

from __future__ import annotations

import os
import re

import pytest
from conftest import run_script, write_config

import sql_queries as q

REQUIRED = ("SPARKIFY_REDSHIFT_HOST", "SPARKIFY_REDSHIFT_DB", "SPARKIFY_REDSHIFT_USER",
            "SPARKIFY_REDSHIFT_PASSWORD", "SPARKIFY_REDSHIFT_ROLE_ARN")
missing = [name for name in REQUIRED if not os.environ.get(name)]
pytestmark = pytest.mark.skipif(bool(missing), reason=f"no Redshift cluster configured (set {', '.join(missing)})")


def test_the_real_bucket_loads_into_a_real_cluster_with_the_same_counts(tmp_path):
    env = os.environ
    manifest = env.get("SPARKIFY_REDSHIFT_MANIFEST_PREFIX", "")
    config = write_config(
        tmp_path / "redshift.cfg", host=env["SPARKIFY_REDSHIFT_HOST"],
        port=int(env.get("SPARKIFY_REDSHIFT_PORT", 5439)),
        db_name=env["SPARKIFY_REDSHIFT_DB"], user=env["SPARKIFY_REDSHIFT_USER"],
        password=env["SPARKIFY_REDSHIFT_PASSWORD"], arn=env["SPARKIFY_REDSHIFT_ROLE_ARN"],
        log_data="s3://udacity-dend/log_data", log_jsonpath="s3://udacity-dend/log_json_path.json",
        song_data="s3://udacity-dend/song_data",
        extra="REGION = us-west-2\n" + (f"MANIFEST_PREFIX = {manifest}\n" if manifest else ""))
    run_script("create_tables.py", "--config", str(config))
    result = run_script("etl.py", "--config", str(config), timeout=3600)
    out = result.stdout
    assert re.search(r"songplays\s+6,820", out) and re.search(r"users\s+97\b", out)
    assert re.search(r"songs\s+14,896", out) and re.search(r"artists\s+9,553", out)
    assert re.search(r"time\s+6,813", out)
    assert "songplays matched to the catalog: 327 of 6,820" in out
    assert f"quality gate: all {len(q.quality_checks)} checks passed (on every row)" in out
    again = run_script("etl.py", "--config", str(config))
    assert "Nothing new to load" in again.stdout
    for secret in (env["SPARKIFY_REDSHIFT_PASSWORD"], env["SPARKIFY_REDSHIFT_ROLE_ARN"]):
        assert secret not in out + result.stderr
