"""What pvc accepts, in one table: ops and the API enforce these, the OpenAPI document and the
README state them, so a client that follows the document is never refused for valid data.

Why these numbers: a name becomes a Zookeeper path component, a libvirt domain name and often
a DNS label (63); every write is one Zookeeper transaction, which Zookeeper refuses (by
dropping the session's connection) above its `jute.maxbuffer` of 1 MiB, so the largest value
pvc stores (a domain's XML) stays well below it; a request body carries at most one XML,
JSON-escaped; a reason recorded from an outside system (libvirt's error text) is shown on one
line of a terminal.
"""

import re

NAME_MAX = 63  # characters of a node, VM, network, ... name
XML_MAX = 256 * 1024  # bytes (UTF-8) of a domain's XML
XML_DEPTH_MAX = 64  # nesting of elements in a domain's XML
TAG_MAX = NAME_MAX  # characters of one VM tag (the name characters; UUID form too)
TAGS_MAX = 64  # tags on one VM
NODE_LIMIT_MAX = 256  # nodes in one VM's node limit
BODY_MAX = 2 * 1024 * 1024  # bytes of a request body (one XML, JSON-escaped, fits)
HEADER_MAX = 16 * 1024  # bytes of a request's headers
CONNECTIONS_MAX = (
    2048  # open connections to the API; beyond, the least recently active idle one goes
)
CONNECTION_IDLE_SECONDS = 10.0  # a connection waiting on its client without progress is closed
REQUEST_HEADER_SECONDS = 5.0  # a request's headers must be complete this long after its first byte
TLS_HANDSHAKE_SECONDS = 5.0  # a TLS handshake must be complete this long after the connection
JSON_DEPTH_MAX = 32  # nesting of a JSON request body
PATTERN_MAX = 256  # characters of a user's name pattern (glob or regular expression)
ACL_RULE_MAX = 1000  # characters of one network ACL rule (nft rule text)
PATTERN_SECONDS = 1.0  # time one pattern may take to match every name of a list
REASON_MAX = 1000  # characters of a recorded reason (a VM's failed reason, a task's error)
TRANSACTION_MAX = 900 * 1024  # bytes (paths and values) of one Zookeeper transaction
API_KEY_MAX = 1024  # characters of an API key (it travels in the X-Api-Key header)
CONFIG_FILE_MAX = 1024 * 1024  # bytes of a configuration file (pvc.conf, the client's pvc.json)
CONSOLE_LINES_MAX = 10_000  # lines of a VM's console log in one answer

_SPACE = re.compile(r"\s+")


def one_line(text: str, limit: int = REASON_MAX) -> str:
    """`text` (an outside system's error, a reason) on one line of at most `limit` characters:
    whitespace runs (newlines too) become one space, control characters are dropped, and a
    longer text is cut with an ellipsis."""
    flat = _SPACE.sub(" ", text).strip()
    flat = "".join(char for char in flat if char.isprintable())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
