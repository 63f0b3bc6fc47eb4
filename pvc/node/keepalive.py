"""The node keepalive: this node's resources and a timestamp, in ONE transaction per interval."""

import logging
import os
import platform
import time
import urllib.parse
from typing import Any

import pvc
from pvc.zk.handler import ZKHandler

log = logging.getLogger("pvc.node.keepalive")


def static_data(libvirt_uri: str, self_fence_after: float) -> dict[str, Any]:
    """What does not change while the daemon runs, with how other nodes reach its libvirt and
    how long after its last keepalive it destroys its VMs on its own (0: never)."""
    return {
        "self_fence_after": self_fence_after,
        "cores": os.cpu_count() or 1,
        "kernel": platform.release(),
        "os": _os_name(),
        "arch": platform.machine(),
        "libvirt_uri": libvirt_uri,
        "address": urllib.parse.urlparse(libvirt_uri).hostname,
    }


def _os_name() -> str:
    try:
        with open("/etc/os-release", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


def memory_mib() -> dict[str, int]:
    """Total, used and free memory in MiB, from /proc/meminfo (free = available to programs)."""
    values: dict[str, int] = {}
    with open("/proc/meminfo", encoding="utf-8") as handle:
        for line in handle:
            name, _, rest = line.partition(":")
            values[name] = int(rest.split()[0]) // 1024
    total, available = values["MemTotal"], values.get("MemAvailable", values["MemFree"])
    return {"mem_total": total, "mem_used": total - available, "mem_free": available}


def stats(vm_figures: dict[str, int]) -> dict[str, Any]:
    """Memory and load of the host, and what its VMs hold (from the VM controller)."""
    return {
        **memory_mib(),
        "mem_allocated": 0,
        "mem_provisioned": 0,
        "vcpus_allocated": 0,
        "vms_running": 0,
        "vms_total": 0,
        **vm_figures,
        "load": round(os.getloadavg()[0], 2),
    }


def send(
    zk: ZKHandler,
    name: str,
    router_state: str,
    vm_figures: dict[str, int],
    verbose: bool,
) -> None:
    """Writes one keepalive (and the daemon state `run`) in one transaction."""
    figures = stats(vm_figures)
    zk.write(
        {
            ("node.stats", name): figures,
            ("node.keepalive", name): round(time.time(), 3),
            ("node.state.daemon", name): "run",
            ("node.version", name): pvc.__version__,
        }
    )
    if verbose:
        log.info(
            "keepalive: %s, %d VMs running, load %.2f, memory %d/%d MiB used",
            router_state,
            figures["vms_running"],
            figures["load"],
            figures["mem_used"],
            figures["mem_total"],
        )
