"""The primary lease's messages to the watchdog (pvc.node.lease), with a stand-in Zookeeper
and watchdog (pure logic: the order of what the watchdog is told)."""

import threading

from pvc.node.lease import PrimaryLease


class Session:
    session_id = 1
    negotiated_session_timeout = 1000.0  # long: the renewal thread stays out of the way

    def round_trip(self) -> bool:
        return True


class Watchdog:
    def __init__(self) -> None:
        self.told: list[str] = []

    def tell(self, message: str) -> None:
        self.told.append(message)


class InterleavingWatchdog(Watchdog):
    """While a message is on its way (the first renewal's arm), another thread holds an item:
    the message recorded last must be the one that names it."""

    def __init__(self) -> None:
        super().__init__()
        self.lease: PrimaryLease | None = None
        self.holder: threading.Thread | None = None

    def tell(self, message: str) -> None:
        if self.holder is None and message.startswith("arm") and self.lease is not None:
            self.holder = threading.Thread(target=self.lease.hold, args=("address=lo=10.9.9.9/32",))
            self.holder.start()
            self.holder.join(0.3)  # the hold goes through now, unless it must wait its turn
        self.told.append(message)


def test_a_renewal_never_sends_an_older_list_of_items_after_a_hold():
    watchdog = InterleavingWatchdog()
    lease = PrimaryLease(Session(), watchdog)
    try:
        watchdog.lease = lease
        assert lease.grant()
        assert watchdog.holder is not None
        watchdog.holder.join(5)
        assert watchdog.told[-1].split()[2:] == ["address=lo=10.9.9.9/32"]
        deadlines = [float(message.split()[1]) for message in watchdog.told]
        assert deadlines == sorted(deadlines)  # never an older deadline after a newer one
    finally:
        lease.close()


def test_nothing_is_armed_after_the_lease_is_released():
    watchdog = Watchdog()
    lease = PrimaryLease(Session(), watchdog)
    lease.grant()
    lease.release()
    lease.hold("process=123=dnsmasq")
    assert not lease._renew()
    assert watchdog.told[-1] == "disarm"
    lease.close()
