"""Reading a text file a user hands pvc (a configuration, a domain's XML, an API key) safely:
at most a given size (a huge file or /dev/zero is refused after that many bytes, never read
whole), and UTF-8 or refused, with a reason that fits on one line."""

from typing import BinaryIO


class NotText(ValueError):
    """The bytes are not UTF-8 text."""


class TooLarge(ValueError):
    """There are more bytes than the limit."""


def read_text(stream: BinaryIO, limit: int) -> str:
    """At most `limit` bytes of `stream`, decoded as UTF-8; TooLarge or NotText otherwise."""
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"it is larger than {limit} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise NotText(
            f"it is not UTF-8 text (byte {data[exc.start]:#04x} on line {line})"
        ) from None


def read_text_file(path: str, limit: int) -> str:
    """The text of the file at `path` (see read_text); OSError if it cannot be opened (a
    folder, a missing file, no permission)."""
    with open(path, "rb") as handle:
        return read_text(handle, limit)


def reason(exc: OSError | ValueError) -> str:
    """Why reading failed, in a few words."""
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)
