"""pvc.node.install_runner when a script fails: a phase that raises (its phase and its own
message, on one line, no traceback), a script that does not load (no class, a syntax error, a
failing import, a class that is no VMBuilder), a create() without XML, a script that hangs
(the timeout stops it), one that ignores SIGTERM and keeps a process in its root (killed with
its process group), and a cancel. Each time nothing is left: no mount, no loop device, no work
directory, no process, and nothing written into the volumes. And a script that succeeds but
leaves a process holding its output: that process is killed, not waited for."""

# ruff: noqa: F811 (the fixtures are imported)

import json
import logging
import os
import subprocess
import sys
import time

import pytest

from pvc.drivers import volume_images
from pvc.errors import PvcError
from pvc.node import install_runner
from tests.local_cluster import REPO
from tests.storage_rig import ceph_config
from tests.volume_rig import MIB, ceph, clone_of_base, context, disk, images, rbd_pool  # noqa: F401

TIMEOUT = 600.0
HANG_TIMEOUT = 60.0  # generous: prepare (mkfs, mount) must be done by then
# A script that mounts a new root, writes where it was (the "report" argument), then does
# what `install` says.
REPORTING = """
import json, os, signal, subprocess, time

class VMBuilderScript(VMBuilder):
    def install(self):
        report = {{"root": self.root, "pid": os.getpid()}}
{install}
        with open(self.arguments["report"], "w") as file:
            json.dump(report, file)
{after}
"""


def reporting(install: str = "", after: str = "") -> str:
    indent = "        "
    lines = [indent + line for line in (install, after)]
    return REPORTING.format(install=lines[0], after=lines[1])


@pytest.fixture
def volume(images, rbd_pool):
    images.create(rbd_pool, "vm1_vda", 64 * MIB)
    return rbd_pool, "vm1_vda"


def start(ceph_service, text: str, volume, tmp_path, timeout: float = TIMEOUT,
          cancelled=lambda: False, phases: list | None = None) -> PvcError:  # fmt: skip
    """Runs `text` (named "bad") on a context with a new ext4 root on `volume`; its error."""
    vda = disk(*volume, filesystem="ext4", mountpoint="/")
    ctx = context([vda], arguments={"report": str(tmp_path / "report.json")})
    seen = [] if phases is None else phases
    with pytest.raises(PvcError) as failed:
        install_runner.run("bad", text, ctx, ceph_config(ceph_service), seen.append, cancelled,
                           timeout)  # fmt: skip
    assert "\n" not in failed.value.message and "Traceback" not in failed.value.message
    return failed.value


def assert_nothing_left(ceph, volume, tmp_path) -> None:
    """The report's root is unmounted and gone with its work directory and loop devices,
    its process ended, and the volume holds nothing (no write-back after a failure)."""
    report = json.loads((tmp_path / "report.json").read_text())
    work = os.path.dirname(report["root"])
    assert volume_images.mounted_under(work) == []
    assert not os.path.exists(work)
    assert volume_images.loops_of([os.path.join(work, "vda.img")]) == []
    for pid in [report["pid"], *report.get("children", [])]:
        assert not os.path.exists(f"/proc/{pid}") or "Z" in read_state(pid)
    assert volume_images.export_image(ceph, *volume, str(tmp_path / "after.img")) == 0


def read_state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def test_a_phase_that_raises_names_the_phase_and_its_message(tmp_path, ceph, ceph_service,
                                                             volume):  # fmt: skip
    phases: list[str] = []
    text = reporting(after='raise RuntimeError("network 100 is not\\nready")')
    failed = start(ceph_service, text, volume, tmp_path, phases=phases)
    assert failed.message == "install script 'bad', install: network 100 is not ready"
    assert phases == ["setup", "create", "prepare", "install", "cleanup"]
    assert_nothing_left(ceph, volume, tmp_path)


