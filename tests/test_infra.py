"""infra.py against moto's server mode: the only stand-in for the AWS control plane here."""

from __future__ import annotations

import os
import subprocess
import sys

import boto3
import pytest
from conftest import DATA, ROOT, S3_ENV, write_config

from sparkify.config import load_config

PASSWORD = "Infra-Test-Pa55"


@pytest.fixture
def aws(moto_endpoint):
    env = dict(os.environ, **S3_ENV, AWS_ENDPOINT_URL=moto_endpoint, AWS_DEFAULT_REGION="us-west-2")
    clients = {name: boto3.client(name, endpoint_url=moto_endpoint, region_name="us-west-2",
                                  aws_access_key_id="x", aws_secret_access_key="y")
               for name in ("redshift", "iam")}
    yield env, clients
    for cluster in clients["redshift"].describe_clusters()["Clusters"]:
        clients["redshift"].delete_cluster(ClusterIdentifier=cluster["ClusterIdentifier"],
                                           SkipFinalClusterSnapshot=True)


def infra(env, *args, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "infra.py"), *args, "--poll", "1"], cwd=ROOT, env=env,
                          input=stdin, capture_output=True, text=True, timeout=120)


def config_for(tmp_path, cidr="203.0.113.5/32"):
    path = write_config(tmp_path / "aws.local.cfg", log_data=str(DATA / "log_data"),
                        song_data=str(DATA / "song_data"), password=PASSWORD, user="sparkify_admin")
    path.write_text(path.read_text() + f"\n[INFRA]\nCLUSTER_IDENTIFIER = sparkify-test\nNUM_NODES = 2\n"
                                       f"NODE_TYPE = ra3.large\nCIDR = {cidr}\n")
    return path


def test_create_is_idempotent_and_writes_the_endpoint_and_role(aws, tmp_path):
    env, clients = aws
    path = config_for(tmp_path)
    first = infra(env, "create", "--config", str(path))
    assert first.returncode == 0, first.stderr
    assert "IAM role sparkify-redshift-s3-read: created" in first.stdout
    assert "creating 2 x ra3.large in us-west-2" in first.stdout
    assert "Port 5439: opened to 203.0.113.5/32" in first.stdout
    config = load_config(path)
    assert config.engine == "redshift"
    assert config.host.startswith("sparkify-test.") and config.db_port == 5439
    assert config.iam_role_arn.endswith(":role/sparkify-redshift-s3-read")
    assert config.log_data.url == "s3://udacity-dend/log_data"
    # Nothing secret on the terminal.
    assert PASSWORD not in first.stdout + first.stderr and config.iam_role_arn not in first.stdout

    second = infra(env, "create", "--config", str(path))
    assert second.returncode == 0, second.stderr
    assert "exists" in second.stdout and "not creating another" in second.stdout
    assert "already open" in second.stdout
    clusters = clients["redshift"].describe_clusters()["Clusters"]
    assert [c["ClusterIdentifier"] for c in clusters] == ["sparkify-test"]
    assert clusters[0]["NumberOfNodes"] == 2 and clusters[0]["NodeType"] == "ra3.large"
    assert [r["IamRoleArn"] for r in clusters[0]["IamRoles"]] == [config.iam_role_arn]
    attached = clients["iam"].list_attached_role_policies(RoleName="sparkify-redshift-s3-read")["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == ["AmazonS3ReadOnlyAccess"]

    status = infra(env, "status", "--config", str(path))
    assert "Cluster sparkify-test in us-west-2: available, 2 x ra3.large, endpoint sparkify-test." in status.stdout


def test_delete_asks_first_then_removes_everything(aws, tmp_path):
    env, clients = aws
    path = config_for(tmp_path)
    assert infra(env, "create", "--config", str(path)).returncode == 0
    refused = infra(env, "delete", "--config", str(path), stdin="no\n")
    assert refused.returncode == 1 and "Not deleted." in refused.stdout
    assert len(clients["redshift"].describe_clusters()["Clusters"]) == 1
    deleted = infra(env, "delete", "--config", str(path), stdin="sparkify-test\n")
    assert deleted.returncode == 0, deleted.stderr
    assert clients["redshift"].describe_clusters()["Clusters"] == []
    with pytest.raises(clients["iam"].exceptions.NoSuchEntityException):
        clients["iam"].get_role(RoleName="sparkify-redshift-s3-read")
    text = path.read_text()
    assert "HOST = \n" in text and "ARN = \n" in text
    assert "No cluster sparkify-test" in infra(env, "status", "--config", str(path)).stdout


def test_a_weak_password_is_refused_before_anything_is_created(aws, tmp_path):
    env, clients = aws
    path = config_for(tmp_path)
    path.write_text(path.read_text().replace(PASSWORD, "short"))
    result = infra(env, "create", "--config", str(path))
    assert result.returncode == 1
    assert result.stderr.startswith("Error: ") and "DB_PASSWORD must be 8-64 characters" in result.stderr
    assert clients["redshift"].describe_clusters()["Clusters"] == []


def test_no_credentials_is_one_clear_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull,
               AWS_DEFAULT_REGION="us-west-2")
    result = infra(env, "status", "--config", str(config_for(tmp_path)))
    assert result.returncode == 1
    assert result.stderr.strip() == ("Error: no AWS credentials found; configure them as for the AWS CLI "
                                     "(aws configure, or AWS_PROFILE)")
