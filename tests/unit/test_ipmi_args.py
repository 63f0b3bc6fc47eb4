"""pvc.drivers.ipmi without a BMC: the ipmitool command line and the reading of its errors."""

from pvc.drivers.ipmi import Bmc, IpmiError, failure_reason, ipmitool_argv

PASSWORD = "Zebra-Quartz-7731"
BMC = Bmc("10.0.0.21", "fencer", PASSWORD, 6230)


def test_argv_never_contains_the_password():
    for timeout in (0.5, 2, 5, 30):
        for command in (("chassis", "power", "status"), ("chassis", "power", "off")):
            argv = ipmitool_argv(BMC, timeout, *command)
            assert not any(PASSWORD in part for part in argv), argv
            assert "-P" not in argv  # -P PASSWORD would show in ps
            assert "-E" in argv  # the password comes from IPMI_PASSWORD


def test_argv_names_the_bmc_and_bounds_retries():
    argv = ipmitool_argv(BMC, 5.0, "chassis", "power", "status")
    assert argv[0] == "ipmitool"
    assert argv[argv.index("-I") + 1] == "lanplus"
    assert argv[argv.index("-H") + 1] == "10.0.0.21"
    assert argv[argv.index("-p") + 1] == "6230"
    assert argv[argv.index("-U") + 1] == "fencer"
    assert argv[argv.index("-C") + 1] == "3"
    assert argv[-3:] == ["chassis", "power", "status"]
    # -R 1: one retry; -N: per-request timeout, half the budget (-R 0 means "default 4")
    assert argv[argv.index("-R") + 1] == "1"
    assert argv[argv.index("-N") + 1] == "2"
    assert ipmitool_argv(BMC, 0.5)[ipmitool_argv(BMC, 0.5).index("-N") + 1] == "1"


def test_repr_and_str_hide_the_password():
    assert PASSWORD not in repr(BMC)
    assert PASSWORD not in str(BMC)
    assert "10.0.0.21" in repr(BMC)


def test_failure_reasons_are_short_and_readable():
    cases = {
        "Loading IANA PEN Registry...\n> RAKP 2 HMAC is invalid\n"
        "Error: Unable to establish IPMI v2 / RMCP+ session\n": "wrong IPMI credentials",
        "RAKP 2 message indicates an error : unauthorized name\n"
        "Error: Unable to establish IPMI v2 / RMCP+ session\n": "wrong IPMI credentials",
        "Get Auth Capabilities error\nError issuing Get Channel Authentication Capabilities "
        "request\nError: Unable to establish IPMI v2 / RMCP+ session\n": "BMC unreachable",
        "Address lookup for bmc.invalid failed\nCould not open socket!\n": "cannot be resolved",
        "Set Chassis Power Control to Up/On failed: Insufficient privilege level\n": "privilege",
        "Error in open session response message : invalid authentication algorithm\n": "cipher",
    }
    for stderr, expected in cases.items():
        assert expected in failure_reason(BMC, stderr), stderr


def test_an_echoed_password_is_scrubbed_from_a_reason():
    reason = failure_reason(BMC, f"something odd about {PASSWORD}\n")
    assert PASSWORD not in reason
    assert "something odd" in reason
    # fixed phrases are never scrubbed, whatever the password
    assert failure_reason(Bmc("h", "u", "wrong"), "RAKP 2 HMAC is invalid").startswith("wrong")


def test_error_message_names_the_bmc_not_the_password():
    error = IpmiError(BMC, "power off", "wrong IPMI credentials (user or password)")
    assert str(error) == (
        "IPMI power off on 10.0.0.21:6230: wrong IPMI credentials (user or password)"
    )
    assert error.reason.startswith("wrong IPMI credentials")
    assert PASSWORD not in str(error)
