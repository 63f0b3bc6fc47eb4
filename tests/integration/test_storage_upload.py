"""`pvc storage volume upload` through the built dist/pvc, a real API and the session's real
Ceph: raw and qcow2 images arrive with their content (read back with the rbd tool), what is
not a disk image is refused in qemu-img's words, and a refused or cancelled upload leaves no
image, no record."""

# ruff: noqa: F811 (the storage fixture is imported)

import json
import os
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from pvc.node import storage_upload
from pvc.node.jobs import JobRunner
from pvc.ops import jobs
from pvc.zk.cache import CachedView, open_mirror
from tests.conftest import fails, ok
from tests.integration.test_node_ops import add_node
from tests.storage_rig import ceph_config, storage  # noqa: F401 (a fixture)

MIB = 1 << 20


def disk(tmp_path, size: int) -> bytes:
    """A raw disk image of random bytes (not a whole number of pieces)."""
    data = os.urandom(size)
    (tmp_path / "disk.raw").write_bytes(data)
    return data


def exported(storage, volume, tmp_path) -> bytes:
    out = tmp_path / f"{volume}.export"
    assert storage.ceph.rbd("export", f"{storage.pool}/{volume}", str(out)).returncode == 0
    return out.read_bytes()


def test_a_raw_image_arrives_whole(storage, tmp_path):
    data = disk(tmp_path, 5 * MIB + 1234)
    args = ("storage", "volume", "upload", storage.pool, "up1", str(tmp_path / "disk.raw"))
    record = json.loads(ok(storage.pvc(*args, "--wait", "-f", "json")))
    assert record["state"] == "done" and record["result"]["size"] == len(data)
    assert exported(storage, "up1", tmp_path) == data
    volume = storage.json("storage", "volume", "info", storage.pool, "up1")
    assert volume["size"] == len(data) and "exclusive-lock" in volume["features"]
    line = fails(storage.pvc(*args))
    assert line.endswith(f"volume '{storage.pool}/up1' exists already")


@pytest.mark.parametrize("image_format", ["qcow2", "vmdk"])
def test_qcow2_and_vmdk_images_are_converted(storage, tmp_path, image_format):
    data = disk(tmp_path, 3 * MIB)
    image = tmp_path / f"disk.{image_format}"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", image_format,
                    str(tmp_path / "disk.raw"), str(image)], check=True)  # fmt: skip
    ok(storage.pvc("storage", "volume", "upload", storage.pool, "up2", str(image),
                   "--image-format", image_format, "--wait"))  # fmt: skip
    assert exported(storage, "up2", tmp_path) == data
    assert storage.rbd_ls() == ["up2"]  # the staging image is gone


def test_what_is_not_a_disk_image_is_refused_in_qemu_imgs_words(storage, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("these are not the blocks you are looking for\n" * 1000)
    line = fails(storage.pvc("storage", "volume", "upload", storage.pool, "up3", str(text),
                             "--image-format", "qcow2", "--wait"))  # fmt: skip
    assert "failed: not a qcow2 disk image: Image is not in qcow2 format" in line
    assert storage.rbd_ls() == []
    assert storage.json("storage", "volume", "list", storage.pool) == []
    line = fails(storage.pvc("storage", "volume", "upload", "nosuch", "up3", str(text)))
    assert line.endswith("pool 'nosuch' does not exist")
    line = fails(storage.pvc("storage", "volume", "upload", storage.pool, "up3",
                             str(tmp_path / "missing")), 2)  # fmt: skip
    assert "cannot read" in line


def call(storage, method, path, params=None, data=None):
    url = f"{storage.api.url}{path}"
    headers = {"X-Api-Key": storage.api.key}
    if data is not None:
        url += "?" + urllib.parse.urlencode(params or {})
        headers["Content-Type"] = "application/octet-stream"
        body = data
    else:
        body = json.dumps(params or {}).encode() if params else None
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def cancel(storage, task: str) -> None:
    """Cancels the upload's task and waits for it to end cancelled."""
    assert call(storage, "DELETE", f"/tasks/{task}")[0] == 200
    deadline = time.monotonic() + 30
    while call(storage, "GET", f"/tasks/{task}")[1]["state"] != "cancelled":
        assert time.monotonic() < deadline, "the upload was not cancelled"
        time.sleep(0.2)


def test_a_cancelled_upload_leaves_nothing(storage):
    base = f"/storage/ceph/volume/{storage.pool}/up4/upload"
    status, answer = call(storage, "POST", base, {"file_size": 4 * MIB})
    assert status == 202
    task = answer["task"]
    assert storage.rbd_ls() == ["up4"]
    status, answer = call(storage, "PUT", base, {"task": task, "offset": 0}, b"x" * MIB)
    assert status == 200 and 0 <= answer["received"] <= MIB  # written so far
    status, answer = call(storage, "PUT", base, {"task": task, "offset": 4 * MIB - 1}, b"xy")
    assert status == 400 and "outside the 4194304-byte file" in answer["message"]
    status, answer = call(storage, "POST", base + "/finish", {"task": task})
    assert status == 409 and f"only {MIB} of {4 * MIB} bytes" in answer["message"]
    cancel(storage, task)
    assert storage.rbd_ls() == []
    status, answer = call(storage, "PUT", base, {"task": task, "offset": 0}, b"x")
    assert status == 404 and "no upload of" in answer["message"]
    status, answer = call(storage, "PUT", base, {"task": task, "offset": 0}, None)
    assert status in (400, 404, 415)


def test_an_upload_whose_api_died_is_cleaned_up_by_the_primary(storage):
    base = f"/storage/ceph/volume/{storage.pool}/up5/upload"
    status, answer = call(storage, "POST", base, {"file_size": 2 * MIB})
    assert status == 202
    task = answer["task"]
    assert call(storage, "PUT", base, {"task": task, "offset": 0}, b"x" * MIB)[0] == 200
    record = settled_after_api_death(storage, task)
    assert record["state"] == "failed"
    assert "its images were removed" in record["error"]
    assert storage.rbd_ls() == []
    assert not storage.zk.exists(("volume", storage.pool, "up5"))


def settled_after_api_death(storage, task: str) -> dict:
    """Kills the API (its Zookeeper session, and with it the task's claim, ends); the
    primary's job runner (as a node daemon runs it) settles the task: its record then."""
    storage.api.process.kill()
    storage.api.process.wait(10)
    add_node(storage.zk, "node1", router="primary")
    storage.zk.write({"base.config.primary_node": "node1"})
    view = CachedView(storage.zk, open_mirror(storage.zk, wait=10))
    kinds = storage_upload.kinds(view, ceph_config(storage.ceph))
    runner = JobRunner(storage.zk, view, "node1", kinds, keep=10, resync_interval=0.5)
    runner.start()
    try:
        ended = lambda: jobs.ended(view.read(("job", task)) or {"state": "running"})  # noqa: E731
        assert view.mirror.wait(ended, 60), str(jobs.info(storage.zk, task))[-300:]
    finally:
        runner.stop()
        view.mirror.close()
    return jobs.info(storage.zk, task)
