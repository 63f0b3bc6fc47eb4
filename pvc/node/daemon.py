"""`pvc node run`: the node daemon.

Life cycle (daemon state in Zookeeper): init -> run -> shutdown -> stop.
1. Read the configuration; a node not in `cluster.coordinators` runs as a hypervisor.
2. Connect to Zookeeper, retrying with backoff (each try logged) until it answers or we are
   told to stop. Bring an older tree up to the current schema; create the tree if there is none.
3. Register: claim the ephemeral liveness node `/nodes/<name>/alive`. If another session holds
   it (a daemon of the same name elsewhere, or this node's previous, crashed run), wait up to a
   session timeout for it to go; if it stays, another daemon is alive: refuse to start.
   Publish this node's BMC (ipmi.*) in a private key, for whoever must fence it.
4. Every node builds its networks' links (pvc.node.networks) and runs its firewall
   (pvc.node.firewall). A coordinator with `api.serve_on_primary`
   starts the API as its child process, warm whether primary or not (pvc.node.api_process).
   Start the watchdog process
   (pvc.node.watchdog). Coordinators start primary contention (pvc.node.primary_contention),
   whose lease the watchdog enforces; its registry of primary services
   (pvc.node.primary_services) holds the floating address and runs the primary-only
   controllers, the fence monitor (pvc.node.fencing) among them, and with Ceph the storage
   statistics collector (pvc.node.storage_stats). With libvirt, the VM controller
   (pvc.node.vms) starts. With Ceph: the OSD controller (pvc.node.osds), whose OSD jobs
   the job runner runs (pvc.node.osd_jobs); the storage client (pvc.node.storage_client:
   this node's storage address, the lifting of its storage fence); and, with libvirt too,
   the disk sizes controller (pvc.node.disk_sizes: a volume grown reaches its guest).
5. Keepalive every `timers.keepalive_interval`; the first one sets the daemon state `run`
   (then the node may contend) and tells systemd READY=1. After a lost session the next
   keepalive comes at once and registers the node again in the new session. With
   self-fencing on, each keepalive written moves the watchdog's self-fence deadline.
SIGTERM/SIGINT: shut down cleanly (a primary hands its role over first), in bounded time even
without Zookeeper (pvc.node.shutdown); a second one exits at once. SIGHUP: reopen logs (the
API child's too).
"""

import logging
import os
import signal
import threading
import time

from pvc import config as pvc_config
from pvc import logs
from pvc.config import Config
from pvc.errors import Conflict, PvcError, Unavailable
from pvc.node import keepalive, sdnotify, shutdown
from pvc.node.api_process import ApiProcess
from pvc.node.dhcp import Dhcp
from pvc.node.disk_sizes import DiskSizes
from pvc.node.dns_forwarder import DnsForwarder
from pvc.node.fencing import FenceMonitor
from pvc.node.firewall import Firewall, host_records
from pvc.node.gateways import Gateways
from pvc.node.jobs import JobRunner
from pvc.node.lease import PrimaryLease
from pvc.node.metadata import MetadataService
from pvc.node.networks import NodeNetworks
from pvc.node.osds import OsdController
from pvc.node.primary_contention import Coordinator
from pvc.node.primary_services import PrimaryService, for_node
from pvc.node.storage_client import StorageClient
from pvc.node.vms import VmController
from pvc.node.watchdog_process import WatchdogProcess
from pvc.zk import handler, migrations
from pvc.zk.cache import CachedView, open_mirror

log = logging.getLogger("pvc.node")


def connect_with_backoff(config: Config, stopping: threading.Event) -> handler.ZKHandler | None:
    """Connects to Zookeeper, retrying forever with a backoff of up to 10 s; None if stopped."""
    delay = 0.5
    attempt = 1
    while not stopping.is_set():
        try:
            return handler.connect(config)
        except Unavailable as exc:
            log.warning("attempt %d: %s; retrying in %.1f s", attempt, exc.message, delay)
        if stopping.wait(delay):
            return None
        delay = min(delay * 2, 10.0)
        attempt += 1
    return None


