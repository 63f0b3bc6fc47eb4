"""nftables, through the `nft` program (nftables 1.0: `nft -f`, one transaction per file).

Contract: `load(text)` loads a ruleset file in ONE transaction: all of it or, on any error,
nothing (the kernel keeps what it had); `check(text)` asks nft whether a file would load
(`nft -c`: parsed and checked against the kernel, nothing changed). Both raise
`InvalidInput` with nft's own words (the first error line, without nft's caret lines) when
the text is wrong (an `NftError`, which also carries the line of the input nft complained
about first, so a caller can tell which part of its file failed), and `Unavailable` when nft
cannot be run or does not answer within TIMEOUT seconds. `check` is nft's own check: the
kernel's validation of a rule in its hook (e.g. `masquerade` reached from a filter chain) is
not reliably part of it, so a checked text may still fail to `load`. `tables()` lists the
tables present, as "family name".
"""

import re
import subprocess

from pvc.errors import InvalidInput, Unavailable

NFT = "nft"
TIMEOUT = 30.0  # a ruleset of thousands of rules loads in well under a second
_LOCATION = re.compile(r"^/dev/stdin:(\d+):")


class NftError(InvalidInput):
    """nft refused the text; `line` is the input line of its first error (None: not said)."""

    def __init__(self, message: str, line: int | None):
        super().__init__(message)
        self.line = line


def _run(arguments: list[str], text: str | None = None) -> str:
    try:
        result = subprocess.run(
            [NFT, *arguments], input=text, capture_output=True, text=True, timeout=TIMEOUT
        )
    except FileNotFoundError:
        raise Unavailable("nft is not installed (Debian package nftables)") from None
    except subprocess.TimeoutExpired:
        raise Unavailable(f"nft did not answer within {TIMEOUT:g} s") from None
    if result.returncode != 0:
        raise NftError(f"nft: {first_error(result.stderr)}", error_line(result.stderr))
    return result.stdout


def first_error(stderr: str) -> str:
    """nft's first complaint on one line: "Error: ..." without the echo of the input and the
    caret line under it."""
    for line in stderr.splitlines():
        if "Error:" in line:
            return line[line.index("Error:") :].strip()
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[0] if lines else "failed without a message"


def error_line(stderr: str) -> int | None:
    """The input line (1-based) of nft's first located error."""
    for line in stderr.splitlines():
        found = _LOCATION.match(line)
        if found and "Error:" in line:
            return int(found.group(1))
    return None


def load(text: str) -> None:
    _run(["-f", "-"], text)


def check(text: str) -> None:
    _run(["-c", "-f", "-"], text)


def tables() -> list[str]:
    return [
        line.removeprefix("table ").strip()
        for line in _run(["list", "tables"]).splitlines()
        if line.startswith("table ")
    ]
