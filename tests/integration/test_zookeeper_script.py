"""scripts/zookeeper keeps the server's files to itself: its folders are 0700, the files it
writes (the transaction log holds every value, IPMI passwords included) are not readable by
others, and a folder an older version left open is closed when it starts."""

import stat
import subprocess
from pathlib import Path

from pvc.zk.handler import ZKHandler
from tests.conftest import REPO, ZK_SECRET, free_port

SCRIPT = str(REPO / "scripts" / "zookeeper")
PASSWORD = "hunter22-in-the-log"


def opened_to_others(folder: Path) -> list[str]:
    """Every path under `folder` (itself included) that group or others may use."""
    paths = [folder, *folder.rglob("*")]
    return [f"{path} {oct(path.stat().st_mode)}" for path in paths if path.stat().st_mode & 0o077]


def test_data_and_logs_are_private_and_an_open_folder_is_closed(tmp_path):
    folder = tmp_path / "zookeeper"
    (folder / "data").mkdir(parents=True)
    (folder / "data").chmod(0o755)  # as the script left it before
    folder.chmod(0o755)
    (folder / "zk.log").write_text("an old log\n")
    (folder / "zk.log").chmod(0o644)
    port = free_port()
    subprocess.run([SCRIPT, "start", str(folder), str(port)], check=True, capture_output=True)
    try:
        pid = (folder / "zk.pid").read_text().strip()
        umask = next(
            line.split()[1]
            for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if line.startswith("Umask:")
        )
        assert umask == "0077"
        zk = ZKHandler(f"127.0.0.1:{port}", connect_timeout=10, secret=ZK_SECRET).connect()
        try:
            zk.write_private(("private.ipmi", "node1"), {"password": PASSWORD})
        finally:
            zk.close()
        logs = list((folder / "data").rglob("log.*"))
        assert any(PASSWORD.encode() in log.read_bytes() for log in logs)  # why this matters
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert stat.S_IMODE((folder / "data").stat().st_mode) == 0o700
        assert opened_to_others(folder) == []
    finally:
        subprocess.run([SCRIPT, "stop", str(folder)], check=False, capture_output=True)
