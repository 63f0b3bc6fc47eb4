"""The shape the primary's network services share (gateways, DHCP and DNS, the forwarder).

Each is a primary-only controller (pvc.node.controller) with the PrimaryService face (name,
start, stop, running) for the primary's registry, fed by the mirror's changes under
/networks and by a resync every keepalive interval. Its steps and its stop run one at a
time under one lock, and a step that finds the controller stopping does nothing: so what a
stop released is never brought back by a step that was still running.
"""

import threading

from pvc.config import Config
from pvc.node.controller import Controller
from pvc.node.lease import PrimaryLease
from pvc.zk.cache import CachedView
from pvc.zk.handler import resolve

_NETWORKS = resolve("base.networks")[0]
_LEASES = resolve(("network.leases", "0"))[0].rsplit("/", 1)[1]


def network_of(path: str) -> str | None:
    """The VNI (text) a mirror change under /networks belongs to; None for another path, and
    for a lease (the DHCP controller's own writes: nothing to do for any service)."""
    if not path.startswith(_NETWORKS + "/"):
        return None
    parts = path[len(_NETWORKS) + 1 :].split("/")
    if not parts[0].isdigit() or (len(parts) > 1 and parts[1] == _LEASES):
        return None
    return parts[0]


class NetworkService:
    """Subclasses give `name`, `_keys()`, `_step(key)` (called with the lock held) and
    `_release()` (what stop undoes, with the lock held)."""

    name = "network service"

    def __init__(self, view: CachedView, config: Config, lease: PrimaryLease, label: str):
        self.view = view
        self.lease = lease
        self._lock = threading.Lock()
        self.controller = Controller(
            label,
            self._locked_step,
            resync=self._keys,
            resync_interval=config.get("timers.keepalive_interval"),
        )
        view.mirror.listen(self._on_mirror)

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()
        with self._lock:
            self._release()

    def running(self) -> bool:
        return self.controller.running()

    def _on_mirror(self, path: str, _data: bytes | None) -> None:
        vni = network_of(path)
        if vni is not None:
            self._network_changed(vni)

    def _network_changed(self, vni: str) -> None:
        self.controller.enqueue(vni)

    def _locked_step(self, key: str) -> float | None:
        with self._lock:
            if self.controller.stopping.is_set():
                return None
            return self._step(key)

    def _keys(self) -> list[str]:
        raise NotImplementedError

    def _step(self, key: str) -> float | None:
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError
