"""infra.py against moto's server mode: the only stand-in for the AWS control plane here."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import boto3
import pytest
from conftest import DATA, ROOT, S3_ENV, write_config

from sparkify.config import ConfigError, load_config

PASSWORD = "Infra-Test-Pa55"


@pytest.fixture
def aws(moto_endpoint):
    env = dict(os.environ, **S3_ENV, AWS_ENDPOINT_URL=moto_endpoint, AWS_DEFAULT_REGION="us-west-2")
    clients = {name: boto3.client(name, endpoint_url=moto_endpoint, region_name="us-west-2",
                                  aws_access_key_id="x", aws_secret_access_key="y")
               for name in ("redshift", "iam", "ec2")}
    yield env, clients
    for cluster in clients["redshift"].describe_clusters()["Clusters"]:
        clients["redshift"].delete_cluster(ClusterIdentifier=cluster["ClusterIdentifier"],
                                           SkipFinalClusterSnapshot=True)
    for group in own_groups(clients):
        clients["ec2"].delete_security_group(GroupId=group["GroupId"])
    iam = clients["iam"]
    for role in iam.list_roles()["Roles"]:
        if role["RoleName"].startswith("sparkify"):
            for name in iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"]:
                iam.delete_role_policy(RoleName=role["RoleName"], PolicyName=name)
            for policy in iam.list_attached_role_policies(RoleName=role["RoleName"])["AttachedPolicies"]:
                iam.detach_role_policy(RoleName=role["RoleName"], PolicyArn=policy["PolicyArn"])
            iam.delete_role(RoleName=role["RoleName"])


def own_groups(clients) -> list[dict]:
    """The security groups infra.py made (moto's default VPC holds only its default group)."""
    return [g for g in clients["ec2"].describe_security_groups()["SecurityGroups"] if g["GroupName"] != "default"]


def infra(env, *args, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "infra.py"), *args, "--poll", "1"], cwd=ROOT, env=env,
                          input=stdin, capture_output=True, text=True, timeout=120)


def config_for(tmp_path, cidr="203.0.113.5/32", extra=""):
    path = write_config(tmp_path / "aws.local.cfg", log_data=str(DATA / "log_data"),
                        song_data=str(DATA / "song_data"), password=PASSWORD, user="sparkify_admin", extra=extra)
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
    # The role reads the sources, not every bucket (AWS: COPY needs LIST on the bucket, GET on
    # the objects it loads and on the JSONPaths file).
    attached = clients["iam"].list_attached_role_policies(RoleName="sparkify-redshift-s3-read")["AttachedPolicies"]
    assert attached == []
    policy = clients["iam"].get_role_policy(RoleName="sparkify-redshift-s3-read", PolicyName="sparkify-s3-read")
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    # LIST only under the sources' prefixes (the s3:prefix condition), one statement per bucket.
    assert statements["ListTheSources1"] == {
        "Sid": "ListTheSources1", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::udacity-dend",
        "Condition": {"StringLike": {"s3:prefix": ["log_data*", "log_json_path.json*", "song_data*"]}}}
    assert statements["ReadTheSources"]["Action"] == "s3:GetObject"
    assert statements["ReadTheSources"]["Resource"] == ["arn:aws:s3:::udacity-dend/log_data*",
                                                        "arn:aws:s3:::udacity-dend/log_json_path.json*",
                                                        "arn:aws:s3:::udacity-dend/song_data*"]
    assert "may read s3://udacity-dend/log_data, s3://udacity-dend/log_json_path.json, " in first.stdout
    # The cluster is in a security group of its own, open on its port to the CIDR alone.
    [group] = own_groups(clients)
    assert group["GroupName"] == "sparkify-test-clients"
    assert [g["VpcSecurityGroupId"] for g in clusters[0]["VpcSecurityGroups"]] == [group["GroupId"]]
    assert [(p["IpProtocol"], p["FromPort"], p["ToPort"], [r["CidrIp"] for r in p["IpRanges"]])
            for p in group["IpPermissions"]] == [("tcp", 5439, 5439, ["203.0.113.5/32"])]

    status = infra(env, "status", "--config", str(path))
    assert "Cluster sparkify-test in us-west-2: available, 2 x ra3.large, endpoint sparkify-test." in status.stdout


