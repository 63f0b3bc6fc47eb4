"""When the API closes a connection, so that idle, slow or vanished clients never keep another
client out.

Waitress alone closes a connection only after 120 s without activity and stops accepting at
100 connections, so 100 silent sockets made the API unreachable for two minutes. Here a
connection is in one phase at a time, and each phase in which the server waits on the client
has a bound:

- a TLS handshake must be complete TLS_HANDSHAKE_SECONDS after the connection opened;
- a request's headers must be complete REQUEST_HEADER_SECONDS after its first byte, however
  steadily they trickle in (a byte every few seconds is the slowloris attack);
- a new or kept-alive connection without a request, a request body, and an answer the client
  does not read are each closed after CONNECTION_IDLE_SECONDS without progress;
- while the server works on a request nothing is cut: a long poll (pvc.api.waits) may wait
  for 40 s.

At the connection limit, the least recently active connections the server does not owe an
answer (handshaking, idle, or still sending headers) are closed to make room for new ones.
These are pure functions of a channel's state (pvc.api.channels keeps it) and the time.
"""

from collections.abc import Iterable
from enum import Enum
from typing import Any, Protocol

from pvc import limits


class Phase(Enum):
    HANDSHAKE = "TLS handshake"
    IDLE = "idle"  # no request begun: a new or a kept-alive connection
    HEADERS = "receiving headers"
    BODY = "receiving a body"
    SERVING = "serving"  # a request is being answered
    SENDING = "sending"  # an answer waits for the client to read it


class ChannelState(Protocol):
    """What the rules read of a waitress channel (times are `time.time()`, as waitress's)."""

    handshaking: bool
    requests: list[Any]  # requests received in full, being served
    request: Any  # the request being received (a waitress parser), or None
    total_outbufs_len: int  # bytes of answers not yet sent
    creation_time: float
    last_activity: float  # the last byte received or sent
    request_started: float  # the first byte of the request being received


def phase(channel: ChannelState) -> Phase:
    if channel.handshaking:
        return Phase.HANDSHAKE
    if channel.requests:
        return Phase.SERVING
    if channel.total_outbufs_len:
        return Phase.SENDING
    if channel.request is None:
        return Phase.IDLE
    return Phase.BODY if channel.request.headers_finished else Phase.HEADERS


def overdue(channel: ChannelState, now: float) -> bool:
    """True if the client let the bound of the channel's phase pass."""
    current = phase(channel)
    if current is Phase.SERVING:
        return False
    if current is Phase.HANDSHAKE:
        return now - channel.creation_time > limits.TLS_HANDSHAKE_SECONDS
    if current is Phase.HEADERS:
        return now - channel.request_started > limits.REQUEST_HEADER_SECONDS
    return now - channel.last_activity > limits.CONNECTION_IDLE_SECONDS


EVICTABLE = frozenset({Phase.HANDSHAKE, Phase.IDLE, Phase.HEADERS})


def to_evict(channels: Iterable[ChannelState], count: int) -> list[ChannelState]:
    """The `count` least recently active channels that are owed no answer (fewer if fewer
    are): what to close so that a new connection fits under the limit."""
    candidates = [channel for channel in channels if phase(channel) in EVICTABLE]
    candidates.sort(key=lambda channel: channel.last_activity)
    return candidates[:count]
