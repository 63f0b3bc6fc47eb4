"""The job runner (pvc.node.jobs) on a real Zookeeper, with kinds of the test's own: a task that
fails with an outside system's text (megabytes over many lines, as libvirt's can be) records
its error on one line of at most limits.REASON_MAX characters."""

import pytest

from pvc.errors import PvcError
from pvc.limits import REASON_MAX
from pvc.node.jobs import JobRunner
from pvc.ops import cluster, jobs
from pvc.zk.cache import CachedView, open_mirror
from tests.integration.test_node_ops import add_node

LIBVIRT_TEXT = "unsupported configuration: unknown OS type 'x\n" + "y\tx\n" * 300_000 + "'"


class Failing:
    """A kind whose work fails as `error` says."""

    def __init__(self, name: str, error: Exception):
        self.name = name
        self.error = error

    def run(self, job) -> None:
        raise self.error


def _ended(record: dict | None) -> bool:
    return record is not None and jobs.ended(record)


@pytest.fixture
def view(zk):
    cluster.initialize(zk)
    add_node(zk, "node1")
    cached = CachedView(zk, open_mirror(zk, wait=10))
    yield cached
    cached.mirror.close()


@pytest.mark.parametrize(
    ("error", "start"),
    [
        (PvcError(LIBVIRT_TEXT), "unsupported configuration: unknown OS type 'x y x y"),
        (RuntimeError(LIBVIRT_TEXT), 'internal error: RuntimeError("unsupported configuration'),
    ],
)
def test_a_failed_tasks_error_is_one_bounded_line(zk, view, error, start):
    kinds = {"flush": Failing("flush", error)}
    runner = JobRunner(zk, view, "node1", kinds, keep=10, resync_interval=0.5)
    job_id, values = jobs.creation("flush", {"node": "node1"}, runner="node1")
    zk.write(values)
    runner.start()
    try:
        # the record, once the mirror has it (a missing one reads as ended), has ended
        assert view.mirror.wait(lambda: _ended(view.read(("job", job_id))), 20)
    finally:
        runner.stop()
    record = jobs.info(zk, job_id)
    assert record["state"] == "failed"
    assert "\n" not in record["error"] and len(record["error"]) <= REASON_MAX
    assert record["error"].startswith(start), record["error"][:100]