class NodeDaemon:
    def __init__(self, config: Config):
        self.config = config
        self.name = config.node_name
        self.coordinator_mode = self.name in config.coordinators
        self.stopping = threading.Event()
        self.registered = threading.Event()
        self.wakeup = threading.Event()  # an early keepalive: session change or stop
        self.reopen_logs = threading.Event()
        self.zk: handler.ZKHandler | None = None
        self.coordinator: Coordinator | None = None
        self.lease: PrimaryLease | None = None
        self.vms: VmController | None = None
        self.osds: OsdController | None = None
        self.jobs: JobRunner | None = None
        self.storage: StorageClient | None = None
        self.disk_sizes: DiskSizes | None = None
        self.networks: NodeNetworks | None = None
        self.firewall: Firewall | None = None
        self.view: CachedView | None = None  # the cluster tree in memory, shared by every part
        self.watchdog: WatchdogProcess | None = None
        self.api: ApiProcess | None = None
        self.cutoff: shutdown.ZookeeperCutoff | None = None
        interval = config.get("timers.keepalive_interval")
        self.self_fence_after = config.get("timers.suicide_intervals") * interval
        if not config.get("libvirt.enabled"):
            self.self_fence_after = 0  # no VMs here to fence

    # --- start --------------------------------------------------------------------------------

    def run(self) -> int:
        signal.signal(signal.SIGTERM, lambda *_: self._stop())
        signal.signal(signal.SIGINT, lambda *_: self._stop())
        signal.signal(signal.SIGHUP, lambda *_: self._request_log_reopen())
        mode = "coordinator" if self.coordinator_mode else "hypervisor"
        if not self.coordinator_mode:
            log.info("%s is not in cluster.coordinators: running as a hypervisor", self.name)
        log.info("pvc node daemon starting: %s (%s)", self.name, mode)
        self.zk = connect_with_backoff(self.config, self.stopping)
        if self.zk is None:
            return 0
        deadline = shutdown.deadline_seconds(self.config)
        self.cutoff = shutdown.ZookeeperCutoff(self.zk, self.stopping, deadline)
        try:
            self._prepare_tree()
            self._register(mode)
            self._publish_bmc()
            self._start_api()
            self.view = CachedView(self.zk, open_mirror(self.zk))
            self.watchdog = WatchdogProcess()
            self._start_networks()
            self._start_firewall()
            if self.coordinator_mode:
                self._start_coordinator()
            if self.config.get("libvirt.enabled"):
                self._start_vms()
            if self.config.get("ceph.enabled"):
                self._start_osds()
                self._start_storage_client()
            self._start_jobs()
            self.zk.add_listener(self._on_session)
            self._keepalive_loop()
        finally:
            self._shutdown()
        return 0

    def _prepare_tree(self) -> None:
        from pvc.ops import cluster

        migrations.upgrade(self.zk)
        if not cluster.is_initialized(self.zk):
            try:
                cluster.initialize(self.zk, name=self.config.get("cluster.name"))
                log.info("no cluster tree in Zookeeper: created a new one")
            except Conflict:
                pass  # another daemon created it first

    def _register(self, mode: str) -> None:
        """Claims the liveness node and writes this node's static data, in this session."""
        deadline = time.monotonic() + self.zk.negotiated_session_timeout + 2
        while not self.zk.claim_ephemeral(("node.alive", self.name), str(self.zk.session_id)):
            if time.monotonic() > deadline:
                raise Conflict(
                    f"a node daemon named {self.name} is already running (its Zookeeper "
                    "session is alive); refusing to start a second one"
                )
            if self.stopping.wait(0.2):
                return
        self.zk.write(
            {
                ("node", self.name): mode,
                ("node.mode", self.name): mode,
                ("node.state.daemon", self.name): "init",
                ("node.static", self.name): keepalive.static_data(
                    self._libvirt_peer_uri(), self.self_fence_after
                ),
            }
        )
        # A new session holds no primary lease, so whatever an earlier process (or session)
        # left here, this node is not primary now; a successor waits for this to say so.
        router = "secondary" if self.coordinator_mode else "client"
        self.zk.write({("node.state.router", self.name): router})
        if not self.zk.exists(("node.state.domain", self.name)):
            self.zk.write({("node.state.domain", self.name): "ready"})
        self.registered.set()
        log.info("registered in Zookeeper (session 0x%x)", self.zk.session_id or 0)

    def _publish_bmc(self) -> None:
        """This node's BMC and credentials, readable only by daemons (zookeeper.secret)."""
        host = self.config.get("ipmi.host")
        if not host:
            log.warning("no IPMI configured (ipmi.host): this node cannot be fenced")
            return
        bmc = {key: self.config.get(f"ipmi.{key}") for key in ("host", "port", "user", "password")}
        self.zk.write_private(("private.ipmi", self.name), bmc)

    def _libvirt_peer_uri(self) -> str:
        return self.config.get("libvirt.migration_uri") or f"qemu+tcp://{self.name}/system"

    def _start_api(self) -> None:
        if not (self.coordinator_mode and self.config.get("api.serve_on_primary")):
            return
        if self.config.path is None:
            log.warning("no configuration file to give the API process: not serving the API")
            return
        self.api = ApiProcess(self.config.path)
        self.api.start()

    def _start_networks(self) -> None:
        self.networks = NodeNetworks(self.view, self.name, self.config)
        self.networks.start()

    def _start_firewall(self) -> None:
        """pvc's nftables tables on this node (pvc.node.firewall), on every node."""
        self.firewall = Firewall(
            self.view,
            self.name,
            host_records(self.config),
            self.config.get("timers.keepalive_interval"),
        )
        self.firewall.start()

    def _start_vms(self) -> None:
        self.vms = VmController(self.zk, self.name, self.config, self.view, self.registered)
        self.vms.start()

    def _start_osds(self) -> None:
        from pvc.drivers import ceph, ceph_volume, osd_process

        cluster = ceph.shared(self.config)
        conf = self.config.get("ceph.config_file")
        devices = ceph_volume.CephVolume(conf, self.config.get("ceph.bootstrap_keyring"))
        processes = osd_process.for_host(conf, cluster)
        interval = self.config.get("timers.keepalive_interval")
        self.osds = OsdController(self.view, self.name, cluster, devices, processes, interval)
        self.osds.start()

    def _start_storage_client(self) -> None:
        """Publishes this node's storage address and lifts its storage fence when it may;
        with VMs here, lets their guests see their volumes grow (pvc.node.disk_sizes)."""
        from pvc.drivers import ceph

        vms = self.vms
        if vms:
            self.disk_sizes = DiskSizes(vms, self.config.get("timers.keepalive_interval"))
            self.disk_sizes.start()
        self.storage = StorageClient(
            self.zk,
            self.view,
            self.name,
            ceph.shared(self.config),
            vms.leftovers if vms else list,
            self.config.get("timers.keepalive_interval"),
        )
        self.storage.start()

    def _start_jobs(self) -> None:
        """The job runner; a node that runs VMs runs its own flush and unflush jobs, a node
        with Ceph its OSD jobs."""
        from pvc.node import flush, osd_jobs, provision, storage_upload
        from pvc.ops.placement import Policy

        policy = Policy.from_config(self.config)
        kinds = flush.kinds(self.view, self.name, policy) if self.vms else {}
        kinds |= storage_upload.kinds(self.view, self.config)
        kinds |= provision.kinds(self.view, self.config, policy)
        if self.osds:
            kinds |= osd_jobs.kinds(self.name, self.osds)
        self.jobs = JobRunner(
            self.zk,
            self.view,
            self.name,
            kinds,
            keep=self.config.get("jobs.keep_finished"),
            resync_interval=self.config.get("timers.keepalive_interval"),
        )
        self.jobs.start()

    def _start_coordinator(self) -> None:
        assert self.zk is not None and self.view is not None and self.watchdog is not None
        self.lease = PrimaryLease(self.zk, self.watchdog)
        # primary-only controllers, started after the built-in services on takeover
        controllers: list[PrimaryService] = [
            FenceMonitor(self.zk, self.view, self.name, self.config, self.lease),
            Gateways(self.view, self.config, self.lease),
            Dhcp(self.view, self.config, self.lease),
            MetadataService(self.view),  # after the gateways and DHCP (REFERENCE 1.4)
        ]
        if self.config.get("ceph.enabled"):
            from pvc.drivers import ceph
            from pvc.node.storage_stats import StorageStats

            controllers.append(
                StorageStats(self.view, self.config, self.lease, ceph.shared(self.config))
            )
        controllers.append(DnsForwarder(self.view, self.config, self.lease))  # last
        services = for_node(self.config, self.lease, controllers)
        self.coordinator = Coordinator(self.zk, self.name, services, self.lease)
        self.coordinator.stop_timeout = self.config.get("timers.relinquish_timeout")
        self.coordinator.start()

    def _on_session(self, state: str) -> None:
        if state == "lost":
            self.registered.clear()  # the liveness node went with the session
            if self.coordinator:
                # no contention or takeover until this node is registered in its new session
                self.coordinator.eligible.clear()
        self.wakeup.set()

    def _stop(self) -> None:
        if self.stopping.is_set():
            log.warning("told to stop again while stopping: exiting now")
            os._exit(1)
        self.stopping.set()
        self.wakeup.set()

    def _request_log_reopen(self) -> None:
        # Not in the signal handler itself: logging there could deadlock on the logging lock.
        self.reopen_logs.set()
        self.wakeup.set()

    # --- run ----------------------------------------------------------------------------------

    def _keepalive_loop(self) -> None:
        interval = self.config.get("timers.keepalive_interval")
        verbose = self.config.get("logging.log_keepalives")
        first = True
        while not self.stopping.is_set():
            self.wakeup.clear()
            if self.reopen_logs.is_set():
                self.reopen_logs.clear()
                logs.reopen()
                log.info("log file reopened")
                if self.api:
                    self.api.reopen_logs()
            try:
                if not self.registered.is_set() and self.zk.connected:
                    self._register(self.zk.read(("node.mode", self.name)) or "hypervisor")
                if self.registered.is_set():
                    router = self.coordinator.state if self.coordinator else "client"
                    figures = self.vms.figures() if self.vms else {}
                    sent = time.monotonic()
                    keepalive.send(self.zk, self.name, router, figures, verbose)
                    if self.self_fence_after and self.watchdog:
                        uri = self.config.get("libvirt.uri")
                        self.watchdog.tell(f"guard {sent + self.self_fence_after:.6f} {uri}")
                    if self.coordinator and not self.coordinator.eligible.is_set():
                        self.coordinator.eligible.set()
                        self.coordinator.wake("daemon running")
                    if first:
                        first = False
                        sdnotify.notify("READY=1")
                        log.info("node daemon running")
            except PvcError as exc:
                log.warning("keepalive failed: %s", exc.message)
            self.wakeup.wait(interval)

    # --- stop ---------------------------------------------------------------------------------

    def _shutdown(self) -> None:
        sdnotify.notify("STOPPING=1")
        log.info("node daemon shutting down")
        if self._set_daemon_state("shutdown") and self.watchdog:
            # a node that says shutdown is never fenced, so nothing may run its VMs elsewhere:
            # no self-fence (also not during an autoflush). Unwritten, the promise stands.
            self.watchdog.tell("unguard")
        if self.vms and self.config.get("vm.autoflush"):
            self._autoflush()
        if self.jobs:
            self.jobs.stop()  # hands its running jobs back (or fails them) before the session ends
        if self.coordinator:
            self.coordinator.stop(self.config.get("timers.relinquish_timeout"))
        if self.lease:
            self.lease.close()
        if self.api:
            self.api.stop()  # after the hand-over: the address has moved to a warm API
        if self.watchdog:
            self.watchdog.close()
        if self.storage:
            self.storage.stop()
        if self.disk_sizes:
            self.disk_sizes.stop()
        if self.vms:
            self.vms.stop()
        if self.firewall:
            self.firewall.stop()  # its tables stay loaded
        if self.osds:
            self.osds.stop()  # supervised OSDs stop with the daemon (pvc.drivers.osd_process)
        if self.networks:
            self.networks.stop()  # the links stay: VMs run on them
        self._set_daemon_state("stop")
        if self.zk:
            self.zk.close()
        if self.cutoff:
            self.cutoff.finished.set()
        log.info("node daemon stopped")

    def _autoflush(self, timeout: float = shutdown.AUTOFLUSH_TIMEOUT) -> None:
        """Moves this node's VMs away before it stops: a flush job, run by this daemon's job
        runner; waits (through the mirror) up to `timeout` seconds for it to end, or until
        Zookeeper is cut off (no job can end then)."""
        from pvc.ops import jobs
        from pvc.ops import node as node_ops

        try:
            answer = node_ops.set_domain_state(self.view, self.name, "flush")
            log.info("autoflush: %s", answer["message"])
            task = answer["task"]
            if task is None:
                return
            deadline = time.monotonic() + timeout
            while not self.view.mirror.wait(lambda: jobs.ended(self.view.read(("job", task))), 1.0):
                if self.cutoff and self.cutoff.cut.is_set():
                    log.warning("autoflush given up: Zookeeper is unreachable")
                    return
                if time.monotonic() > deadline:
                    log.warning("autoflush did not finish within %g s", timeout)
                    return
            record = self.view.read(("job", task)) or {}
            log.info("autoflush: task %s %s", task, record.get("state", "removed"))
        except PvcError as exc:
            log.warning("autoflush failed: %s", exc.message)

    def _set_daemon_state(self, state: str) -> bool:
        """Writes this node's daemon state; False if it could not."""
        if self.zk is None or not self.registered.is_set():
            return False
        try:
            self.zk.write({("node.state.daemon", self.name): state})
            return True
        except PvcError as exc:
            log.warning("could not record daemon state %s: %s", state, exc.message)
            return False


def main(config_path: str | None) -> int:
    config = pvc_config.load(config_path)
    logs.setup(config)
    try:
        return NodeDaemon(config).run()
    except PvcError as exc:
        log.error("node daemon failed: %s", exc.message)
        raise
    except Exception:
        log.exception("node daemon failed")
        raise
