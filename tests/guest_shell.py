"""Commands in the tiny test guest, through the root shell on its second serial port.

scripts/mkguest's guest runs `sh` on /dev/ttyS1 when the domain has a second serial port
(tests.libvirt_nodes.linux_domain_xml's `shell_socket`: a UNIX socket QEMU listens on). A
serial line has no framing, so each command is sent as one line between two markers:
    echo ST''ART-<id>; sh -c '<command>' </dev/null 2>&1; echo "EN""D-<id> $?"
The markers are spelt with quotes so an echo of the line itself (should the console echo) never
matches them, nor does a prompt before them; output is what lies between the START line and
the END marker (CR/LF made LF; stdout and stderr together), the exit code follows END. The
command runs in a child shell, so a syntax error or an `exit` in it does not end the guest's
shell, and its stdin is /dev/null, so it cannot swallow the next command.
"""

import re
import shlex
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Result:
    code: int
    output: str


class GuestShell:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buffer = ""

    @classmethod
    def connect(cls, path: Path, timeout: float = 120) -> "GuestShell":
        """Connects to the shell socket at `path` and waits (up to `timeout` s, the guest may
        still be booting) until the shell answers."""
        deadline = time.monotonic() + timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(str(path))
                break
            except OSError as exc:
                sock.close()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no guest shell at {path} within {timeout} s") from exc
                time.sleep(0.2)
        shell = cls(sock)
        marker = f"READY-{uuid.uuid4().hex[:12]}"
        while not shell._read_until(re.compile(re.escape(marker)), 1.0):
            if time.monotonic() > deadline:
                shell.close()
                raise TimeoutError(f"the guest shell at {path} did not answer within {timeout} s")
            shell._send(f"echo RE''ADY-{marker[6:]}\n")
        return shell

    def run(self, command: str, timeout: float = 60) -> Result:
        """Runs `command` (sh syntax) in the guest: its exit code and output."""
        tag = uuid.uuid4().hex[:12]
        self._send(
            f"echo ST''ART-{tag}; sh -c {shlex.quote(command)} </dev/null 2>&1; "
            f'echo "EN""D-{tag} $?"\n'
        )
        end = re.compile(rf"END-{tag} (\d+)\n")
        match = self._read_until(end, timeout)
        if match is None:
            raise TimeoutError(f"{command!r} did not finish in the guest within {timeout} s")
        text = self.buffer[: match.start()]
        self.buffer = self.buffer[match.end() :]
        start = re.search(rf"START-{tag}\n", text)
        output = text[start.end() :] if start else text
        return Result(int(match.group(1)), output)

    def check(self, command: str, timeout: float = 60) -> str:
        """The output of `command`, which must succeed."""
        result = self.run(command, timeout)
        if result.code != 0:
            raise AssertionError(f"{command!r} exited {result.code} in the guest: {result.output}")
        return result.output

    def close(self) -> None:
        self.sock.close()

    def _send(self, text: str) -> None:
        self.sock.sendall(text.encode())

    def _read_until(self, pattern: re.Pattern, timeout: float) -> re.Match | None:
        """Reads into the buffer until `pattern` matches it; the match, or None at timeout."""
        deadline = time.monotonic() + timeout
        while (match := pattern.search(self.buffer)) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return None
            if not data:
                raise ConnectionError("the guest shell socket was closed")
            self.buffer += data.decode(errors="replace").replace("\r", "")
        return match
