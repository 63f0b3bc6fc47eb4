"""`pvc connection ...` and connection selection (-c, $PVC_CONNECTION, "local"), run as the
built dist/pvc against a real API."""

import json
import os
import pty
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
        ("connection", "add", "x", "-a", ""),
        ("connection", "add", "x", "-a", "http://[x"),
        ("connection", "add", "x", "-a", "http://h/somewhere"),
        ("connection", "add", "x", "-a", "http://h:99999"),
        ("connection", "add", "x", "-a", "h", "-k", "two words"),
        ("connection", "add", "x", "-a", "h", "-k", "k", "--key-file", "f"),
    ],
)
def test_bad_usage_exits_2(run_pvc, args):
    assert fails(run_pvc(*args), code=2).startswith("pvc: ")
    assert not (run_pvc.client_dir / "pvc.json").exists()


def test_help_prints_usage(run_pvc):
    for flag in ("-h", "--help"):
        assert ok(run_pvc("connection", flag)).startswith("Usage:\n  pvc connection add")


def stored(run_pvc) -> dict:
    return json.loads((run_pvc.client_dir / "pvc.json").read_text())["connections"]


def test_url_address_is_completed_and_works(run_pvc, api_server, version):
    url = f"http://127.0.0.1:{api_server.port}"
    line = ok(run_pvc("connection", "add", "web", "-a", url, input=api_server.key))
    assert line == f"connection 'web' added: {api_server.url}\n"
    assert ok(run_pvc("connection", "add", "bare", "-a", "http://127.0.0.1")).endswith(
        "http://127.0.0.1:7370/api/v1\n"
    )
    assert stored(run_pvc)["bare"]["address"] == "127.0.0.1"
    details = {d["name"]: d for d in json.loads(ok(run_pvc("connection", "detail", "-f", "json")))}
    assert details["web"]["reachable"] is True and details["web"]["version"] == version
    assert details["bare"]["url"] == "http://127.0.0.1:7370/api/v1"


def test_a_broken_entry_never_breaks_the_others(run_pvc, api_server):
    add_test_connection(run_pvc, api_server)
    document = {"connections": stored(run_pvc)}
    document["connections"]["old"] = {"address": "http://127.0.0.1", "port": 7370}
    (run_pvc.client_dir / "pvc.json").write_text(json.dumps(document))

    details = {d["name"]: d for d in json.loads(ok(run_pvc("connection", "detail", "-f", "json")))}
    assert details["test"]["reachable"] is True
    assert details["old"]["reachable"] is False
    assert "connection 'old' in" in details["old"]["health"]
    assert json.loads(ok(run_pvc("connection", "detail", "test", "-f", "json")))[0]["reachable"]

    listed = run_pvc("connection", "list", "-f", "json")
    assert [entry["name"] for entry in json.loads(ok(listed))] == ["test"]
    [warning] = listed.stderr.splitlines()
    assert (
        warning.startswith("pvc: connection 'old' in ") and "pvc connection remove old" in warning
    )

    assert "initialised" in ok(run_pvc("-c", "test", "cluster", "init"))
    line = fails(run_pvc("-c", "old", "cluster", "status"), code=2)
    assert "connection 'old'" in line and "'http://127.0.0.1' is not a host" in line
    ok(run_pvc("connection", "remove", "old"))
    assert sorted(stored(run_pvc)) == ["test"]


def works(run_pvc, name: str) -> bool:
    return "cluster" in json.loads(ok(run_pvc("-c", name, "cluster", "status", "-f", "json")))


def test_api_key_from_stdin_file_and_environment(run_pvc, api_server, tmp_path):
    ok(run_pvc("connection", "add", "x", "-a", "127.0.0.1"))  # no key at all: fine
    port = str(api_server.port)
    ok(run_pvc("--config", str(api_server.config_path), "cluster", "init"))

    by_stdin = run_pvc("connection", "add", "s", "-a", "127.0.0.1", "-p", port, "-k", "-",
                       input=f"  {api_server.key}\n")  # fmt: skip
    key_file = tmp_path / "key"
    key_file.write_text(api_server.key + "\n")
    by_file = run_pvc("connection", "add", "f", "-a", "127.0.0.1", "-p", port,
                      "--key-file", str(key_file))  # fmt: skip
    by_env = run_pvc("connection", "add", "e", "-a", "127.0.0.1", "-p", port,
                     env={"PVC_API_KEY": api_server.key})  # fmt: skip
    for result in (by_stdin, by_file, by_env):
        ok(result)
        assert result.stderr == ""  # no warning: the key was not in argv
    entries = stored(run_pvc)
    assert {entries[name]["api_key"] for name in "sfe"} == {api_server.key}
    assert all(works(run_pvc, name) for name in "sfe")
    assert stat.S_IMODE((run_pvc.client_dir / "pvc.json").stat().st_mode) == 0o600


def test_api_key_in_argv_works_with_a_warning(run_pvc, api_server):
    result = run_pvc("connection", "add", "a", "-a", "127.0.0.1", "-p", str(api_server.port),
                     "-k", api_server.key)  # fmt: skip
    assert result.returncode == 0
    [warning] = result.stderr.splitlines()
    assert warning.startswith("pvc: warning: --api-key KEY is visible to other users")
    assert stored(run_pvc)["a"]["api_key"] == api_server.key


@pytest.mark.parametrize(
    "content, why",
    [(b"\xff\xfe\n", "not UTF-8 text"), (b"\n", "the API key is empty"),
     (b"two words\n", "visible ASCII"), (b"k" * 5000, "larger than")],
)  # fmt: skip
def test_bad_key_file_exits_2(run_pvc, tmp_path, content, why):
    key_file = tmp_path / "key"
    key_file.write_bytes(content)
    result = run_pvc("connection", "add", "x", "-a", "h", "--key-file", str(key_file))
    assert why in fails(result, code=2)
    line = fails(run_pvc("connection", "add", "x", "-a", "h", "--key-file", str(tmp_path)), 2)
    assert "Is a directory" in line
    assert not (run_pvc.client_dir / "pvc.json").exists()


def test_api_key_prompt_on_a_terminal_does_not_echo(run_pvc, pvc_bin, api_server):
    key = api_server.key
    args = ["connection", "add", "t", "-a", "127.0.0.1", "-p", str(api_server.port)]
    shown = terminal_session(pvc_bin, args, run_pvc.client_dir, answer=key)
    assert "API key of 't' (empty: none):" in shown and key not in shown
    assert stored(run_pvc)["t"]["api_key"] == key
    terminal_session(pvc_bin, ["connection", "add", "n", "-a", "h"], run_pvc.client_dir, "")
    assert stored(run_pvc)["n"]["api_key"] is None


def terminal_session(pvc_bin: str, args: list[str], client_dir, answer: str) -> str:
    """Runs pvc on a pseudo-terminal, types `answer` and Enter; returns what it showed."""
    pid, terminal = pty.fork()
    if pid == 0:  # the child: pvc on the terminal
        env = {"PATH": os.environ["PATH"], "PVC_CLIENT_DIR": str(client_dir)}
        os.execve(pvc_bin, [pvc_bin, *args], env)
    shown = b""
    while b"(empty: none):" not in shown:
        shown += os.read(terminal, 1024)
    os.write(terminal, answer.encode() + b"\r")
    while True:
        try:
            chunk = os.read(terminal, 1024)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    _, status = os.waitpid(pid, 0)
    os.close(terminal)
    assert os.waitstatus_to_exitcode(status) == 0, shown
    return shown.decode(errors="replace")
