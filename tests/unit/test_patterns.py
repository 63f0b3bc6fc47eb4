"""pvc.ops.patterns: name patterns matched in bounded time (regular expressions in worker
processes that are killed at the time limit)."""

import pytest

from pvc import limits
from pvc.errors import InvalidInput
from pvc.ops import patterns

NAMES = ["web1", "web.1", "webx1", "db1", "a" * 27 + "-x"]
CATASTROPHIC = "^(a+)+$"


def test_globs_match_the_whole_name():
    assert patterns.matching("web?1", NAMES) == [False, True, True, False, False]
    assert patterns.matching("web[!.]1", NAMES) == [False, False, True, False, False]
    assert patterns.matching("*1", NAMES) == [True, True, True, True, False]


def test_a_glob_full_of_stars_still_gives_the_right_answer():
    """fnmatch's atomic groups: `*a*a...*b` against a long run of `a` fails without
    backtracking through every way to split the run."""
    names = ["a" * 5000, "a" * 5000 + "b"]
    pattern = ("*a" * 127 + "b")[: limits.PATTERN_MAX]
    assert patterns.matching(pattern, names) == [False, True]


def test_regular_expressions_are_searched_anywhere():
    assert patterns.matching("^w", NAMES, regex=True) == [True, True, True, False, False]
    assert patterns.matching("web.1", NAMES, regex=True) == [False, True, True, False, False]
    assert patterns.matching("^w", [], regex=True) == []


@pytest.mark.parametrize("regex", [False, True])
def test_a_pattern_longer_than_the_limit_is_refused(regex):
    with pytest.raises(InvalidInput, match=f"at most {limits.PATTERN_MAX} are accepted"):
        patterns.matching("a" * (limits.PATTERN_MAX + 1), NAMES, regex)
    assert patterns.matching("w" * limits.PATTERN_MAX, NAMES, regex) == [False] * len(NAMES)


def test_a_bad_regular_expression_is_refused():
    with pytest.raises(InvalidInput, match=r"invalid regular expression 'web\(': missing \)"):
        patterns.matching("web(", NAMES, regex=True)
    for huge in ("a{4294967296}", "a{99999999999999999999}", "x{2,1}"):
        with pytest.raises(InvalidInput, match="invalid regular expression"):
            patterns.matching(huge, NAMES, regex=True)


def test_a_catastrophic_regular_expression_is_stopped_and_its_worker_replaced():
    with pytest.raises(patterns.PatternTimeout) as refused:
        patterns.matching(CATASTROPHIC, NAMES, regex=True)
    assert refused.value.message == (
        "the regular expression took longer than 1 s to match every name; simplify it"
    )
    assert refused.value.http_status == 400
    # the killed worker is gone; the next pattern gets a working one
    assert patterns.matching("-x$", NAMES, regex=True) == [False, False, False, False, True]


def test_workers_are_reused():
    patterns.matching("^w", NAMES, regex=True)
    before = {worker.process.pid for worker in patterns._WORKERS._idle}
    patterns.matching("^d", NAMES, regex=True)
    after = {worker.process.pid for worker in patterns._WORKERS._idle}
    assert before and before == after


def test_with_every_worker_busy_a_regular_expression_is_refused_as_busy():
    """With every worker taken (as by MAX_WORKERS catastrophic patterns), one more waits at
    most the time limit for a worker, then is refused (503), never queued longer."""
    from pvc.errors import Unavailable

    slots = patterns._WORKERS._slots
    for _ in range(patterns.MAX_WORKERS):
        assert slots.acquire(blocking=False)
    try:
        with pytest.raises(Unavailable, match="regular expressions are being matched already"):
            patterns.matching("^w", NAMES, regex=True)
    finally:
        for _ in range(patterns.MAX_WORKERS):
            slots.release()
    assert patterns.matching("^w", NAMES, regex=True) == [True, True, True, False, False]
