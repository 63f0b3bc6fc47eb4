"""`pvc connection ...` and connection selection (-c, $PVC_CONNECTION, "local"), run as the
built dist/pvc against a real API."""

import json
import stat

import pytest

from tests.conftest import fails, free_port, ok


def add_test_connection(run_pvc, api_server, name: str = "test") -> None:
    ok(run_pvc("connection", "add", name, "-a", "127.0.0.1", "-p", str(api_server.port),
               "-k", api_server.key, "-d", "the test API"))  # fmt: skip


@pytest.fixture
def version(run_pvc) -> str:
    return ok(run_pvc("--version")).split()[-1]


def test_add_list_detail_remove(run_pvc, api_server, version):
    add_test_connection(run_pvc, api_server)
    stored = run_pvc.client_dir / "pvc.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(run_pvc.client_dir.stat().st_mode) == 0o700

    listed = ok(run_pvc("connection", "list"))
    assert api_server.key not in listed
    header, row = listed.splitlines()
    assert header.split()[:4] == ["NAME", "ADDRESS", "PORT", "SCHEME"]
    assert row.split()[:5] == ["test", "127.0.0.1", str(api_server.port), "http", "yes"]

    [entry] = json.loads(ok(run_pvc("connection", "list", "-f", "json")))
    assert entry == {
        "name": "test",
        "address": "127.0.0.1",
        "port": api_server.port,
        "scheme": "http",
        "api_key_set": True,
        "description": "the test API",
    }

    detail = ok(run_pvc("connection", "detail", "test", "-f", "json"))
    assert api_server.key not in detail
    [found] = json.loads(detail)
    assert found["reachable"] is True
    assert found["version"] == version
    assert found["url"] == api_server.url
    assert found["api_key"] == api_server.key[:4] + "****"
    pretty = ok(run_pvc("connection", "detail"))
    assert "health:" in pretty and "ok" in pretty and version in pretty

    assert "removed" in ok(run_pvc("connection", "remove", "test"))
    assert json.loads(ok(run_pvc("connection", "list", "-f", "json"))) == []
    assert "no connection named 'test'" in fails(run_pvc("connection", "remove", "test"))


def test_add_same_name_replaces(run_pvc):
    assert "added" in ok(run_pvc("connection", "add", "prod", "-a", "10.0.0.1"))
    assert "replaced" in ok(
        run_pvc("connection", "add", "prod", "-a", "10.0.0.2", "-s", "-p", "443")
    )
    [entry] = json.loads(ok(run_pvc("connection", "list", "-f", "json")))
    assert (entry["address"], entry["port"], entry["scheme"]) == ("10.0.0.2", 443, "https")
    assert entry["api_key_set"] is False


def test_detail_reports_unreachable_api_without_failing(run_pvc):
    ok(run_pvc("connection", "add", "gone", "-a", "127.0.0.1", "-p", str(free_port())))
    [found] = json.loads(ok(run_pvc("connection", "detail", "-f", "json-pretty")))
    assert found["reachable"] is False
    assert "cannot reach the API" in found["health"]


def test_dash_c_and_environment_select_the_connection(run_pvc, api_server):
    add_test_connection(run_pvc, api_server)
    assert "initialised" in ok(run_pvc("-c", "test", "cluster", "init"))
    status = json.loads(ok(run_pvc("cluster", "status", "-f", "json", "--connection", "test")))
    assert status["cluster"] == "pvc"
    by_env = run_pvc("cluster", "status", "-f", "json", env={"PVC_CONNECTION": "test"})
    assert json.loads(ok(by_env)) == status


def test_dash_c_wins_over_environment(run_pvc, api_server):
    add_test_connection(run_pvc, api_server)
    env = {"PVC_CONNECTION": "test"}
    assert "no connection named 'other'" in fails(
        run_pvc("-c", "other", "cluster", "init", env=env)
    )


def test_unknown_connection_is_one_line_error(run_pvc):
    line = fails(run_pvc("-c", "nowhere", "cluster", "status"))
    assert line == "pvc: no connection named 'nowhere'; see 'pvc connection list'"


def test_local_comes_from_the_node_config(run_pvc, api_server, version):
    config = str(api_server.config_path)
    assert "initialised" in ok(run_pvc("--config", config, "cluster", "init"))
    [local] = json.loads(ok(run_pvc("connection", "list", "-f", "json", "--config", config)))
    assert local["name"] == "local" and local["port"] == api_server.port
    assert local["api_key_set"] is True
    by_env = run_pvc("connection", "detail", "local", "-f", "json", env={"PVC_CONFIG": config})
    [found] = json.loads(ok(by_env))
    assert found["reachable"] is True and found["version"] == version


def test_local_without_node_config_says_what_to_do(run_pvc, tmp_path):
    line = fails(run_pvc("--config", str(tmp_path / "none.conf"), "cluster", "status"), code=2)
    assert "none.conf does not exist" in line and "pvc connection add" in line


@pytest.mark.parametrize(
    "args",
    [
        ("connection", "add", "x"),
        ("connection", "add", "bad name", "-a", "h"),
        ("connection", "add", "x", "-a", "h", "-p", "http"),
        ("connection", "add", "x", "-a", "h", "-p", "70000"),
        ("connection", "frobnicate"),
        ("connection", "list", "-f", "yaml"),
    ],
)
def test_bad_usage_exits_2(run_pvc, args):
    assert fails(run_pvc(*args), code=2).startswith("pvc: ")
    assert not (run_pvc.client_dir / "pvc.json").exists()


def test_help_prints_usage(run_pvc):
    for flag in ("-h", "--help"):
        assert ok(run_pvc("connection", flag)).startswith("Usage:\n  pvc connection add")
