"""systemd's readiness protocol (sd_notify) on the standard library; silent without systemd."""

import os
import socket


def notify(message: str) -> None:
    """Sends e.g. "READY=1" or "STOPPING=1" to $NOTIFY_SOCKET, if systemd set one."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(address)
            sock.sendall(message.encode())
        except OSError:
            pass  # systemd gone or not listening: nothing to tell