def test_the_policy_names_a_manifest_prefix_and_the_buckets_of_other_sources(aws, tmp_path):
    env, clients = aws
    path = config_for(tmp_path, extra="MANIFEST_PREFIX = s3://sparkify-work/etl/manifests/\n")
    path.write_text(path.read_text().replace(f"SONG_DATA = {DATA / 'song_data'}", "SONG_DATA = s3://our-songs/2024"))
    result = infra(env, "create", "--config", str(path))
    assert result.returncode == 0, result.stderr
    policy = clients["iam"].get_role_policy(RoleName="sparkify-redshift-s3-read", PolicyName="sparkify-s3-read")
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    assert [(s["Resource"], s["Condition"]["StringLike"]["s3:prefix"]) for s in statements.values()
            if s["Action"] == "s3:ListBucket"] == [("arn:aws:s3:::our-songs", ["2024*"]),
                                                   ("arn:aws:s3:::sparkify-work", ["etl/manifests/*"]),
                                                   ("arn:aws:s3:::udacity-dend", ["log_data*", "log_json_path.json*"])]
    assert statements["ReadTheSources"]["Resource"] == [
        "arn:aws:s3:::our-songs/2024*", "arn:aws:s3:::sparkify-work/etl/manifests/*",
        "arn:aws:s3:::udacity-dend/log_data*", "arn:aws:s3:::udacity-dend/log_json_path.json*"]
    assert json.dumps(policy["PolicyDocument"]).count("*") == 8  # no bucket read or listed whole


def test_a_role_and_cluster_made_before_are_narrowed_and_moved(aws, tmp_path):
    """An earlier infra.py attached AmazonS3ReadOnlyAccess and left the cluster in the VPC's
    default security group: create detaches the one and moves the other."""
    env, clients = aws
    path = config_for(tmp_path)
    iam = clients["iam"]
    iam.create_role(RoleName="sparkify-redshift-s3-read", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"Service": "redshift.amazonaws.com"}}]}))
    iam.attach_role_policy(RoleName="sparkify-redshift-s3-read",
                           PolicyArn="arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess")
    default = clients["ec2"].describe_security_groups(
        Filters=[{"Name": "group-name", "Values": ["default"]}])["SecurityGroups"][0]["GroupId"]
    clients["redshift"].create_cluster(ClusterIdentifier="sparkify-test", NodeType="ra3.large",
                                       MasterUsername="sparkify_admin", MasterUserPassword=PASSWORD,
                                       ClusterType="single-node", VpcSecurityGroupIds=[default])
    result = infra(env, "create", "--config", str(path))
    assert result.returncode == 0, result.stderr
    assert "AmazonS3ReadOnlyAccess detached" in result.stdout and "moved into security group" in result.stdout
    assert iam.list_attached_role_policies(RoleName="sparkify-redshift-s3-read")["AttachedPolicies"] == []
    [group] = own_groups(clients)
    [cluster] = clients["redshift"].describe_clusters()["Clusters"]
    assert [g["VpcSecurityGroupId"] for g in cluster["VpcSecurityGroups"]] == [group["GroupId"]]


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
    assert own_groups(clients) == []
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


def test_a_bucket_copy_reads_in_another_region_than_region_is_refused_before_anything_runs(
        aws, tmp_path, monkeypatch):
    """Redshift's COPY reads its manifest and data only in [S3] REGION: a MANIFEST_PREFIX
    bucket elsewhere would fail every COPY, so the run refuses it first, naming the key."""
    from sparkify import redshift, sources

    env, _ = aws
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "x")
    for bucket, region in (("sparkify-eu-work", "eu-west-1"), ("sparkify-us-work", "us-west-2")):
        boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=region, aws_access_key_id="x",
                     aws_secret_access_key="y").create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    for bucket, fails in (("sparkify-us-work", False), ("sparkify-eu-work", True)):
        path = config_for(tmp_path, extra=f"MANIFEST_PREFIX = s3://{bucket}/manifests\n"
                                          f"ENDPOINT_URL = {env['AWS_ENDPOINT_URL']}\n")
        config = load_config(path)
        if fails:
            with pytest.raises(ConfigError, match=r"\[S3\] MANIFEST_PREFIX = s3://sparkify-eu-work/manifests is in a "
                                                  r"bucket in eu-west-1, but \[S3\] REGION = us-west-2"):
                redshift.check_regions(config, sources.S3(config))
        else:
            redshift.check_regions(config, sources.S3(config))
