"""[S3] as s3:// prefixes on the PostgreSQL engines, against a real S3 server on loopback.

The bucket holds a slice of data/: every log, every song file a play matches, and two
folders of the catalog (1,192 songs, few of them played) so that the song keys fill more
than one listing page: all that a load from S3 does, for a tenth of the uploads.
"""

from __future__ import annotations

import math
import re

import pytest
from conftest import DATA, S3_ENV, copy_files, run_main, snapshot, write_config
from oracle import compute, read_objects

from sparkify import sources
from sparkify.config import load_config

CATALOG_FOLDERS = ("A/A", "A/B")


@pytest.fixture(scope="module")
def data_slice(tmp_path_factory):
    """The slice as a local folder laid out like data/."""
    played = {song_id for song_id, _ in compute(DATA).plays.values() if song_id}
    songs = [path for path in sorted((DATA / "song_data").rglob("*.json"))
             if path.parent.parent.relative_to(DATA / "song_data").as_posix() in CATALOG_FOLDERS
             or any(record["song_id"] in played for record in read_objects(path))]
    folder = tmp_path_factory.mktemp("slice")
    copy_files(sorted((DATA / "log_data").rglob("*.json")), DATA, folder)
    copy_files(songs, DATA, folder)
    return folder


@pytest.fixture(scope="module")
def bucket(s3_server, data_slice):
    """The slice in a bucket laid out like udacity-dend."""
    client = s3_server.client()
    client.create_bucket(Bucket="udacity-dend")
    uploaded = s3_server.upload_tree("udacity-dend", data_slice / "log_data", "log_data")
    uploaded += s3_server.upload_tree("udacity-dend", data_slice / "song_data", "song_data")
    client.put_object(Bucket="udacity-dend", Key="log_json_path.json",
                      Body=(DATA / "log_json_path.json").read_bytes())
    assert uploaded == len(list(data_slice.rglob("*.json")))
    return s3_server


def s3_config(warehouse, endpoint: str, log_data="s3://udacity-dend/log_data"):
    write_config(warehouse.config, host=warehouse.server.host, port=warehouse.server.port,
                 db_name=warehouse.dbname, user=warehouse.server.user, password=warehouse.server.password,
                 log_data=log_data, log_jsonpath="s3://udacity-dend/log_json_path.json",
                 song_data="s3://udacity-dend/song_data",
                 extra=f"REGION = us-west-2\nENDPOINT_URL = {endpoint}\n")
    # [S3] is the last section write_config writes before extra: REGION and ENDPOINT_URL land there.
    return warehouse.config


def test_loading_from_the_bucket_equals_loading_from_the_folder(bucket, data_slice, warehouse, server):
    files = len(list(data_slice.rglob("*.json")))
    assert files > 30 + 1_000  # more than one page of song keys
    config = s3_config(warehouse, bucket.endpoint)
    run_main("create_tables.py", "--config", str(config))
    result = run_main("etl.py", "--config", str(config))
    assert re.search(r"songplays\s+6,820", result.stdout)
    assert "songplays matched to the catalog: 327 of 6,820" in result.stdout
    assert f"new or changed source files: {files:,}" in result.stdout
    from_s3 = snapshot(warehouse)
    keys = warehouse.query("select object_key, url from loaded_objects where object_key like '2018/11/2018-11-01%%'")
    assert keys == [("2018/11/2018-11-01-events.json",
                     "s3://udacity-dend/log_data/2018/11/2018-11-01-events.json")]
    # A rerun lists the bucket again and finds nothing new.
    again = run_main("etl.py", "--config", str(config))
    assert f"Nothing new to load: all {files:,} source files" in again.stdout

    # The same files from the local folder give the same warehouse, row for row.
    write_config(warehouse.config, host=server.host, port=server.port, db_name=warehouse.dbname,
                 user=server.user, password=server.password, log_data=str(data_slice / "log_data"),
                 song_data=str(data_slice / "song_data"))
    run_main("etl.py", "--config", str(warehouse.config), "--rebuild")
    assert snapshot(warehouse) == from_s3


def test_listing_reads_every_page_and_objects_stream(bucket, data_slice, tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "LIST_PAGE_SIZE", 100)
    config = write_config(tmp_path / "dwh.cfg", log_data=str(DATA / "log_data"), song_data=str(DATA / "song_data"),
                          extra=f"ENDPOINT_URL = {bucket.endpoint}\n")
    s3 = sources.S3(load_config(config))
    pages = []
    s3.client.meta.events.register("after-call.s3.ListObjectsV2",
                                   lambda parsed, **_: pages.append(len(parsed.get("Contents", []))))
    objects = s3.list("s3://udacity-dend/song_data/A/A")
    local = sorted(path.relative_to(data_slice / "song_data" / "A" / "A").as_posix()
                   for path in (data_slice / "song_data" / "A" / "A").rglob("*.json"))
    assert [obj.key for obj in objects] == local
    assert len(local) == 604
    assert pages == [100] * 6 + [4]
    assert len(pages) == math.ceil(len(local) / 100)
    assert objects[0].key == "A/TRAAAAK128F9318786.json"
    with objects[0].open() as handle:
        assert handle.read() == (DATA / "song_data" / "A" / "A" / "A" / "TRAAAAK128F9318786.json").read_bytes()


def test_a_missing_bucket_is_one_clear_line(bucket, warehouse):
    config = s3_config(warehouse, bucket.endpoint, log_data="s3://no-such-bucket/log_data")
    run_main("create_tables.py", "--config", str(config))
    result = run_main("etl.py", "--config", str(config), check=False)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: s3://no-such-bucket/log_data: the bucket does not exist")
    assert "Traceback" not in result.stderr
    assert S3_ENV["AWS_SECRET_ACCESS_KEY"] not in result.stderr
