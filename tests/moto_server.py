"""Starts moto's server as the AWS stand-in for this project's tests and demo.

moto refuses replication configurations with more than one rule, which AWS
accepts. This launcher lifts exactly that restriction and adds the checks AWS
documents for PutReplicationConfiguration, so that merging with other owners'
rules is exercised end to end and a configuration AWS would refuse is refused
here too:

- at most 10 rules, and at most 25 distinct destinations across all rules;
- 1 to 25 destinations per rule, each a 12-digit registry id and a region
  matching [0-9a-z-]{2,25}, never the source registry itself;
- 1 to 100 repository filters per rule when filters are given, each of type
  PREFIX_MATCH, 2 to 256 characters, matching ECR's filter pattern.

Everything else in a rule (fields AWS added later, such as
deleteReplication, which moto's model does not know) is stored and returned
as it was sent: both calls answer with the stored JSON rather than through
moto's model-based serializer, which would drop such fields.

Usage: python tests/moto_server.py [--host 127.0.0.1] [--port 0]
Prints "listening on http://HOST:PORT" once ready. Exits when its parent
process exits, so an interrupted test run leaves no server behind.
"""

import argparse
import json
import logging
import os
import re
import signal
import sys
import tempfile
import threading
import time

# moto's request recorder (/moto-api/recorder/...) writes to this file; keep
# it out of the working directory. Set before moto reads it at import.
os.environ.setdefault(
    "MOTO_RECORDER_FILEPATH", os.path.join(tempfile.mkdtemp(prefix="moto-"), "recording")
)

from moto.ecr import models, responses  # noqa: E402
from moto.ecr.exceptions import InvalidParameterException, ValidationException  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

MAX_RULES = 10
MAX_DISTINCT_DESTINATIONS = 25
MAX_DESTINATIONS_PER_RULE = 25
MAX_FILTERS_PER_RULE = 100
REGISTRY_ID = re.compile(r"^[0-9]{12}$")
REGION = re.compile(r"^[0-9a-z-]{2,25}$")
FILTER = re.compile(
    r"^(?:[a-z0-9]+(?:[._-][a-z0-9]*)*/)*[a-z0-9]*(?:[._-][a-z0-9]*)*$"
)


def _constraint(path, constraint):
    return ValidationException(
        f"1 validation error detected: Value at '{path}' failed to satisfy "
        f"constraint: {constraint}"
    )


def check_replication_configuration(config, account_id, region_name):
    """Raises the error AWS would answer for an invalid configuration."""
    rules = config.get("rules")
    if not isinstance(rules, list):
        raise _constraint("replicationConfiguration.rules", "Member must not be null")
    if len(rules) > MAX_RULES:
        raise _constraint(
            "replicationConfiguration.rules",
            f"Member must have length less than or equal to {MAX_RULES}",
        )

    distinct = set()
    for i, rule in enumerate(rules):
        path = f"replicationConfiguration.rules.{i + 1}"
        destinations = rule.get("destinations")
        if not isinstance(destinations, list) or not destinations:
            raise _constraint(
                f"{path}.destinations", "Member must have length greater than or equal to 1"
            )
        if len(destinations) > MAX_DESTINATIONS_PER_RULE:
            raise _constraint(
                f"{path}.destinations",
                f"Member must have length less than or equal to {MAX_DESTINATIONS_PER_RULE}",
            )
        for j, destination in enumerate(destinations):
            dpath = f"{path}.destinations.{j + 1}"
            registry_id = destination.get("registryId", "")
            region = destination.get("region", "")
            if not REGISTRY_ID.match(str(registry_id)):
                raise _constraint(
                    f"{dpath}.registryId", "Member must satisfy regular expression pattern: [0-9]{12}"
                )
            if not REGION.match(str(region)):
                raise _constraint(
                    f"{dpath}.region",
                    "Member must satisfy regular expression pattern: [0-9a-z-]{2,25}",
                )
            if registry_id == account_id and region == region_name:
                raise InvalidParameterException(
                    "Invalid parameter at 'replicationConfiguration' failed to satisfy "
                    "constraint: 'Replication destination cannot be the same as the source registry'"
                )
            distinct.add((registry_id, region))

        filters = rule.get("repositoryFilters")
        if filters is None:
            continue
        if not isinstance(filters, list) or not filters or len(filters) > MAX_FILTERS_PER_RULE:
            raise _constraint(
                f"{path}.repositoryFilters",
                f"Member must have length between 1 and {MAX_FILTERS_PER_RULE}",
            )
        for k, repository_filter in enumerate(filters):
            fpath = f"{path}.repositoryFilters.{k + 1}"
            if repository_filter.get("filterType") != "PREFIX_MATCH":
                raise _constraint(
                    f"{fpath}.filterType", "Member must satisfy enum value set: [PREFIX_MATCH]"
                )
            text = repository_filter.get("filter", "")
            if not isinstance(text, str) or not 2 <= len(text) <= 256:
                raise _constraint(
                    f"{fpath}.filter", "Member must have length between 2 and 256"
                )
            if not FILTER.match(text):
                raise _constraint(
                    f"{fpath}.filter",
                    "Member must satisfy regular expression pattern: " + FILTER.pattern,
                )

    if len(distinct) > MAX_DISTINCT_DESTINATIONS:
        raise InvalidParameterException(
            "Invalid parameter at 'replicationConfiguration' failed to satisfy constraint: "
            f"'Replication configuration can have at most {MAX_DISTINCT_DESTINATIONS} "
            "distinct destinations'"
        )


def put_replication_configuration(self, replication_config):
    check_replication_configuration(replication_config, self.account_id, self.region_name)
    self.replication_config = replication_config
    return {"replicationConfiguration": replication_config}


def put_replication_configuration_response(self):
    config = json.loads(self.body)["replicationConfiguration"]
    return json.dumps(self.ecr_backend.put_replication_configuration(config))


def describe_registry_response(self):
    return json.dumps(self.ecr_backend.describe_registry())


models.ECRBackend.put_replication_configuration = put_replication_configuration
responses.ECRResponse.put_replication_configuration = put_replication_configuration_response
responses.ECRResponse.describe_registry = describe_registry_response


def exit_with_parent():
    parent = os.getppid()
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args()

    if "MOTO_ACCOUNT_ID" in os.environ:
        sys.exit(
            "MOTO_ACCOUNT_ID is set: it would put every request in one account; unset it"
        )

    # One line per request on stderr would drown the test output.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    print(f"listening on http://{host}:{port}", flush=True)

    threading.Thread(target=exit_with_parent, daemon=True).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop()


if __name__ == "__main__":
    main()
