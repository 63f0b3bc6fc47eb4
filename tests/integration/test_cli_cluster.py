"""`pvc cluster init|status|maintenance` and `pvc config`, run as the built dist/pvc against a
real API and Zookeeper; also how API errors reach the user."""

import json
import time

import pytest
import yaml

from tests.conftest import fails, free_port, ok


@pytest.fixture
def pvc(run_pvc, api_server):
    """Runs dist/pvc with the "local" connection of the test API's node config."""

    def run(*args: str, **kwargs):
        return run_pvc("--config", str(api_server.config_path), *args, **kwargs)

    return run


def status(pvc) -> dict:
    return json.loads(ok(pvc("cluster", "status", "-f", "json")))


def test_init_twice_is_a_conflict(pvc):
    assert ok(pvc("cluster", "init", "--name", "alpha")).startswith("cluster 'alpha' initialised")
    line = fails(pvc("cluster", "init"))
    assert line.startswith("pvc: the cluster is already initialised")
    assert status(pvc)["cluster"] == "alpha"


def test_init_overwrite_yes_reinitialises(pvc):
    ok(pvc("cluster", "init", "--name", "alpha"))
    ok(pvc("cluster", "maintenance", "on"))
    assert "'beta' initialised" in ok(pvc("cluster", "init", "--overwrite", "-y", "--name", "beta"))
    after = status(pvc)
    assert (after["cluster"], after["maintenance"]) == ("beta", False)


def test_init_overwrite_while_a_daemon_runs_and_a_bad_name_are_one_line(pvc, zk):
    ok(pvc("cluster", "init", "--name", "alpha"))
    assert zk.claim_ephemeral(("node.alive", "node1"), "a daemon's session")
    line = fails(pvc("cluster", "init", "--overwrite", "-y", "--name", "beta"))
    assert line == "pvc: stop the node daemons first: node1"
    assert status(pvc)["cluster"] == "alpha"
    line = fails(pvc("cluster", "init", "--overwrite", "-y", "--name", "be\x1bta"))
    assert line.startswith("pvc: invalid cluster name 'be\\x1bta'")


def test_init_overwrite_asks_and_no_aborts(pvc):
    ok(pvc("cluster", "init", "--name", "alpha"))
    for answer in ("n\n", "\n", "yes please\n", ""):
        result = pvc("cluster", "init", "--overwrite", "--name", "beta", input=answer)
        assert result.returncode == 1
        assert "Wipe ALL cluster data and reinitialise? [y/N]" in result.stderr
        assert result.stderr.rstrip().endswith("pvc: aborted")
        assert "Traceback" not in result.stderr
    assert status(pvc)["cluster"] == "alpha"
    ok(pvc("cluster", "init", "--overwrite", "--name", "beta", input="y\n"))
    assert status(pvc)["cluster"] == "beta"


def test_status_json_is_the_api_document(pvc, run_pvc):
    ok(pvc("cluster", "init", "--name", "alpha"))
    found = status(pvc)
    version = ok(run_pvc("--version")).split()[-1]
    assert found["cluster"] == "alpha"
    assert found["pvc_version"] == version
    assert isinstance(found["schema_version"], int)
    assert found["maintenance"] is False
    assert "primary_node" in found
    assert set(found["nodes"]) == {"total", "by_state", "list"}
    assert found["nodes"]["total"] == len(found["nodes"]["list"])
    assert found["vms"] == {"total": 0} and found["networks"] == {"total": 0}
    assert json.loads(ok(pvc("cluster", "status", "-f", "json-pretty"))) == found


def test_status_pretty(pvc):
    ok(pvc("cluster", "init", "--name", "alpha"))
    lines = ok(pvc("cluster", "status")).splitlines()
    assert lines[0].split() == ["cluster:", "alpha"]
    assert "maintenance:" in lines[3] and lines[3].split()[-1] == "off"


def test_maintenance_on_then_off(pvc):
    ok(pvc("cluster", "init"))
    assert ok(pvc("cluster", "maintenance", "on")).strip() == "maintenance mode on"
    assert status(pvc)["maintenance"] is True
    pretty = ok(pvc("cluster", "status")).splitlines()
    assert [line.split()[-1] for line in pretty if line.startswith("maintenance:")] == ["on"]
    assert ok(pvc("cluster", "maintenance", "off")).strip() == "maintenance mode off"
    assert status(pvc)["maintenance"] is False


def test_status_before_init_says_so(pvc):
    assert "not initialised" in fails(pvc("cluster", "status"))


def test_wrong_api_key_is_one_line_unauthorized(run_pvc, api_server):
    ok(run_pvc("connection", "add", "wrong", "-a", "127.0.0.1", "-p", str(api_server.port),
               "-k", "not-the-key"))  # fmt: skip
    ok(run_pvc("connection", "add", "nokey", "-a", "127.0.0.1", "-p", str(api_server.port)))
    assert fails(run_pvc("-c", "wrong", "cluster", "status")) == "pvc: the API key is not valid"
    assert "API key is required" in fails(run_pvc("-c", "nokey", "cluster", "init"))


def test_unreachable_api_fails_fast_in_one_line(run_pvc):
    port = free_port()
    ok(run_pvc("connection", "add", "gone", "-a", "127.0.0.1", "-p", str(port)))
    started = time.monotonic()
    line = fails(run_pvc("-c", "gone", "cluster", "status"))
    assert time.monotonic() - started < 10
    assert line.startswith(f"pvc: cannot reach the API at http://127.0.0.1:{port}/api/v1/status")


@pytest.mark.parametrize(
    "args",
    [
        ("cluster",),
        ("cluster", "frobnicate"),
        ("cluster", "maintenance", "maybe"),
        ("cluster", "init", "--force"),
        ("cluster", "status", "-f", "xml"),
        ("cluster", "status", "--format"),
        ("cluster", "task"),
        ("cluster", "task", "info"),
        ("cluster", "task", "cancel", "a", "b"),
        ("cluster", "task", "list", "-f", "xml"),
    ],
)
def test_bad_usage_exits_2(run_pvc, args):
    assert fails(run_pvc(*args), code=2).startswith("pvc: ")


def test_help_prints_usage(run_pvc):
    assert ok(run_pvc("cluster", "--help")).startswith("Usage:\n  pvc cluster init")


def test_config_sample_is_commented_yaml(run_pvc):
    sample = ok(run_pvc("config", "sample"))
    document = yaml.safe_load(sample)
    assert document["cluster"]["coordinators"] == ["node1", "node2", "node3"]
    assert {"node", "zookeeper", "api", "timers", "logging"} <= set(document)


def test_config_check(run_pvc, tmp_path):
    path = tmp_path / "pvc.conf"
    document = {
        "cluster": {"coordinators": ["node1"]},
        "api": {"authentication": {"enabled": False}},
        "zookeeper": {"secret": "s3cret"},
    }
    path.write_text(yaml.safe_dump(document))
    assert ok(run_pvc("config", "check", "--config", str(path))).strip() == f"config OK: {path}"
    by_env = run_pvc("config", "check", env={"PVC_CONFIG": str(path)})
    assert ok(by_env).strip() == f"config OK: {path}"
    document["bogus"] = 1
    path.write_text(yaml.safe_dump(document))
    line = fails(run_pvc("config", "check", "--config", str(path)), code=2)
    assert line == "pvc: config: unknown key 'bogus'"