def test_a_script_that_does_not_load_is_named(tmp_path, ceph_service, volume):
    cases = {
        "import os\n": "script 'bad' does not define class VMBuilderScript (the install script: "
        "class VMBuilderScript(VMBuilder): ...)",
        "class VMBuilderScript(VMBuilder):\n    def install(self:\n        pass\n":
            "script 'bad' does not compile: '(' was never closed (line 2)",
        "import no_such_module\nclass VMBuilderScript(VMBuilder):\n    pass\n":
            "install script 'bad' does not load: No module named 'no_such_module'",
        "class VMBuilderScript:\n    pass\n":
            "install script 'bad': VMBuilderScript is not a subclass of VMBuilder",
        "class VMBuilderScript(VMBuilder):\n    def __init__(self):\n        pass\n":
            "install script 'bad' does not load: TypeError: VMBuilderScript.__init__() takes 1 "
            "positional argument but 5 were given",
    }  # fmt: skip
    for text, message in cases.items():
        phases: list[str] = []
        assert start(ceph_service, text, volume, tmp_path, phases=phases).message == message
        assert phases == []


def test_a_create_without_xml_is_refused(tmp_path, ceph, ceph_service, volume):
    text = reporting() + "    def create(self):\n        return None\n"
    failed = start(ceph_service, text, volume, tmp_path)
    assert failed.message == (
        "install script 'bad', create: create() must return the domain XML, a non-empty string"
    )
    assert not (tmp_path / "report.json").exists()  # install never ran
    assert volume_images.export_image(ceph, *volume, str(tmp_path / "after.img")) == 0


def test_a_script_that_hangs_is_stopped_at_the_timeout(tmp_path, ceph, ceph_service, volume):
    text = reporting(after="time.sleep(3600)")
    failed = start(ceph_service, text, volume, tmp_path, timeout=HANG_TIMEOUT)
    assert failed.message == "install script 'bad', install: did not finish within 60 s (stopped)"
    assert_nothing_left(ceph, volume, tmp_path)


def test_a_script_that_ignores_sigterm_is_killed_with_its_processes(tmp_path, ceph, ceph_service,
                                                                    volume, caplog):  # fmt: skip
    install = (
        "signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "sleeper = subprocess.Popen(['sleep', '3600'], cwd=self.root); "  # keeps the root busy
        "report['children'] = [sleeper.pid]"
    )
    text = reporting(install, after="time.sleep(3600)")
    with caplog.at_level(logging.WARNING, logger="pvc.node.install_runner"):
        failed = start(ceph_service, text, volume, tmp_path, timeout=HANG_TIMEOUT)
    assert failed.message == "install script 'bad', install: did not finish within 60 s (stopped)"
    assert_nothing_left(ceph, volume, tmp_path)
    assert "left mounted by an install script" in caplog.text  # the runner unmounted it


def test_a_cancel_stops_the_script(tmp_path, ceph, ceph_service, volume):
    text = reporting(after="time.sleep(3600)")
    report = tmp_path / "report.json"
    started = time.monotonic()
    failed = start(ceph_service, text, volume, tmp_path, cancelled=report.exists)
    assert failed.message == "install script 'bad', install: cancelled"
    assert time.monotonic() - started < TIMEOUT
    assert_nothing_left(ceph, volume, tmp_path)


def test_a_mountpoint_cannot_reach_out_of_the_root(tmp_path, ceph, ceph_service, images,
                                                   rbd_pool):  # fmt: skip
    """A mountpoint with `..`, or through a symbolic link in a cloned image (which anyone who
    made the image chose), is refused before anything is made or mounted there."""
    host = tmp_path / "host"
    host.mkdir()
    clone_of_base(tmp_path, ceph, images, rbd_pool, "vm1_vda",
                  lambda mounted: (mounted / "srv").symlink_to(host))  # fmt: skip
    images.create(rbd_pool, "vm1_vdb", 64 * MIB)
    noop = "class VMBuilderScript(VMBuilder):\n    pass\n"
    config = ceph_config(ceph_service)
    link = (
        "'/srv' is a symbolic link in the VM's filesystem (not followed: it would resolve on "
        "the host)"
    )
    for mountpoint, why in (("/srv/data/deep", link), ("/srv", link),
                            ("/../../x", "'/../../x' is outside the VM's root")):  # fmt: skip
        disks = [
            disk(rbd_pool, "vm1_vda", mountpoint="/", source_volume="base"),
            disk(rbd_pool, "vm1_vdb", "vdb", filesystem="ext4", mountpoint=mountpoint),
        ]
        with pytest.raises(PvcError) as refused:
            install_runner.run("bad", noop, context(disks), config, print, lambda: False,
                               TIMEOUT)  # fmt: skip
        assert volume_images.mounted_under(str(host)) == [] and list(host.iterdir()) == []
        said = f"install script 'bad', prepare: mountpoint '{mountpoint}' refused: {why}"
        assert refused.value.message == said
    assert volume_images.export_image(ceph, rbd_pool, "vm1_vdb", str(tmp_path / "b.img")) == 0


