"""The primary's registry (pvc.node.primary_services) with controllers in it: started in order,
stopped in reverse even when one stop fails, and what is down started again by repair()."""

from pvc.node.controller import Controller
from pvc.node.primary_services import PrimaryServices


class Recorded:
    """A service that writes what happens to it into a shared list."""

    def __init__(self, name: str, events: list[str], fail_stop: bool = False):
        self.name = name
        self.events = events
        self.fail_stop = fail_stop
        self.up = False

    def start(self) -> None:
        self.events.append(f"start {self.name}")
        self.up = True

    def stop(self) -> None:
        self.events.append(f"stop {self.name}")
        if self.fail_stop:
            raise RuntimeError("stuck")
        self.up = False

    def running(self) -> bool:
        return self.up


def test_services_and_controllers_start_in_order_and_stop_in_reverse():
    events: list[str] = []
    controller = Controller("dhcp", lambda key: None)
    registry = PrimaryServices(
        [Recorded("address", events), Recorded("api", events, fail_stop=True), controller]
    )
    registry.start_all()
    assert events == ["start address", "start api"] and controller.running()
    registry.stop_all()
    assert not controller.running()
    assert events[2:] == ["stop api", "stop address"]  # the failing stop did not stop the rest


def test_repair_starts_again_only_what_is_down():
    events: list[str] = []
    controller = Controller("fence", lambda key: None)
    address = Recorded("address", events)
    registry = PrimaryServices([address, controller])
    registry.start_all()
    controller.stop()
    registry.repair()
    assert controller.running()
    assert events == ["start address"]  # it was up: left alone
    controller.stop()
