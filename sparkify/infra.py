"""Infrastructure as code for the Redshift path: the IAM role, the cluster, its port.

Every step first looks for what already exists, so `create` run twice makes one role, one
security group and one cluster; `delete` removes them and asks first. Credentials come from
the standard AWS chain (environment, ~/.aws, SSO), never from dwh.cfg. Nothing secret is
printed: the role ARN and the password go only into the config file.

Least privilege: the role may list the buckets the config names and read only the objects
under its [S3] prefixes and the manifest prefix, nothing else in S3; the cluster sits in a
security group of its own that lets in only [INFRA] CIDR, on the cluster's port.
"""

from __future__ import annotations

import configparser
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

from .config import Config, ConfigError

# What an earlier version attached: read access to every bucket. create detaches it.
S3_READ_ONLY = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"
S3_READ_POLICY = "sparkify-s3-read"  # the role's inline policy, scoped to the config's sources
# Redshift's COPY reads only S3: local [S3] paths become the public bucket they mirror.
PUBLIC_BUCKET = {"LOG_DATA": "s3://udacity-dend/log_data", "LOG_JSONPATH": "s3://udacity-dend/log_json_path.json",
                 "SONG_DATA": "s3://udacity-dend/song_data"}
TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "redshift.amazonaws.com"},
                   "Action": "sts:AssumeRole"}],
}


class InfraError(Exception):
    pass


def s3_sources(config: Config) -> list[str]:
    """The s3:// prefixes the cluster's COPY reads: [S3] LOG_DATA, LOG_JSONPATH and
    SONG_DATA (the public bucket for a local path) and MANIFEST_PREFIX, with a slash after
    it, as the manifests are written under it."""
    urls = [source.url if (source := getattr(config, key.lower())).is_s3 else url
            for key, url in PUBLIC_BUCKET.items()]
    if config.manifest_prefix:
        urls.append(config.manifest_prefix + "/")
    return urls


def s3_read_policy(urls: list[str]) -> dict:
    """An IAM policy that lets COPY read exactly these prefixes. AWS, Redshift Database
    Developer Guide, "Permissions to access other AWS Resources": COPY from S3 needs to LIST
    the bucket and GET the objects it loads, the manifest file and the JSONPaths file. LIST
    is granted per bucket and only under its prefixes (the s3:prefix condition key of
    ListBucket, AWS, Service Authorization Reference: "Actions, resources, and condition keys
    for Amazon S3"), and GET on the objects under them (a COPY prefix takes every key that
    starts with it, hence the trailing *)."""
    prefixes: dict[str, set[str]] = {}
    objects = set()
    for url in urls:
        bucket, _, key = url[len("s3://"):].partition("/")
        prefixes.setdefault(bucket, set()).add(f"{key}*")
        objects.add(f"arn:aws:s3:::{bucket}/{key}*")
    listing = [{"Sid": f"ListTheSources{number}", "Effect": "Allow", "Action": "s3:ListBucket",
                "Resource": f"arn:aws:s3:::{bucket}", "Condition": {"StringLike": {"s3:prefix": sorted(keys)}}}
               for number, (bucket, keys) in enumerate(sorted(prefixes.items()), 1)]
    return {"Version": "2012-10-17", "Statement": [
        *listing,
        {"Sid": "ReadTheSources", "Effect": "Allow", "Action": "s3:GetObject", "Resource": sorted(objects)},
    ]}


@dataclass(frozen=True)
class Plan:
    """The [INFRA] section: what to create, with defaults for a small cluster."""

    cluster_id: str
    node_type: str
    nodes: int
    role_name: str
    region: str
    cidr: str


def read_plan(config: Config) -> Plan:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(config.path, encoding="utf-8")
    section = parser["INFRA"] if parser.has_section("INFRA") else {}

    def get(key, default):
        return (section.get(key, "") or "").strip().strip("'\"") or default

    try:
        nodes = int(get("NUM_NODES", "2"))
    except ValueError:
        raise ConfigError(f"{config.path}: [INFRA] NUM_NODES must be a whole number, e.g. 2") from None
    if nodes < 1:
        raise ConfigError(f"{config.path}: [INFRA] NUM_NODES must be 1 or more")
    cidr = get("CIDR", "")
    if cidr and not re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}/\d{1,2}", cidr):
        raise ConfigError(f"{config.path}: [INFRA] CIDR = {cidr} is not an IPv4 CIDR such as 203.0.113.5/32")
    return Plan(get("CLUSTER_IDENTIFIER", "sparkify-dwh"), get("NODE_TYPE", "ra3.large"), nodes,
                get("IAM_ROLE_NAME", "sparkify-redshift-s3-read"), get("REGION", config.s3_region), cidr)


