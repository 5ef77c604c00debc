"""Creates, shows and deletes Sparkify's AWS infrastructure: an IAM role, a security group and a
Redshift cluster."""

import argparse
import sys

from sparkify.config import ConfigError, load_config
from sparkify.infra import (
    PUBLIC_BUCKET,
    Infra,
    InfraError,
    check_password,
    explain_aws_error,
    read_plan,
    write_keys,
)

EPILOG = """\
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

example:
  cp dwh.cfg aws.local.cfg     # git-ignored: it will hold the endpoint and role ARN
  python infra.py create --config aws.local.cfg
  python infra.py status --config aws.local.cfg
  python infra.py delete --config aws.local.cfg
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="infra.py", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="create: make (or find) the IAM role that lets Redshift read the config's S3 sources "
                    "(and nothing else), the cluster's own security group and the cluster, open its port to "
                    "[INFRA] CIDR, wait until it is available and write HOST, DB_PORT and the role ARN into "
                    "the config. status: show the cluster. delete: remove cluster, security group and role "
                    "(asks first).")
    parser.add_argument("action", choices=("create", "status", "delete"))
    parser.add_argument("--config", metavar="PATH", default=None, help="config file (default: dwh.cfg)")
    parser.add_argument("--yes", action="store_true", help="delete without asking")
    parser.add_argument("--poll", type=int, default=30, help=argparse.SUPPRESS)  # seconds between status checks
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        plan = read_plan(config)
        infra = Infra(config, plan)
        if args.action == "create":
            check_password(config)
            role_arn = infra.ensure_role()
            group = infra.ensure_security_group()
            cluster = infra.ensure_cluster(role_arn, group, wait_delay=args.poll)
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
        elif args.action == "status":
            cluster = infra.cluster()
            if cluster is None:
                print(f"No cluster {plan.cluster_id} in {plan.region}.")
            else:
                endpoint = cluster.get("Endpoint") or {}
                print(f"Cluster {plan.cluster_id} in {plan.region}: {cluster['ClusterStatus']}, "
                      f"{cluster.get('NumberOfNodes', 1)} x {cluster['NodeType']}, "
                      f"endpoint {endpoint.get('Address', '-')}:{endpoint.get('Port', '-')}")
        else:
            if not args.yes:
                answer = input(f"Delete cluster {plan.cluster_id} and all its data, its security group and role "
                               f"{plan.role_name}? "
                               f"Type the cluster identifier to confirm: ").strip()
                if answer != plan.cluster_id:
                    print("Not deleted.")
                    return 1
            infra.delete_cluster(wait_delay=args.poll)
            infra.delete_security_group()
            infra.delete_role()
            write_keys(config.path, {("CLUSTER", "HOST"): "", ("IAM_ROLE", "ARN"): ""})
            print(f"Cleared HOST and [IAM_ROLE] ARN in {config.path.name}: it points at the embedded engine again.")
        return 0
    except (ConfigError, InfraError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except EOFError:
        print("Error: no answer to the confirmation; pass --yes to delete without asking", file=sys.stderr)
        return 1
    except Exception as exc:  # boto3/botocore errors of every kind end as one line
        if type(exc).__module__.split(".")[0] not in ("botocore", "boto3"):
            raise
        message = explain_aws_error(exc)
        if "config" in locals():
            message = config.redact(message)
        print(f"Error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
