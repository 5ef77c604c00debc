"""Creates, shows and deletes Sparkify's AWS infrastructure: an IAM role, a security group and a
Redshift cluster."""

import argparse
import sys

from sparkify import bootstrap

bootstrap.use_project_environment()

from botocore.exceptions import BotoCoreError, ClientError  # noqa: E402

from sparkify import cli  # noqa: E402
from sparkify.config import Config  # noqa: E402
from sparkify.infra import (  # noqa: E402
    PUBLIC_BUCKET,
    Infra,
    InfraError,
    check_password,
    explain_aws_error,
    read_plan,
    write_keys,
)

NOTES = """\
[INFRA] keys (all optional):
  CLUSTER_IDENTIFIER  default sparkify-dwh
  NODE_TYPE           default ra3.large
  NUM_NODES           default 2 (1 makes a single-node cluster)
  IAM_ROLE_NAME       default sparkify-redshift-s3-read
  REGION              default [S3] REGION, i.e. us-west-2 where the public bucket is
  CIDR                the client addresses allowed to connect, e.g. 203.0.113.5/32
                      (the only ones the cluster's own security group lets in)
The cluster uses [CLUSTER] DB_NAME, DB_USER and DB_PASSWORD; AWS credentials come from the
standard chain (aws configure, AWS_PROFILE, environment), never from the config file.

"""

EXAMPLE = """cp dwh.cfg aws.local.cfg     # git-ignored: it will hold the endpoint and role ARN
  python infra.py create --config aws.local.cfg
  python infra.py status --config aws.local.cfg
  python infra.py delete --config aws.local.cfg"""


def create(config: Config, infra: Infra, poll: int) -> int:
    check_password(config)
    role_arn = infra.ensure_role()
    group = infra.ensure_security_group()
    cluster = infra.ensure_cluster(role_arn, group, wait_delay=poll)
    infra.open_port(cluster, group)
    endpoint = cluster["Endpoint"]
    keys = {("CLUSTER", "HOST"): endpoint["Address"], ("CLUSTER", "DB_PORT"): str(endpoint["Port"]),
            ("IAM_ROLE", "ARN"): role_arn}
    for key, url in PUBLIC_BUCKET.items():  # as the role's policy has them (infra.s3_sources)
        if not getattr(config, key.lower()).is_s3:
            keys[("S3", key)] = url
    write_keys(config.path, keys)
    print(f"Wrote HOST, DB_PORT and [IAM_ROLE] ARN into {config.path.name}"
          + (" and pointed [S3] at s3://udacity-dend" if ("S3", "LOG_DATA") in keys else "")
          + f". Next: python create_tables.py --config {config.path.name}")
    return 0


def status(infra: Infra) -> int:
    plan = infra.plan
    cluster = infra.cluster()
    if cluster is None:
        print(f"No cluster {plan.cluster_id} in {plan.region}.")
    else:
        endpoint = cluster.get("Endpoint") or {}
        print(f"Cluster {plan.cluster_id} in {plan.region}: {cluster['ClusterStatus']}, "
              f"{cluster.get('NumberOfNodes', 1)} x {cluster['NodeType']}, "
              f"endpoint {endpoint.get('Address', '-')}:{endpoint.get('Port', '-')}")
    return 0


def delete(config: Config, infra: Infra, poll: int, confirmed: bool) -> int:
    plan = infra.plan
    if not confirmed:
        try:
            answer = input(f"Delete cluster {plan.cluster_id} and all its data, its security group and role "
                           f"{plan.role_name}? Type the cluster identifier to confirm: ").strip()
        except EOFError:
            raise InfraError("no answer to the confirmation; pass --yes to delete without asking") from None
        if answer != plan.cluster_id:
            print("Not deleted.")
            return 1
    infra.delete_cluster(wait_delay=poll)
    infra.delete_security_group()
    infra.delete_role()
    write_keys(config.path, {("CLUSTER", "HOST"): "", ("IAM_ROLE", "ARN"): ""})
    print(f"Cleared HOST and [IAM_ROLE] ARN in {config.path.name}: it points at the embedded engine again.")
    return 0


def main(argv=None) -> int:
    parser = cli.parser(
        "infra.py",
        "create: make (or find) the IAM role that lets Redshift read the config's S3 sources (and nothing "
        "else), the cluster's own security group and the cluster, open its port to [INFRA] CIDR, wait until "
        "it is available and write HOST, DB_PORT and the role ARN into the config. status: show the cluster. "
        "delete: remove cluster, security group and role (asks first).",
        EXAMPLE, notes=NOTES)
    parser.add_argument("action", choices=("create", "status", "delete"))
    parser.add_argument("--yes", action="store_true", help="delete without asking")
    parser.add_argument("--poll", type=int, default=30, help=argparse.SUPPRESS)  # seconds between status checks
    args = parser.parse_args(argv)

    def job(config: Config) -> int:
        try:
            infra = Infra(config, read_plan(config))
            if args.action == "create":
                return create(config, infra, args.poll)
            if args.action == "status":
                return status(infra)
            return delete(config, infra, args.poll, args.yes)
        except (BotoCoreError, ClientError) as exc:  # every AWS failure ends as one line
            raise InfraError(explain_aws_error(exc)) from None

    return cli.main(args, job, (InfraError,))


if __name__ == "__main__":
    sys.exit(main())