def check_password(config: Config) -> None:
    password = config.db_password
    rules = (8 <= len(password) <= 64 and re.search("[A-Z]", password) and re.search("[a-z]", password)
             and re.search("[0-9]", password) and not re.search(r"[\s'\"\\/@]", password))
    if not rules:
        raise ConfigError(f"{config.path}: [CLUSTER] DB_PASSWORD must be 8-64 characters with an upper-case "
                          "letter, a lower-case letter and a digit, and no space, quote, \\, / or @")
    if not config.db_user:
        raise ConfigError(f"{config.path}: [CLUSTER] DB_USER is empty; name the cluster's admin user")


def write_keys(path: Path, values: dict[tuple[str, str], str]) -> None:
    """Sets [SECTION] KEY = value in a config file, keeping its comments and layout."""
    pending = dict(values)
    section = None
    section_end: dict[str, int] = {}  # where a missing key of each section goes
    out: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        header = re.match(r"\s*\[([^\]]+)\]\s*$", line)
        if header:
            section = header.group(1)
            out.append(line)
            section_end[section] = len(out)
            continue
        assignment = re.match(r"\s*([A-Za-z_]+)\s*[=:]", line)
        if section is not None and assignment and (section, assignment.group(1).upper()) in pending:
            line = f"{assignment.group(1).upper()} = {pending.pop((section, assignment.group(1).upper()))}"
        out.append(line)
        if section is not None and line.strip() and not line.lstrip().startswith(("#", ";")):
            section_end[section] = len(out)
    for (sec, key), value in sorted(pending.items(), key=lambda item: -section_end.get(item[0][0], -1)):
        if sec in section_end:
            out.insert(section_end[sec], f"{key} = {value}")
        else:
            out += ["", f"[{sec}]", f"{key} = {value}"]
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


