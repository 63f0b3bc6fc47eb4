"""Fault injection for the nodes of a LocalCluster whose libvirtds LibvirtNodes runs: pulling the
plug and powering on again, freezing, cutting the network. For the HA tests and, as shell
commands, for the simulated IPMI BMCs whose chassis power off/on runs them.

A node is its network namespace: its daemon, the daemon's watchdog, tini, libvirtd and the QEMU
processes all live in it, and nothing else does, so "every process whose /proc/PID/ns/net is the
node's namespace" is the machine. The namespace itself (address, link to the bridge) stays when
the node is off, as a powered-off machine's cable does.

- power_off: SIGSTOP every process of the node, again until no new one appears (so none of them
  reacts to another's death, or forks), then SIGKILL them all and wait until they are dead, every
  thread (a QEMU's files are closed then): 20-50 ms here. The calling process and its
  ancestors are spared (a BMC never kills itself).
- power_on: what a boot does, and nothing for what already runs: libvirt's /run emptied if the
  node was off (a tmpfs on a real host, so the old domain status files are gone; definitions in
  /etc/libvirt stay), libvirtd started (scripts/libvirt-node up), then the daemon.
- freeze: SIGSTOP the daemon only, the realistic hang (deadlock, swapped out, stopped in a
  debugger): libvirtd, the daemon's watchdog and the VMs keep running, so the node's VMs keep
  running while its Zookeeper session expires: the case fencing and self-fencing must handle.
  whole=True stops every process of the node instead (a hung machine: its QEMUs still exist,
  stopped, and can resume). thaw sends SIGCONT to every process of the node.
- cut: a netdev nftables table on the node's eth0, ingress and egress hooks, drops every frame
  (ARP too), or only IPv4 to and from given addresses. Dropping at the device, not in the IP
  output hook, so the node's programs see silence (timeouts), not EPERM, as with a cut cable.
  Local traffic and the VMs keep running. heal deletes the table.

Shell use (standard library only, so any python3 runs it):
    python3 tests/chaos/node_faults.py power-off --netns NS
    python3 tests/chaos/node_faults.py power-on --netns NS --libvirt-basedir DIR --config CONF NAME
    python3 tests/chaos/node_faults.py power-status --netns NS        (prints on or off)
    python3 tests/chaos/node_faults.py freeze|thaw|heal --netns NS     (freeze --whole)
    python3 tests/chaos/node_faults.py cut --netns NS [ADDRESS...]
NodeFaults.command(action, name) gives the argv for one node of a cluster. A daemon started by
the shell power-on is not LocalCluster's: NodeFaults.close() (every plug pulled) kills it, so
call that before LocalCluster.down().
"""

import argparse
import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.libvirt_nodes import LibvirtNodes
    from tests.local_cluster import LocalCluster

REPO = Path(__file__).resolve().parent.parent.parent
PVC_BIN = REPO / "dist" / "pvc"
LIBVIRT_NODE = REPO / "scripts" / "libvirt-node"
CUT_TABLE = "pvc_chaos_cut"
POWER_OFF_TIMEOUT = 10.0
COMMAND_TIMEOUT = 120.0  # tests.processes.COMMAND_TIMEOUT (this file runs on the standard library)
SYSTEM_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


# --- processes of a namespace -----------------------------------------------------------------


def namespace_id(netns: str) -> tuple[int, int]:
    info = os.stat(f"/run/netns/{netns}")
    return info.st_dev, info.st_ino


