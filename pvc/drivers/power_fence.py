"""The fence procedure: power a node off, verify it is off, act, power it on, verify it is on.

A sequence over the power-control contract (pvc.drivers.contracts.PowerDriver) only, so it is
the same for every kind of BMC. Contract:
- `fence` never raises for power failures: it reads the power state, powers off unless the
  chassis is already off, polls until the controller reports "off" (within `verify_timeout`),
  then powers on and polls until "on". `FenceResult.fenced` is True exactly when "off" was seen
  after (or before) the power off: only then may the node's VMs run elsewhere, and the
  caller's `when_off` runs then, before power on. A failure to power on again afterwards
  leaves fenced=True and says so in `reason`.
- A failed poll is a step and is tried again: one lost UDP packet must not fail a fence.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from pvc.drivers.contracts import PowerDriver, PowerError

log = logging.getLogger("pvc.fence")


@dataclass
class FenceResult:
    fenced: bool  # True only once the controller reported the chassis off
    reason: str  # what happened, in one line
    seconds: float  # from start to result
    steps: list[str]  # "0.05 s: power status is on", ... in order


def fence(
    power: PowerDriver,
    verify_timeout: float = 10.0,
    *,
    timeout: float = 5.0,
    poll_interval: float = 0.25,
    when_off: Callable[[], None] | None = None,
) -> FenceResult:
    """Powers the node off, verifies it is off, powers it on again (see the module contract).
    `timeout` bounds each request; `verify_timeout` each wait for a power state.
    `when_off` runs once "off" is verified and before power on: the one moment the node surely
    runs nothing, so the moment to give its VMs to others. If it raises, the error is logged
    and named in `reason` (fenced stays True) and the node is powered on all the same: what
    the node runs after boot follows the cluster's state, whatever was moved or not."""
    start = time.monotonic()
    steps: list[str] = []

    def step(text: str) -> None:
        steps.append(f"{time.monotonic() - start:.2f} s: {text}")
        log.info("fence %s: %s", power.address, text)

    def result(fenced: bool, reason: str) -> FenceResult:
        step(reason)
        return FenceResult(fenced, reason, round(time.monotonic() - start, 3), steps)

    def wait_for(wanted: str) -> bool:
        """Polls until the state is `wanted` (True) or verify_timeout passes (False)."""
        deadline = time.monotonic() + verify_timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                state = power.power_state(max(1.0, min(timeout, remaining)))
                if state == wanted:
                    step(f"power status is {state}")
                    return True
            except PowerError as error:
                step(f"power status failed: {error.reason}")
            if time.monotonic() + poll_interval > deadline:
                return False
            time.sleep(poll_interval)

    off_verified = False
    after_off_failure = ""
    try:
        state = power.power_state(timeout)
        step(f"power status is {state}")
        if state == "off":
            step("already off: counts as fenced")
        else:
            power.power_off(timeout)
            step("power off accepted")
            if not wait_for("off"):
                return result(False, f"power did not turn off within {verify_timeout:g} s")
        off_verified = True
        if when_off is not None:
            try:
                when_off()
                step("after-off action done")
            except Exception as error:
                log.exception("fence %s: the after-off action failed", power.address)
                after_off_failure = f"; the after-off action failed: {error}"
                step(after_off_failure[2:])
        power.power_on(timeout)
        step("power on accepted")
        if not wait_for("on"):
            reason = f"fenced, but power did not come back on within {verify_timeout:g} s"
            return result(True, reason + after_off_failure)
        return result(True, "fenced: power off verified, powered on again" + after_off_failure)
    except PowerError as error:
        if off_verified:
            reason = f"fenced, but powering on again failed: {error.reason}"
            return result(True, reason + after_off_failure)
        return result(False, error.reason)