class Infra:
    def __init__(self, config: Config, plan: Plan, say=print):
        import boto3
        import botocore.config

        settings = botocore.config.Config(region_name=plan.region, retries={"max_attempts": 8, "mode": "standard"})
        self.iam = boto3.client("iam", config=settings)
        self.redshift = boto3.client("redshift", config=settings)
        self.ec2 = boto3.client("ec2", config=settings)
        self.config, self.plan, self.say = config, plan, say

    # --- the role -----------------------------------------------------------------------
    def ensure_role(self) -> str:
        name = self.plan.role_name
        try:
            arn = self.iam.get_role(RoleName=name)["Role"]["Arn"]
            self.say(f"IAM role {name}: exists")
        except self.iam.exceptions.NoSuchEntityException:
            arn = self.iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST_POLICY),
                                       Description="Lets Redshift COPY read Sparkify's S3 data")["Role"]["Arn"]
            self.say(f"IAM role {name}: created")
        sources = s3_sources(self.config)
        self.iam.put_role_policy(RoleName=name, PolicyName=S3_READ_POLICY,
                                 PolicyDocument=json.dumps(s3_read_policy(sources)))
        attached = self.iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
        if S3_READ_ONLY in [p["PolicyArn"] for p in attached]:
            self.iam.detach_role_policy(RoleName=name, PolicyArn=S3_READ_ONLY)
            self.say(f"IAM role {name}: no longer reads every bucket (AmazonS3ReadOnlyAccess detached)")
        self.say(f"IAM role {name}: may read {', '.join(sources)} and nothing else in S3")
        return arn

    def delete_role(self) -> None:
        name = self.plan.role_name
        try:
            for policy in self.iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
                self.iam.detach_role_policy(RoleName=name, PolicyArn=policy["PolicyArn"])
            for policy_name in self.iam.list_role_policies(RoleName=name)["PolicyNames"]:
                self.iam.delete_role_policy(RoleName=name, PolicyName=policy_name)
            self.iam.delete_role(RoleName=name)
            self.say(f"IAM role {name}: deleted")
        except self.iam.exceptions.NoSuchEntityException:
            self.say(f"IAM role {name}: already gone")

    # --- the cluster ----------------------------------------------------------------------
    def cluster(self) -> dict | None:
        try:
            return self.redshift.describe_clusters(ClusterIdentifier=self.plan.cluster_id)["Clusters"][0]
        except self.redshift.exceptions.ClusterNotFoundFault:
            return None

    def port(self) -> int:
        return self.config.db_port if self.config.engine == "redshift" else 5439

    def ensure_cluster(self, role_arn: str, group: str, wait_delay: int = 30) -> dict:
        """The cluster, created in security group group when it does not exist; an existing
        one is moved into it."""
        plan, config = self.plan, self.config
        found = self.cluster()
        if found:
            self.say(f"Redshift cluster {plan.cluster_id}: exists ({found['ClusterStatus']}), not creating another")
            groups = [g["VpcSecurityGroupId"] for g in found.get("VpcSecurityGroups") or []]
            if groups != [group]:
                self.redshift.modify_cluster(ClusterIdentifier=plan.cluster_id, VpcSecurityGroupIds=[group])
                self.say(f"Redshift cluster {plan.cluster_id}: moved into security group {group} alone")
        else:
            settings = dict(ClusterIdentifier=plan.cluster_id, NodeType=plan.node_type, DBName=config.db_name,
                            MasterUsername=config.db_user, MasterUserPassword=config.db_password,
                            Port=self.port(), IamRoles=[role_arn], PubliclyAccessible=True,
                            VpcSecurityGroupIds=[group])
            if plan.nodes > 1:
                settings.update(ClusterType="multi-node", NumberOfNodes=plan.nodes)
            else:
                settings.update(ClusterType="single-node")
            self.redshift.create_cluster(**settings)
            self.say(f"Redshift cluster {plan.cluster_id}: creating {plan.nodes} x {plan.node_type} "
                     f"in {plan.region} (this takes several minutes)")
        started = time.monotonic()
        self.redshift.get_waiter("cluster_available").wait(
            ClusterIdentifier=plan.cluster_id, WaiterConfig={"Delay": wait_delay, "MaxAttempts": 120})
        cluster = self.cluster()
        if cluster is None:  # deleted by someone else while it was being created
            raise InfraError(f"cluster {plan.cluster_id} disappeared while it was being created; run create again")
        self.say(f"Redshift cluster {plan.cluster_id}: available after {time.monotonic() - started:.0f} s")
        return cluster

    # --- the security group ---------------------------------------------------------------
    @property
    def group_name(self) -> str:
        return f"{self.plan.cluster_id}-clients"

    def _default_vpc(self) -> str:
        vpcs = self.ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
        if not vpcs:
            raise InfraError("the account has no default VPC in this region; create one (aws ec2 create-default-vpc)")
        return vpcs[0]["VpcId"]

    def find_security_group(self) -> str | None:
        found = self.ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [self.group_name]}])
        return found["SecurityGroups"][0]["GroupId"] if found["SecurityGroups"] else None

    def ensure_security_group(self) -> str:
        """The cluster's own security group in the default VPC (where a cluster without a
        subnet group goes), not the VPC's default group, which every other instance shares."""
        group = self.find_security_group()
        if group:
            self.say(f"Security group {self.group_name}: exists")
            return group
        group = self.ec2.create_security_group(
            GroupName=self.group_name, VpcId=self._default_vpc(),
            Description=f"Sparkify ETL clients of Redshift cluster {self.plan.cluster_id}")["GroupId"]
        self.say(f"Security group {self.group_name}: created ({group}), no one let in yet")
        return group

    def delete_security_group(self) -> None:
        group = self.find_security_group()
        if group is None:
            self.say(f"Security group {self.group_name}: already gone")
            return
        self.ec2.delete_security_group(GroupId=group)
        self.say(f"Security group {self.group_name}: deleted")

    def open_port(self, cluster: dict, group: str) -> None:
        """Lets [INFRA] CIDR, and only it, reach the cluster's port through group."""
        if not self.plan.cidr:
            self.say("Port: not opened; set [INFRA] CIDR to your address (e.g. 203.0.113.5/32) and run create again")
            return
        port = cluster["Endpoint"]["Port"]
        try:
            self.ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[{
                "IpProtocol": "tcp", "FromPort": port, "ToPort": port,
                "IpRanges": [{"CidrIp": self.plan.cidr, "Description": "Sparkify ETL clients"}]}])
            self.say(f"Port {port}: opened to {self.plan.cidr} on security group {group}")
        except Exception as exc:  # botocore's ClientError; a duplicate rule is fine
            if "Duplicate" not in str(exc):
                raise
            self.say(f"Port {port}: already open to {self.plan.cidr} on security group {group}")

    def delete_cluster(self, wait_delay: int = 30) -> None:
        if not self.cluster():
            self.say(f"Redshift cluster {self.plan.cluster_id}: already gone")
            return
        self.redshift.delete_cluster(ClusterIdentifier=self.plan.cluster_id, SkipFinalClusterSnapshot=True)
        self.say(f"Redshift cluster {self.plan.cluster_id}: deleting (no final snapshot) ...")
        self.redshift.get_waiter("cluster_deleted").wait(
            ClusterIdentifier=self.plan.cluster_id, WaiterConfig={"Delay": wait_delay, "MaxAttempts": 120})
        self.say(f"Redshift cluster {self.plan.cluster_id}: deleted")


def explain_aws_error(exc: Exception) -> str:
    name = type(exc).__name__
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return "no AWS credentials found; configure them as for the AWS CLI (aws configure, or AWS_PROFILE)"
    if name in ("EndpointConnectionError", "ConnectTimeoutError"):
        return f"cannot reach AWS ({name}); check the network and [INFRA] REGION"
    response = getattr(exc, "response", None)
    if response:
        error = response.get("Error", {})
        operation = getattr(exc, "operation_name", "a request")
        return f"AWS refused {operation}: {error.get('Code', '')} {error.get('Message', '')}".strip()
    if name == "WaiterError":
        return f"gave up waiting ({exc}); run 'python infra.py status' to see where it stands"
    return " ".join(str(exc).split()) or name
