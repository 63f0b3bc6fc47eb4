"""An RBD image read as a file (read-only, seekable), for Python readers such as tarfile.

Each read is one librbd read at the position (bounded by the connection's OSD timeout); the
image is opened read-only, so it takes no lock and a writer elsewhere is not disturbed.
"""

import io
from collections.abc import Iterator
from contextlib import contextmanager

from pvc.drivers.ceph import Ceph
from pvc.drivers.ceph_images import opened_image


class ImageFile(io.RawIOBase):
    def __init__(self, image: object, size: int):
        super().__init__()
        self.image = image
        self.size = size
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        length = max(0, min(len(buffer), self.size - self.position))
        data = self.image.read(self.position, length) if length else b""  # type: ignore[attr-defined]
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)


@contextmanager
def opened(ceph: Ceph, pool: str, name: str) -> Iterator[ImageFile]:
    """`pool/name` as a read-only file for the block; librbd's errors as CephErrors."""
    with opened_image(ceph, pool, name, read_only=True) as image:
        yield ImageFile(image, image.size())