def _lineage() -> set[int]:
    """This process and its ancestors."""
    pids, pid = set(), os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                pid = int(stat.read().rpartition(b")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def processes_in(netns: str) -> list[int]:
    """The live processes (not zombies) in the network namespace, but this one and its
    ancestors."""
    target, spared = namespace_id(netns), _lineage()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) in spared:
            continue
        try:
            info = os.stat(f"/proc/{entry.name}/ns/net")  # fails for a zombie
        except OSError:
            continue
        if (info.st_dev, info.st_ino) == target:
            found.append(int(entry.name))
    return found


def _argv(pid: int) -> list[bytes]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read().split(b"\0")
    except OSError:
        return []


def daemon_pids(netns: str) -> list[int]:
    """The pvc node daemons (`pvc node run`) in the namespace; their watchdogs are not."""
    found = []
    for pid in processes_in(netns):
        argv = _argv(pid)
        if any(argv[i : i + 2] == [b"node", b"run"] for i in range(len(argv) - 1)):
            found.append(pid)
    return found


def _signal(pids: Iterable[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _state(pid: int) -> str:
    """The state letter of /proc/PID/stat (T: stopped, Z: zombie), "" once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[0].decode()
    except (OSError, IndexError):
        return ""


def stop_all(netns: str, settle: float = 2.0) -> set[int]:
    """SIGSTOP every process of the namespace and wait until they are stopped (a signal takes
    effect a moment later; a process in uninterruptible sleep, up to `settle` seconds), again
    until a scan finds no new one; the pids."""
    stopped: set[int] = set()
    while found := set(processes_in(netns)) - stopped:
        _stop(found, settle)
        stopped |= found
    return stopped


def _stop(pids: Iterable[int], settle: float = 2.0) -> None:
    """SIGSTOP, and wait until they are stopped (or gone), up to `settle` seconds."""
    _signal(pids, signal.SIGSTOP)
    deadline = time.monotonic() + settle
    while any(_state(pid) not in ("T", "t", "Z", "X", "") for pid in pids):
        if time.monotonic() > deadline:
            return
        time.sleep(0.001)


# --- the faults, by namespace (what the shell commands run) -----------------------------------


def power_off(netns: str, timeout: float = POWER_OFF_TIMEOUT) -> float:
    """Pulls the plug: every process of the node stopped, then killed; the seconds it took."""
    started = time.monotonic()
    killed = stop_all(netns)
    _signal(killed, signal.SIGKILL)
    while left := [pid for pid in killed if not _dead(pid)] + processes_in(netns):
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"processes of {netns} still alive: {left}")
        time.sleep(0.005)
    return time.monotonic() - started


def _dead(pid: int) -> bool:
    """Gone or a zombie, and so are all its threads: a process leaves its namespace before its
    threads are done exiting (and a QEMU's image files are closed)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return True
    return all(_state(int(task)) in ("Z", "X", "") for task in tasks)


def is_on(netns: str) -> bool:
    return bool(processes_in(netns))


def power_on(name: str, netns: str, libvirt_basedir: Path, config: Path) -> None:
    """Boots the node: libvirtd, then the daemon, each unless it runs already."""
    _empty_run_if_off(name, netns, libvirt_basedir)
    subprocess.run(
        [str(LIBVIRT_NODE), "up", name, str(libvirt_basedir), netns],
        check=True, capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
    )  # fmt: skip
    if not daemon_pids(netns):
        _start_daemon(netns, config)


def _empty_run_if_off(name: str, netns: str, libvirt_basedir: Path) -> None:
    """A cold boot: /run (a tmpfs on a real host) starts empty."""
    run = Path(libvirt_basedir) / name / "run"
    if not is_on(netns) and run.is_dir():
        shutil.rmtree(run)
        run.mkdir()


def _start_daemon(netns: str, config: Path) -> subprocess.Popen:
    """As LocalCluster.start does, in its own session so the shell command can exit."""
    with open(Path(config).parent / "stderr.log", "ab") as stderr:
        return subprocess.Popen(
            ["ip", "netns", "exec", netns, str(PVC_BIN), "node", "run", "--config", str(config)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
            start_new_session=True,
        )  # fmt: skip


def freeze(netns: str, whole: bool = False) -> list[int]:
    """SIGSTOP the daemon (whole: every process of the node); the pids stopped."""
    if whole:
        return sorted(stop_all(netns))
    pids = daemon_pids(netns)
    _stop(pids)
    return pids


def thaw(netns: str) -> None:
    """SIGCONT to every process of the node (harmless to those not stopped)."""
    _signal(processes_in(netns), signal.SIGCONT)


def _nft(netns: str, script: str) -> None:
    result = subprocess.run(
        ["ip", "netns", "exec", netns, "nft", "-f", "-"],
        input=script, capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"nft in {netns} failed: {result.stderr.strip()}")


def cut(netns: str, addresses: Iterable[str] = (), device: str = "eth0") -> None:
    """Drops the node's frames on `device` both ways: all of them, or IPv4 to and from
    `addresses` only. Replaces an earlier cut."""
    targets = ", ".join(addresses)
    policy = "accept" if targets else "drop"
    inbound = f"ip saddr {{ {targets} }} drop;" if targets else ""
    outbound = f"ip daddr {{ {targets} }} drop;" if targets else ""
    hook = f'device "{device}" priority -500; policy {policy};'
    _nft(
        netns,
        f"""table netdev {CUT_TABLE}
delete table netdev {CUT_TABLE}
table netdev {CUT_TABLE} {{
    chain ingress {{ type filter hook ingress {hook} {inbound} }}
    chain egress {{ type filter hook egress {hook} {outbound} }}
}}
""",
    )


def heal(netns: str) -> None:
    _nft(netns, f"table netdev {CUT_TABLE}\ndelete table netdev {CUT_TABLE}\n")


# --- for a LocalCluster -----------------------------------------------------------------------


class NodeFaults:
    """The faults above for the nodes of a LocalCluster (by node name), keeping the cluster's
    record of its daemons right so its tear-down still finds them."""

    def __init__(self, cluster: "LocalCluster", libvirt_nodes: "LibvirtNodes"):
        self.cluster = cluster
        self.libvirt = libvirt_nodes

    def netns(self, name: str) -> str:
        return self.cluster.namespace(name)

    def power_off(self, name: str) -> float:
        """Pulls the plug of the node; the seconds it took (until all its processes are gone)."""
        seconds = power_off(self.netns(name))
        process = self.cluster.processes.pop(name, None)
        if process is not None:  # the killed daemon, a zombie of this process until then
            process.wait(POWER_OFF_TIMEOUT)
        return seconds

    def power_on(self, name: str) -> None:
        """Boots the node (libvirtd, then the daemon as LocalCluster.start does); a no-op for
        whatever runs already."""
        netns = self.netns(name)
        _empty_run_if_off(name, netns, self.libvirt.basedir)
        index = self.cluster.names.index(name) + 1
        self.libvirt.start(name, netns, f"{self.cluster.subnet}.{10 + index}")
        if not daemon_pids(netns):
            self.cluster.start(name)

    def is_on(self, name: str) -> bool:
        return is_on(self.netns(name))

    def daemon_pids(self, name: str) -> list[int]:
        return daemon_pids(self.netns(name))

    def freeze(self, name: str, whole: bool = False) -> list[int]:
        return freeze(self.netns(name), whole)

    def thaw(self, name: str) -> None:
        thaw(self.netns(name))

    def cut(self, name: str, addresses: Iterable[str] = ()) -> None:
        cut(self.netns(name), addresses)

    def heal(self, name: str) -> None:
        heal(self.netns(name))

    def command(self, action: str, name: str) -> list[str]:
        """The shell command (argv) for one action on one node, e.g. for a BMC."""
        argv = [sys.executable, str(Path(__file__).resolve()), action, "--netns", self.netns(name)]
        if action == "power-on":
            config = self.cluster.workdir / name / "pvc.conf"
            argv += ["--libvirt-basedir", str(self.libvirt.basedir), "--config", str(config), name]
        return argv

    def shell_command(self, action: str, name: str) -> str:
        return shlex.join(self.command(action, name))

    def close(self) -> None:
        """Pulls every node's plug, for tear-down before LocalCluster.down(): whatever runs in
        the namespaces dies, daemons the shell power-on started (which LocalCluster does not
        know) and any libvirtd LibvirtNodes no longer tracks included."""
        for name in self.cluster.names:
            if os.path.exists(f"/run/netns/{self.netns(name)}"):
                self.power_off(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Faults of one pvc test node (its netns).")
    parser.add_argument("action", choices=["power-off", "power-on", "power-status", "freeze",
                                           "thaw", "cut", "heal"])  # fmt: skip
    parser.add_argument("--netns", required=True, help="the node's network namespace")
    parser.add_argument("--libvirt-basedir", type=Path, help="power-on: LibvirtNodes.basedir")
    parser.add_argument("--config", type=Path, help="power-on: the node daemon's pvc.conf")
    parser.add_argument("--whole", action="store_true", help="freeze: every process")
    parser.add_argument("args", nargs="*", help="power-on: NAME; cut: addresses (default all)")
    options = parser.parse_intermixed_args(argv)
    # a BMC may run us with a bare environment: ip, nft, unshare and libvirtd live in sbin
    path = os.environ.get("PATH", "").split(":")
    os.environ["PATH"] = ":".join(path + [d for d in SYSTEM_PATH if d not in path])
    if options.action == "power-off":
        print(f"off in {power_off(options.netns):.3f} s")
    elif options.action == "power-on":
        if not (options.libvirt_basedir and options.config and len(options.args) == 1):
            parser.error("power-on needs --libvirt-basedir, --config and the node's NAME")
        power_on(options.args[0], options.netns, options.libvirt_basedir, options.config)
    elif options.action == "power-status":
        print("on" if is_on(options.netns) else "off")
    elif options.action == "freeze":
        print(" ".join(map(str, freeze(options.netns, options.whole))))
    elif options.action == "thaw":
        thaw(options.netns)
    elif options.action == "cut":
        cut(options.netns, options.args)
    else:
        heal(options.netns)
    return 0


if __name__ == "__main__":
    sys.exit(main())
