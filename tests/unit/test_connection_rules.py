"""pvc.api.connection_rules: which phase a connection is in, when each phase's bound passes,
and which connections make room at the limit."""

from types import SimpleNamespace

from pvc import limits
from pvc.api.connection_rules import Phase, overdue, phase, to_evict

T0 = 1_000_000.0


def channel(**state):
    """A channel's state as waitress and pvc.api.channels keep it: by default a fresh plain
    connection at T0 with nothing received."""
    fields = {
        "handshaking": False,
        "requests": [],
        "request": None,
        "total_outbufs_len": 0,
        "creation_time": T0,
        "last_activity": T0,
        "request_started": 0.0,
    }
    return SimpleNamespace(**(fields | state))


def receiving(headers_finished: bool, started: float = T0):
    return channel(
        request=SimpleNamespace(headers_finished=headers_finished), request_started=started
    )


def test_phases():
    assert phase(channel(handshaking=True)) is Phase.HANDSHAKE
    assert phase(channel()) is Phase.IDLE
    assert phase(receiving(headers_finished=False)) is Phase.HEADERS
    assert phase(receiving(headers_finished=True)) is Phase.BODY
    assert phase(channel(requests=["a request"])) is Phase.SERVING
    assert phase(channel(requests=["a request"], total_outbufs_len=10)) is Phase.SERVING
    assert phase(channel(total_outbufs_len=10)) is Phase.SENDING


def test_a_request_being_served_is_never_cut():
    long_poll = channel(requests=["a request"], last_activity=T0)
    assert not overdue(long_poll, T0 + 3600)


def test_a_handshake_has_a_deadline_from_the_connection():
    stalled = channel(handshaking=True, last_activity=T0 + 4)
    assert not overdue(stalled, T0 + limits.TLS_HANDSHAKE_SECONDS - 0.1)
    assert overdue(stalled, T0 + limits.TLS_HANDSHAKE_SECONDS + 0.1)


def test_headers_have_a_deadline_from_their_first_byte_however_steady_the_trickle():
    slowloris = receiving(headers_finished=False, started=T0)
    slowloris.last_activity = T0 + limits.REQUEST_HEADER_SECONDS  # a byte just came
    assert not overdue(slowloris, T0 + limits.REQUEST_HEADER_SECONDS - 0.1)
    assert overdue(slowloris, T0 + limits.REQUEST_HEADER_SECONDS + 0.1)


def test_idle_body_and_unread_answers_are_closed_after_no_progress():
    for state in (channel(), receiving(headers_finished=True), channel(total_outbufs_len=1)):
        state.last_activity = T0 + 100  # progress long after the connection opened
        assert not overdue(state, T0 + 100 + limits.CONNECTION_IDLE_SECONDS - 0.1)
        assert overdue(state, T0 + 100 + limits.CONNECTION_IDLE_SECONDS + 0.1)


def test_eviction_takes_the_least_recently_active_of_those_owed_no_answer():
    idle_old = channel(last_activity=T0)
    handshaking = channel(handshaking=True, last_activity=T0 + 1)
    headers = receiving(headers_finished=False)
    headers.last_activity = T0 + 2
    idle_new = channel(last_activity=T0 + 3)
    serving = channel(requests=["a long poll"], last_activity=T0 - 100)
    body = receiving(headers_finished=True)
    body.last_activity = T0 - 100
    sending = channel(total_outbufs_len=5, last_activity=T0 - 100)
    everyone = [serving, idle_new, body, headers, sending, handshaking, idle_old]
    assert to_evict(everyone, 2) == [idle_old, handshaking]
    assert to_evict(everyone, 10) == [idle_old, handshaking, headers, idle_new]
    assert to_evict([serving, body, sending], 1) == []
