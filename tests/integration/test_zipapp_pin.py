"""A running node daemon survives dist/pvc being replaced under it (an upgrade by copy)."""

import shutil
import subprocess
import time

from tests.local_cluster import PVC_BIN


def test_daemon_keeps_its_own_code_when_the_file_is_replaced(tmp_path, zk_hosts):
    from tests.conftest import write_config

    binary = tmp_path / "pvc"
    shutil.copy(PVC_BIN, binary)
    config = write_config(
        tmp_path / "pvc.conf",
        zk_hosts,
        api={"authentication": {"enabled": False}, "serve_on_primary": False},
        logging={"file": str(tmp_path / "pvc.log")},
    )
    process = subprocess.Popen([str(binary), "node", "run", "--config", str(config)])
    try:
        deadline = time.monotonic() + 15
        while "node daemon running" not in _log(tmp_path):
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.1)
        assert "/proc/self/fd/" in " ".join(_cmdline(process.pid))
        replacement = tmp_path / "pvc.new"
        replacement.write_bytes(b"#!/usr/bin/python3\nnot the same program at all\n" * 1000)
        replacement.replace(binary)  # the upgrade: a new file under the same name
        process.terminate()  # shutting down imports code it has not used yet
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert "node daemon stopped" in _log(tmp_path)
    assert "Traceback" not in _log(tmp_path)


def _log(folder):
    path = folder / "pvc.log"
    return path.read_text() if path.exists() else ""


def _cmdline(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as handle:
        return handle.read().decode().split("\0")
