"""The one parser and formatter of storage sizes (volumes, uploads, disks).

A size is a whole number followed by a unit: B (bytes), K, M, G, T or P, each a binary
multiple (K = 1024 B), optionally written Ki/KiB (or KB, also binary): `10G`, `512MiB`,
`4096B`. A bare number is refused rather than guessed at: "10" meaning ten bytes has cost
people volumes, so bytes are written `4096B`.
"""

import re

from pvc.errors import InvalidInput
from pvc.ops.user_input import quoted

UNITS = {"B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}
SIZE_MAX = 1 << 63  # RBD and Ceph count bytes in signed 64-bit integers
RULE = (
    "a whole number and a unit B, K, M, G, T or P (binary; optional i or iB), e.g. 10G, 512M, 4096B"
)

_SIZE = re.compile(r"([0-9]{1,30})(B|[KMGTP](?:iB|i|B)?)", re.IGNORECASE | re.ASCII)
_FORMAT_UNITS = sorted(UNITS.items(), key=lambda item: item[1], reverse=True)


def parse_size(text: str) -> int:
    """The number of bytes `text` names; InvalidInput with the rule otherwise."""
    match = _SIZE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidInput(f"invalid size {quoted(str(text))}: give {RULE}")
    number, unit = match.groups()
    size = int(number) * UNITS[unit[0].upper()]
    if size == 0:
        raise InvalidInput(f"invalid size {quoted(text)}: a size must be more than zero")
    if size >= SIZE_MAX:
        raise InvalidInput(f"invalid size {quoted(text)}: larger than the 8192P Ceph can hold")
    return size


def format_size(size: int) -> str:
    """`size` bytes for people: exact multiples as `10G`, others to one decimal (`1.5G`)."""
    unit, factor = next(((u, f) for u, f in _FORMAT_UNITS if size >= f), ("B", 1))
    if size % factor == 0:
        return f"{size // factor}{unit}"
    return f"{size / factor:.1f}{unit}"
