"""Every driver implements its contract (pvc.drivers.contracts): each member of the Protocol,
with the same parameters and types; and the fence procedure needs nothing but the
power-control contract (driven here by a power controller held in memory)."""

import inspect
from types import ModuleType

import pytest

from pvc.drivers import (
    ceph,
    ceph_images,
    ceph_volume,
    contracts,
    ipmi,
    netlink,
    osd_process,
    power_fence,
)
from pvc.drivers.contracts import HypervisorError
from pvc.drivers.libvirt import Hypervisor
from pvc.limits import REASON_MAX

IMPLEMENTATIONS = [
    (contracts.HypervisorDriver, Hypervisor),
    (contracts.AddressDriver, netlink),
    (contracts.PowerDriver, ipmi.Bmc),
    (contracts.CephDriver, ceph.Ceph),
    (contracts.ImagesDriver, ceph_images.Images),
    (contracts.OsdDeviceDriver, ceph_volume.CephVolume),
    (contracts.OsdProcessDriver, osd_process.SupervisedOsds),
    (contracts.OsdProcessDriver, osd_process.SystemdOsds),
]


def members(protocol: type) -> dict[str, object]:
    """The Protocol's methods and properties, by name."""
    return {
        name: value
        for name, value in vars(protocol).items()
        if not name.startswith("_") and (callable(value) or isinstance(value, property))
    }


def parameters(function: object, bound: bool) -> list[tuple[str, object]]:
    """(name, annotation) of each parameter, without self; and the return annotation."""
    signature = inspect.signature(function)  # type: ignore[arg-type]
    found = [(p.name, p.annotation) for p in signature.parameters.values()]
    return (found[1:] if bound else found) + [("return", signature.return_annotation)]


@pytest.mark.parametrize(("protocol", "implementation"), IMPLEMENTATIONS)
def test_each_driver_has_every_member_of_its_contract(protocol, implementation):
    for name, member in members(protocol).items():
        assert hasattr(implementation, name), f"{implementation} lacks {name}"
        if isinstance(member, property):
            assert isinstance(getattr(implementation, name), property), name
            continue
        bound = not isinstance(implementation, ModuleType)
        assert parameters(getattr(implementation, name), bound) == parameters(member, True), name


def test_the_module_netlink_is_an_address_driver():
    assert isinstance(netlink, contracts.AddressDriver)


def test_ipmi_errors_are_power_errors():
    error = ipmi.IpmiError(ipmi.Bmc("h", "u", "secret"), "power off", "BMC unreachable")
    assert isinstance(error, contracts.PowerError)
    assert error.reason == "BMC unreachable"
    assert error.http_status == 502


class MemoryPower:
    """A power controller in memory: a chassis that turns as asked, `lag` polls late, and
    fails the requests named in `failing`."""

    address = "memory"

    def __init__(self, state: str = "on", lag: int = 1, failing: tuple[str, ...] = ()):
        self.chassis = state
        self.wanted = state
        self.lag = lag
        self.polls = 0
        self.failing = failing
        self.requests: list[str] = []

    def _request(self, name: str) -> None:
        self.requests.append(name)
        if name in self.failing:
            raise contracts.PowerError(f"{name} failed", f"{name} refused")

    def power_state(self, timeout: float = 5.0) -> str:
        self._request("state")
        self.polls += 1
        if self.polls > self.lag:
            self.chassis = self.wanted
        return self.chassis

    def power_off(self, timeout: float = 5.0) -> None:
        self._request("off")
        self.wanted, self.polls = "off", 0

    def power_on(self, timeout: float = 5.0) -> None:
        self._request("on")
        self.wanted, self.polls = "on", 0


def test_fence_powers_off_verifies_acts_and_powers_on_again():
    power = MemoryPower(lag=2)
    seen: list[str] = []
    result = power_fence.fence(
        power, 5, poll_interval=0, when_off=lambda: seen.append(power.chassis)
    )
    assert result.fenced
    assert result.reason == "fenced: power off verified, powered on again"
    assert seen == ["off"]  # the action ran while the chassis was off
    assert power.chassis == "on"
    assert power.requests == ["state", "off", "state", "state", "state", "on", "state", "state",
                              "state"]  # fmt: skip


def test_fence_of_a_chassis_already_off_skips_the_power_off():
    power = MemoryPower(state="off")
    result = power_fence.fence(power, 5, poll_interval=0)
    assert result.fenced
    assert "off" not in power.requests
    assert any("already off" in step for step in result.steps)


def test_a_failed_power_off_is_no_fence_and_runs_nothing():
    power = MemoryPower(failing=("off",))
    seen: list[str] = []
    result = power_fence.fence(power, 5, poll_interval=0, when_off=lambda: seen.append("ran"))
    assert not result.fenced
    assert result.reason == "off refused"
    assert seen == []
    assert "on" not in power.requests


def test_a_chassis_that_never_turns_off_is_no_fence():
    power = MemoryPower(lag=10**9)
    result = power_fence.fence(power, 0.2, poll_interval=0.01)
    assert not result.fenced
    assert result.reason == "power did not turn off within 0.2 s"


def test_a_failed_power_on_after_a_verified_off_is_still_a_fence():
    power = MemoryPower(failing=("on",))
    result = power_fence.fence(power, 5, poll_interval=0, when_off=lambda: 1 / 0)
    assert result.fenced
    assert result.reason == (
        "fenced, but powering on again failed: on refused; "
        "the after-off action failed: division by zero"
    )


def test_a_drivers_error_is_one_bounded_line():
    """libvirt's text can be megabytes over many lines; shown and stored, it is one line."""
    error = HypervisorError("unsupported configuration:\n" + "x\ty\n" * 500_000)
    assert "\n" not in error.message and len(error.message) <= REASON_MAX
    assert error.message.startswith("unsupported configuration: x y x y")
    power = ipmi.IpmiError(ipmi.Bmc("h", "u", "secret"), "power off", "no\nanswer")
    assert power.reason == "no answer" and "\n" not in power.message
