"""Power control of a node through its BMC, with `ipmitool -I lanplus` (IPMI 2.0).

A `Bmc` is the power-control driver of one node (pvc.drivers.contracts.PowerDriver), and
`fence(bmc, ...)` the fence procedure over it (pvc.drivers.power_fence).

Contract:
- `power_state` returns "on" or "off"; `power_off` and `power_on` return once the BMC has
  accepted the request (the chassis may change state a moment later: verify with
  `power_state`). Each is one ipmitool run, bounded by `timeout`: ipmitool's own retries are
  set (-N, -R) so that a dead BMC fails in about `timeout` seconds (at least 2) and the process
  is killed at `timeout` + 1 s whatever happens. Failures raise `IpmiError` (a PowerError),
  whose `reason` is short and readable: "wrong IPMI credentials", "BMC unreachable (...)", ...
- The password never appears in an argv (`ps` shows those): ipmitool's -E reads it from
  IPMI_PASSWORD in its environment. It never appears in a message, a step, a log line or the
  repr of a `Bmc` either.
- Cipher suite 3 (RAKP-HMAC-SHA1, AES-128) by default: nearly all IPMI 2.0 BMCs and ipmi_sim
  have it, and naming it spares ipmitool's suite discovery, which costs 10 s on BMCs (ipmi_sim among
  them) that do not answer it. Use 17 for BMCs that have disabled the SHA1 suites.
Tests run the real thing against OpenIPMI's ipmi_sim (scripts/ipmi-bmc).
"""

import os
import subprocess
from dataclasses import dataclass, field

from pvc.drivers.contracts import PowerError
from pvc.drivers.power_fence import FenceResult, fence

__all__ = ["Bmc", "FenceResult", "IpmiError", "failure_reason", "fence", "ipmitool_argv"]
IPMITOOL = "ipmitool"


@dataclass(frozen=True)
class Bmc:
    """How to reach a node's BMC. The password is left out of repr() and str()."""

    host: str
    user: str
    password: str = field(repr=False)
    port: int = 623
    cipher_suite: int = 3

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def power_state(self, timeout: float = 5.0) -> str:
        """The chassis power as the BMC reports it: "on" or "off"."""
        out = _run(self, "power status", timeout, "chassis", "power", "status")
        for line in out.splitlines():
            if line.startswith("Chassis Power is "):
                state = line.removeprefix("Chassis Power is ").strip()
                if state in ("on", "off"):
                    return state
        answer = _scrub(out.strip(), self.password)
        raise IpmiError(self, "power status", f"unexpected answer {answer!r}")

    def power_off(self, timeout: float = 5.0) -> None:
        """Hard power off (no ACPI: a node being fenced cannot be trusted to shut down)."""
        _run(self, "power off", timeout, "chassis", "power", "off")

    def power_on(self, timeout: float = 5.0) -> None:
        _run(self, "power on", timeout, "chassis", "power", "on")


class IpmiError(PowerError):
    """An IPMI request failed; `reason` says why in a few words (never with the password)."""

    def __init__(self, bmc: Bmc, action: str, reason: str):
        super().__init__(f"IPMI {action} on {bmc.address}: {reason}", reason)


def ipmitool_argv(bmc: Bmc, timeout: float, *command: str) -> list[str]:
    """The ipmitool command line for `command` (e.g. "chassis", "power", "status"): no password
    (it goes in IPMI_PASSWORD, see `_run`). -N N -R 1 makes an unanswered request fail after
    about 2N s; N = timeout / 2, at least 1 (with -R 0 ipmitool falls back to 4 retries)."""
    per_try = max(1, int(timeout // 2))
    return [
        IPMITOOL,
        "-I",
        "lanplus",
        "-C",
        str(bmc.cipher_suite),
        "-H",
        bmc.host,
        "-p",
        str(bmc.port),
        "-U",
        bmc.user,
        "-E",
        "-N",
        str(per_try),
        "-R",
        "1",
        "-v",  # the reason of a failed session (bad password, no answer) only shows with -v
        *command,
    ]


def failure_reason(bmc: Bmc, stderr: str) -> str:
    """A short reason for a failed ipmitool run, from its stderr (with -v). Only what is
    copied from ipmitool's words is scrubbed of the password: the fixed phrases would turn
    "***" for a password like "wrong"."""
    text = stderr.lower()
    if "rakp 2 hmac is invalid" in text or "unauthorized name" in text:
        return "wrong IPMI credentials (user or password)"
    if "password is longer than" in text:
        return "wrong IPMI credentials (the password is longer than 20 bytes)"
    if "insufficient privilege" in text or "invalid role" in text:
        return f"IPMI user {bmc.user!r} lacks the privilege for power control"
    if "address lookup for" in text:
        return f"BMC address {bmc.host!r} cannot be resolved"
    if "invalid authentication algorithm" in text or "cipher suite" in text:
        return f"BMC does not support cipher suite {bmc.cipher_suite}"
    if (
        "get auth capabilities error" in text
        or "no response" in text
        or "could not open socket" in text
    ):
        return f"BMC unreachable (no answer from {bmc.address})"
    noise = ("Loading IANA", "Running Get", "Discovered", "Error: Unable to establish")
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    details = [line for line in lines if not line.startswith(noise)]
    detail = _scrub(details[-1], bmc.password)[:200] if details else "no detail"
    if "unable to establish" in text:
        return f"BMC refused the IPMI session ({detail})"
    return detail if details else "ipmitool failed without a message"


def _scrub(text: str, password: str) -> str:
    """Belt and braces: whatever a BMC or ipmitool echoes, the password does not pass."""
    return text.replace(password, "***") if len(password) >= 3 else text


def _run(bmc: Bmc, action: str, timeout: float, *command: str) -> str:
    """Runs ipmitool; its stdout, or IpmiError with a short reason."""
    env = dict(os.environ, IPMI_PASSWORD=bmc.password, LC_ALL="C")
    try:
        done = subprocess.run(
            ipmitool_argv(bmc, timeout, *command),
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout + 1.0,
        )
    except subprocess.TimeoutExpired:
        reason = f"BMC unreachable (no answer from {bmc.address} within {timeout:g} s)"
        raise IpmiError(bmc, action, reason) from None
    except FileNotFoundError:
        raise IpmiError(
            bmc, action, "ipmitool is not installed (apt-get install ipmitool)"
        ) from None
    if done.returncode != 0:
        raise IpmiError(bmc, action, failure_reason(bmc, done.stderr))
    return done.stdout
