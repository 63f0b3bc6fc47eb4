"""zookeeper.secret in the real processes: the node daemon and the API refuse to start without
it (exit 2, one line naming the key) or with another cluster's (exit 2, one line), and never
show it, in their logs or in the API's answers."""

import json
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from pvc.ops import cluster
from pvc.zk import access
from tests.conftest import ZK_SECRET, write_config

KEYLESS = {"secret": None}
WRONG = {"secret": "another-clusters-secret"}
OPEN_API = {"authentication": {"enabled": False}, "serve_on_primary": False}


def logged(folder: Path) -> dict:
    """Logs to a file: standard error then holds only what the command says on failing."""
    return {"file": str(folder / "pvc.log")}


def one_line(result: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("command", [["api", "serve"], ["node", "run"]])
def test_without_a_secret_the_daemon_and_the_api_refuse_to_start(
    tmp_path, zk_hosts, pvc_bin, command
):
    config = write_config(
        tmp_path / "pvc.conf", zk_hosts, zookeeper=KEYLESS, api=OPEN_API, logging=logged(tmp_path)
    )
    result = subprocess.run(
        [pvc_bin, *command, "--config", str(config)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "zookeeper.secret is not set" in one_line(result)


@pytest.mark.parametrize("command", [["api", "serve"], ["node", "run"]])
def test_with_another_secret_they_stop_with_one_clear_line(
    tmp_path, zk, zk_hosts, pvc_bin, command
):
    cluster.initialize(zk)  # a closed tree (the chroot too), as a running cluster has
    config = write_config(
        tmp_path / "pvc.conf", zk_hosts, zookeeper=WRONG, api=OPEN_API, logging=logged(tmp_path)
    )
    result = subprocess.run(
        [pvc_bin, *command, "--config", str(config)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert one_line(result) == f"pvc: {access.REFUSED}"


def call(api, method: str, path: str, body: dict | None = None) -> str:
    request = urllib.request.Request(
        api.url + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"X-Api-Key": api.key, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.read().decode()


def test_the_api_never_shows_the_secret(start_api, tmp_path):
    api = start_api(logging={"level": "debug"})
    answers = [
        call(api, "POST", "/initialize", {"name": "secretive"}),
        call(api, "GET", "/"),
        call(api, "GET", "/cluster"),
        call(api, "GET", "/node"),
        call(api, "GET", "/vm"),
        call(api, "GET", "/vm/nothing-here"),
        call(api, "POST", "/vm", {"xml": "<domain"}),
    ]
    assert any("secretive" in answer for answer in answers)  # they were answered
    api.process.terminate()
    api.process.wait(15)
    log = (tmp_path / f"api-{api.port}.log").read_text()
    assert "API serving" in log
    for text in [*answers, log]:
        assert ZK_SECRET not in text


def test_the_daemon_never_logs_the_secret(tmp_path, zk_hosts, pvc_bin):
    log = tmp_path / "pvc.log"
    config = write_config(
        tmp_path / "pvc.conf",
        zk_hosts,
        api=OPEN_API,
        logging={"file": str(log), "level": "debug"},
    )
    process = subprocess.Popen([pvc_bin, "node", "run", "--config", str(config)])
    try:
        deadline = time.monotonic() + 20
        while "node daemon running" not in (log.read_text() if log.exists() else ""):
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        process.terminate()
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert ZK_SECRET not in Path(log).read_text()