def test_a_process_left_holding_the_output_is_killed_not_waited_for(tmp_path, ceph_service,
                                                                     volume):  # fmt: skip
    install = (
        "sleeper = subprocess.Popen(['sleep', '600'], start_new_session=False); "  # its stdout
        "report['children'] = [sleeper.pid]"
    )
    vda = disk(*volume, filesystem="ext4", mountpoint="/")
    report = tmp_path / "report.json"
    ctx = context([vda], arguments={"report": str(report)})
    xml = install_runner.run("stray", reporting(install), ctx, ceph_config(ceph_service), print,
                             lambda: False, HANG_TIMEOUT)  # fmt: skip
    assert xml == ctx["xml"]
    (sleeper,) = json.loads(report.read_text())["children"]
    assert not os.path.exists(f"/proc/{sleeper}") or "Z" in read_state(sleeper)


RUNNER = """
import json, sys
sys.path.insert(0, sys.argv[1])
from pvc import config
from pvc.node import install_runner
given = json.load(sys.stdin)
install_runner.run("bad", given["text"], given["context"], config.from_dict(given["config"]),
                   print, lambda: False, 600)
"""


def test_a_script_whose_runner_dies_stops_and_cleans_up(tmp_path, ceph, ceph_service, volume):
    vda = disk(*volume, filesystem="ext4", mountpoint="/")
    report = tmp_path / "report.json"
    given = {"text": reporting(after="time.sleep(3600)"),
             "config": ceph_config(ceph_service).as_dict(),
             "context": context([vda], arguments={"report": str(report)})}  # fmt: skip
    runner = subprocess.Popen([sys.executable, "-c", RUNNER, str(REPO)], stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, text=True)  # fmt: skip
    runner.stdin.write(json.dumps(given))
    runner.stdin.close()
    deadline = time.monotonic() + TIMEOUT
    while not report.exists():
        assert runner.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    runner.kill()
    runner.wait()
    work = os.path.dirname(json.loads(report.read_text())["root"])
    while os.path.exists(work):  # the orphaned child cleans up by itself
        assert time.monotonic() < deadline, volume_images.mounted_under(work)
        time.sleep(0.2)
    assert_nothing_left(ceph, volume, tmp_path)


def test_the_work_folder_is_made_where_the_config_says(tmp_path, ceph_service, volume):
    """provisioner.work_directory (a disk-backed folder where /tmp is a tmpfs) holds the work
    folder, removed afterwards; a folder that is not there is named in one line."""
    where = tmp_path / "work"
    where.mkdir()
    report = tmp_path / "report.json"
    ctx = context([disk(*volume, filesystem="ext4", mountpoint="/")],
                  arguments={"report": str(report)})  # fmt: skip
    config = ceph_config(ceph_service, provisioner={"work_directory": str(where)})
    install_runner.run("good", reporting(), ctx, config, print, lambda: False, TIMEOUT)
    root = json.loads(report.read_text())["root"]
    assert os.path.dirname(os.path.dirname(root)) == str(where)
    assert os.listdir(where) == []
    missing = ceph_config(ceph_service, provisioner={"work_directory": str(tmp_path / "none")})
    with pytest.raises(PvcError) as failed:
        install_runner.run("good", reporting(), ctx, missing, print, lambda: False, TIMEOUT)
    assert failed.value.message == (
        f"install script 'good': cannot make its work folder in {tmp_path}/none: "
        "No such file or directory"
    )
