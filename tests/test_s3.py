"""[S3] as s3:// prefixes on the PostgreSQL engines, against a real S3 server on loopback."""

from __future__ import annotations

import re

import pytest
from conftest import DATA, S3_ENV, run_script, snapshot, write_config

from sparkify import sources
from sparkify.config import load_config


@pytest.fixture(scope="module")
def bucket(s3_server):
    """The real dataset in a bucket laid out like udacity-dend."""
    client = s3_server.client()
    client.create_bucket(Bucket="udacity-dend")
    uploaded = s3_server.upload_tree("udacity-dend", DATA / "log_data", "log_data")
    uploaded += s3_server.upload_tree("udacity-dend", DATA / "song_data", "song_data")
    client.put_object(Bucket="udacity-dend", Key="log_json_path.json",
                      Body=(DATA / "log_json_path.json").read_bytes())
    assert uploaded == 30 + 14896
    return s3_server


def s3_config(warehouse, endpoint: str, log_data="s3://udacity-dend/log_data"):
    write_config(warehouse.config, host=warehouse.server.host, port=warehouse.server.port,
                 db_name=warehouse.dbname, user=warehouse.server.user, password=warehouse.server.password,
                 log_data=log_data, log_jsonpath="s3://udacity-dend/log_json_path.json",
                 song_data="s3://udacity-dend/song_data",
                 extra=f"REGION = us-west-2\nENDPOINT_URL = {endpoint}\n")
    # [S3] is the last section write_config writes before extra: REGION and ENDPOINT_URL land there.
    return warehouse.config


def test_loading_from_the_bucket_equals_loading_from_the_folder(bucket, warehouse, server, tmp_path):
    config = s3_config(warehouse, bucket.endpoint)
    run_script("create_tables.py", "--config", str(config))
    result = run_script("etl.py", "--config", str(config), timeout=900)
    assert re.search(r"songplays\s+6,820", result.stdout)
    assert "songplays matched to the catalog: 327 of 6,820" in result.stdout
    assert "new or changed source files: 14,926" in result.stdout
    from_s3 = snapshot(warehouse)
    keys = warehouse.query("select object_key, url from loaded_objects where object_key like '2018/11/2018-11-01%%'")
    assert keys == [("2018/11/2018-11-01-events.json",
                     "s3://udacity-dend/log_data/2018/11/2018-11-01-events.json")]
    # A rerun lists the bucket again and finds nothing new.
    again = run_script("etl.py", "--config", str(config))
    assert "Nothing new to load: all 14,926 source files" in again.stdout

    # The same files from the local folder give the same warehouse, row for row.
    write_config(warehouse.config, host=server.host, port=server.port, db_name=warehouse.dbname,
                 user=server.user, password=server.password, log_data=str(DATA / "log_data"),
                 song_data=str(DATA / "song_data"))
    run_script("etl.py", "--config", str(warehouse.config), "--rebuild")
    assert snapshot(warehouse) == from_s3


def test_listing_is_paginated_and_objects_stream(bucket, tmp_path):
    config = write_config(tmp_path / "dwh.cfg", log_data=str(DATA / "log_data"), song_data=str(DATA / "song_data"),
                          extra=f"ENDPOINT_URL = {bucket.endpoint}\n")
    s3 = sources.S3(load_config(config))
    objects = s3.list("s3://udacity-dend/song_data/A/A")  # over 1,000 keys: several pages
    assert len(objects) == len(list((DATA / "song_data" / "A" / "A").rglob("*.json")))
    assert objects[0].key == "A/TRAAAAK128F9318786.json"
    with objects[0].open() as handle:
        assert handle.read() == (DATA / "song_data" / "A" / "A" / "A" / "TRAAAAK128F9318786.json").read_bytes()


def test_a_missing_bucket_is_one_clear_line(bucket, warehouse):
    config = s3_config(warehouse, bucket.endpoint, log_data="s3://no-such-bucket/log_data")
    run_script("create_tables.py", "--config", str(config))
    result = run_script("etl.py", "--config", str(config), check=False)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: s3://no-such-bucket/log_data: the bucket does not exist")
    assert "Traceback" not in result.stderr
    assert S3_ENV["AWS_SECRET_ACCESS_KEY"] not in result.stderr
