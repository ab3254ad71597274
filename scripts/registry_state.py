"""Seeds and shows what the demo's AWS stand-in holds.

  seed   writes another owner's replication rule in the source registry and
         another source account's statement in each destination registry
         policy, so the demo shows that they survive.
  show   prints the source replication configuration, the destination
         registry policies and the CloudFormation response of a stage.

The endpoint comes from AWS_ENDPOINT_URL; accounts other than the default
one are reached the way the function reaches them, by assuming a role there.
"""

import argparse
import json
import os
import pathlib
import sys

import boto3

SOURCE_REGION = "us-east-1"
DESTINATIONS = [("222222222222", "eu-west-1"), ("333333333333", "eu-west-1")]
OTHER_RULE = {
    "destinations": [{"region": "ap-south-1", "registryId": "444444444444"}],
    "repositoryFilters": [{"filter": "legacy/", "filterType": "PREFIX_MATCH"}],
}


def ecr(account=None, region=SOURCE_REGION):
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    if account is None:
        return boto3.client("ecr", region_name=region, endpoint_url=endpoint)
    sts = boto3.client("sts", region_name=SOURCE_REGION, endpoint_url=endpoint)
    credentials = sts.assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/demo", RoleSessionName="demo"
    )["Credentials"]
    return boto3.client(
        "ecr",
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


def policy_of(account, region):
    client = ecr(account, region)
    try:
        return json.loads(client.get_registry_policy()["policyText"])
    except client.exceptions.RegistryPolicyNotFoundException:
        return None


def seed():
    ecr().put_replication_configuration(replicationConfiguration={"rules": [OTHER_RULE]})
    for account, region in DESTINATIONS:
        statement = {
            "Sid": "OtherSourceAccount",
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::999999999999:root"},
            "Action": ["ecr:ReplicateImage"],
            "Resource": [f"arn:aws:ecr:{region}:{account}:repository/*"],
        }
        ecr(account, region).put_registry_policy(
            policyText=json.dumps({"Version": "2012-10-17", "Statement": [statement]})
        )
    print("seeded: another owner's rule in the source registry, and another source")
    print("account's statement in each destination registry policy")


def one_line(value):
    return json.dumps(value, separators=(", ", ": "))


def show(response_file, check):
    registry = ecr().describe_registry()
    rules = registry["replicationConfiguration"]["rules"]
    print(f"source registry 123456789012/us-east-1, replication rules ({len(rules)}):")
    for rule in rules:
        print(f"  {one_line(rule)}")
    for account, region in DESTINATIONS:
        policy = policy_of(account, region)
        statements = (policy or {}).get("Statement", [])
        print(f"destination registry {account}/{region}, registry policy statements "
              f"({len(statements) if policy else 'no policy'}):")
        for statement in statements:
            print(f"  {one_line(statement)}")
    record = json.loads(pathlib.Path(response_file).read_text())
    print("CloudFormation response:")
    for key, value in record["body"].items():
        print(f"  {key}: {one_line(value)}")
    if record["content_type_header"] is not None:
        print(f"!! sent with a Content-Type header: {record['content_type_header']}")
    if check:
        if record["body"]["Status"] != "SUCCESS" or record["content_type_header"] is not None:
            sys.exit(f"check failed: {response_file}")
        rules = registry["replicationConfiguration"]["rules"]
        if rules[0] != OTHER_RULE:
            sys.exit("check failed: the other owner's rule is gone")
        for account, region in DESTINATIONS:
            statements = (policy_of(account, region) or {}).get("Statement", [])
            if not any(s.get("Sid") == "OtherSourceAccount" for s in statements):
                sys.exit(f"check failed: the other statement in {account}/{region} is gone")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("seed")
    show_parser = commands.add_parser("show")
    show_parser.add_argument("--response", required=True)
    show_parser.add_argument("--check", action="store_true", help="exit 1 on an unexpected state")
    args = parser.parse_args()
    if args.command == "seed":
        seed()
    else:
        show(args.response, args.check)


if __name__ == "__main__":
    main()
