"""The node keepalive: this node's resources and a timestamp, in ONE transaction per interval.

Later issues add the VM figures (allocated and provisioned memory, vCPUs, VM counts) from the
VM controller; until then they are zero.
"""

import logging
import os
import platform
import time
from typing import Any

import pvc
from pvc.zk.handler import ZKHandler

log = logging.getLogger("pvc.node.keepalive")


def static_data() -> dict[str, Any]:
    """What does not change while the daemon runs."""
    return {
        "cores": os.cpu_count() or 1,
        "kernel": platform.release(),
        "os": _os_name(),
        "arch": platform.machine(),
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


def stats() -> dict[str, Any]:
    return {
        **memory_mib(),
        "mem_allocated": 0,
        "mem_provisioned": 0,
        "vcpus_allocated": 0,
        "load": round(os.getloadavg()[0], 2),
        "vms_total": 0,
        "vms_running": 0,
    }


def send(zk: ZKHandler, name: str, daemon_state: str, router_state: str, verbose: bool) -> None:
    """Writes one keepalive (and the daemon state) in one transaction."""
    figures = stats()
    zk.write(
        {
            ("node.stats", name): figures,
            ("node.keepalive", name): round(time.time(), 3),
            ("node.state.daemon", name): daemon_state,
            ("node.version", name): pvc.__version__,
        }
    )
    if verbose:
        log.info(
            "keepalive: %s, load %.2f, memory %d/%d MiB used",
            router_state,
            figures["load"],
            figures["mem_used"],
            figures["mem_total"],
        )
