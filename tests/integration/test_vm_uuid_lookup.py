"""A VM given by UUID is the VM with that UUID, through the real API and CLI: no VM may be
named in UUID form, and one so named before this rule (an older cluster's) cannot take over
lookups by the UUID it carries as a name."""

import threading
import time

import pytest

from pvc.ops import cluster
from tests.conftest import fails, ok
from tests.integration.test_api import call
from tests.integration.test_vm_ops import add_hypervisor, domain_xml

VICTIM = "0b6b2f34-7c55-4f43-9a0e-2f6a43f1d001"
IMPOSTOR = "0b6b2f34-7c55-4f43-9a0e-2f6a43f1d002"


@pytest.fixture
def cluster_api(api_server, zk):
    cluster.initialize(zk)
    add_hypervisor(zk, "node1")
    return api_server


def _define(server, name, uuid):
    status, answer = call(server, "POST", "/vm", {"xml": domain_xml(name, uuid)})
    assert status == 200, answer


def _name_it_like(zk, uuid, name, old_name):
    """Renames a VM in Zookeeper as an older pvc allowed: its name in UUID form."""
    zk.write(
        {("domain", uuid): name, ("name.domain", name): uuid}, delete=[("name.domain", old_name)]
    )


@pytest.mark.parametrize("form", [str.lower, str.upper, lambda text: text.replace("-", "")])
def test_a_name_in_uuid_form_is_refused_at_define_rename_and_modify(cluster_api, form):
    name = form(IMPOSTOR)
    status, answer = call(cluster_api, "POST", "/vm", {"xml": domain_xml(name, VICTIM)})
    assert status == 400 and "not in the form of a UUID" in answer["message"]
    _define(cluster_api, "vm1", VICTIM)
    status, answer = call(cluster_api, "POST", "/vm/vm1/rename", {"new_name": name})
    assert status == 400 and "not in the form of a UUID" in answer["message"]
    status, answer = call(cluster_api, "PUT", "/vm/vm1", {"xml": domain_xml(name, VICTIM)})
    assert status == 400 and "not in the form of a UUID" in answer["message"]
    assert call(cluster_api, "GET", f"/vm/{VICTIM}")[1]["name"] == "vm1"


def test_get_and_delete_by_uuid_reach_the_vm_with_that_uuid(cluster_api, zk):
    _define(cluster_api, "victim", VICTIM)
    _define(cluster_api, "impostor", IMPOSTOR)
    _name_it_like(zk, IMPOSTOR, VICTIM, "impostor")
    status, record = call(cluster_api, "GET", f"/vm/{VICTIM}")
    assert status == 200 and (record["uuid"], record["name"]) == (VICTIM, "victim")
    status, answer = call(cluster_api, "DELETE", f"/vm/{VICTIM}")
    assert status == 200 and answer["uuid"] == VICTIM
    assert zk.read(("domain", VICTIM)) is None
    assert zk.read(("domain", IMPOSTOR)) == VICTIM  # the impostor is still there
    status, record = call(cluster_api, "GET", f"/vm/{IMPOSTOR}")
    assert status == 200 and record["name"] == VICTIM
    # ... and can be given a proper name, by its own UUID
    status, answer = call(cluster_api, "POST", f"/vm/{IMPOSTOR}/rename", {"new_name": "fixed"})
    assert status == 200 and call(cluster_api, "GET", "/vm/fixed")[1]["uuid"] == IMPOSTOR


def test_cli_start_wait_by_uuid_follows_the_vm_with_that_uuid(cluster_api, zk, run_pvc):
    _define(cluster_api, "victim", VICTIM)
    _define(cluster_api, "impostor", IMPOSTOR)
    _name_it_like(zk, IMPOSTOR, VICTIM, "impostor")

    def node_daemon():  # reports the VM it was asked to start as running
        deadline = time.monotonic() + 20
        while zk.read(("domain.state", VICTIM)) != "start" and time.monotonic() < deadline:
            time.sleep(0.05)
        zk.write({("domain.observed", VICTIM): {"node": "node1", "state": "running"}})

    daemon = threading.Thread(target=node_daemon, daemon=True)
    daemon.start()
    pvc = ("--config", str(cluster_api.config_path))
    out = ok(run_pvc(*pvc, "vm", "start", VICTIM, "--wait", "--timeout", "20"))
    daemon.join()
    assert "waiting for victim to start on node1" in out
    assert zk.read(("domain.state", VICTIM)) == "start"
    assert zk.read(("domain.state", IMPOSTOR)) == "stop"
    line = fails(run_pvc(*pvc, "vm", "rename", "victim", IMPOSTOR))
    assert "not in the form of a UUID" in line
