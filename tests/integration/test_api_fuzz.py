"""A property-based fuzz run (schemathesis) over the live OpenAPI document of `pvc api serve`:
every operation gets generated requests, valid and invalid by the document, and every answer
must be no server error, a documented status, with a documented content type and a body that
matches the documented schema. Invalid data must be refused (4xx), and valid data accepted
(never a 400; see CONTENT_RULES for the few operations whose validity no schema can state).

The cluster is initialised, with two hypervisors and a few VMs (no node daemons run). Bounded:
a fixed number of examples per operation, derandomized (the same requests every run), no
shrinking. POST /initialize (which may wipe the cluster) runs last, so no other operation runs
on a cluster it emptied; DELETE /vm/{vm} only ever hits generated names, which the defined
VMs are not; the API server is ended by the start_api fixture.
"""

import contextlib
from collections import defaultdict

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.test_api import call
from tests.integration.test_api_requests import add_hypervisors
from tests.integration.test_vm_ops import domain_xml

EXAMPLES = 25  # per operation and mode (valid, invalid)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# Valid data by the document is accepted (never 400), except where validity is in the content,
# which no JSON schema states: a domain's XML (libvirt's schema), a regular expression.
CONTENT_RULES = {("POST", "/vm"), ("PUT", "/vm/{vm}"), ("GET", "/vm")}
# ... and storage: a size's unit and range, a PG count's power of two, mincopies <= copies, a
# pool removal's confirmation, a volume change that names something to change.
CONTENT_RULES |= {
    ("POST", "/storage/ceph/pool"),
    ("DELETE", "/storage/ceph/pool/{pool}"),
    ("POST", "/storage/ceph/volume"),
    ("PUT", "/storage/ceph/volume/{pool}/{volume}"),
}
# ... and networks: addresses inside their subnets, DHCP ranges, a MAC that is no multicast's,
# an ACL rule nft accepts, a change that names something to change.
CONTENT_RULES |= {
    ("POST", "/network"),
    ("PUT", "/network/{vni}"),
    ("POST", "/network/{vni}/lease"),
    ("POST", "/network/{vni}/acl"),
}
CONTENT_RULES |= {
    ("POST", "/provisioner/userdata"),
    ("PUT", "/provisioner/userdata/{userdata}"),
    ("POST", "/provisioner/script"),
    ("PUT", "/provisioner/script/{script}"),
    ("POST", "/provisioner/profile"),
    ("POST", "/provisioner/template/network"),
    ("PUT", "/provisioner/template/system/{template}"),
    ("POST", "/provisioner/template/storage/{template}/disk"),
    ("PUT", "/provisioner/profile/{profile}"),
    ("POST", "/provisioner/create"),  # its arguments are key=value lines
}
LAST = ("POST", "/initialize")  # may wipe the cluster: after every other operation
# What refusing invalid data may answer: 413 too (a string over its maxLength can make a body
# over limits.BODY_MAX), 404 (a path with a generated "/" in it is no route).
REFUSALS = {"negative_data_rejection": {"expected-statuses": [400, 401, 404, 405, 413, 415]}}
# 503 is no server error here: the storage endpoints' documented answer on an API without Ceph
# (this one: the fuzz run needs no Ceph), as every endpoint's when Zookeeper is out of reach.
SERVER_ANSWERS = {"not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", 503]}}


@pytest.fixture
def fuzzed_api(start_api, zk):
    server = start_api()
    add_hypervisors(server, zk, "node1", "node2")
    for index in range(3):
        status, answer = call(server, "POST", "/vm", {"xml": domain_xml(f"vm{index}")})
        assert status == 200, answer
    return server


def _operations(schema):
    operations = [result.ok() for result in schema.get_all_operations()]
    return sorted(operations, key=lambda op: (op.method.upper(), op.path) == LAST)


def _fuzz(operation, mode, key, failures, statuses):
    if mode is GenerationMode.NEGATIVE:
        checks = [*CHECKS, negative_data_rejection]
    elif (operation.method.upper(), operation.path) in CONTENT_RULES:
        checks = CHECKS
    else:
        checks = [*CHECKS, positive_data_acceptance]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case):
        try:
            response = case.call_and_validate(headers={"X-Api-Key": key}, checks=checks, timeout=15)
            statuses[operation.label].add(response.status_code)
        except Exception as failure:  # a FailureGroup: every check that failed, with curl
            failures.append(f"{operation.label} ({mode.value}): {str(failure)[:1500]}")

    run()


@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
@pytest.mark.timeout(900)  # every operation in one test: ~100 s here, 220 s on a loaded host
def test_fuzz_the_live_openapi_document(fuzzed_api):
    config = SchemathesisConfig.from_dict({"checks": REFUSALS | SERVER_ANSWERS})
    schema = schemathesis.openapi.from_url(fuzzed_api.url + "/openapi.json", config=config)
    operations = _operations(schema)
    assert len(operations) >= 25 and operations[-1].path == LAST[1]
    failures: list[str] = []
    statuses: dict[str, set[int]] = defaultdict(set)
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            # Unsatisfiable: no invalid data exists for an operation without parameters
            with contextlib.suppress(hypothesis.errors.Unsatisfiable):
                _fuzz(operation, mode, fuzzed_api.key, failures, statuses)
    assert failures == [], "\n\n".join(failures[:10])
    # the run reached the operations themselves, not only the parameter checks
    assert 400 in statuses["POST /vm"] and 200 in statuses["GET /vm"]
    assert {400, 404} <= statuses["GET /vm/{vm}/console"]
    # the hypervisors' daemons are alive, so an overwrite is refused (409) by the operation
    assert 409 in statuses["POST /initialize"] and 200 in statuses["GET /status"]
