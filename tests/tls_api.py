"""`pvc api serve` over TLS for tests and benches: a self-signed certificate for an address
(made by `openssl`), and a client context that trusts it."""

import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.processes import COMMAND_TIMEOUT


def self_signed(folder: Path, address: str = "127.0.0.1") -> tuple[Path, Path]:
    """(certificate, key) files of a new self-signed certificate for `address`."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-keyout", str(key), "-out", str(cert),
         "-subj", f"/CN={address}", "-addext", f"subjectAltName=IP:{address}"],
        check=True, capture_output=True, timeout=COMMAND_TIMEOUT,
    )  # fmt: skip
    return cert, key


def tls_section(folder: Path, address: str = "127.0.0.1") -> dict:
    """The `api.tls` configuration of a new self-signed certificate in `folder`."""
    cert, key = self_signed(folder, address)
    return {"enabled": True, "cert_file": str(cert), "key_file": str(key)}


def client_context(tls: dict) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=tls["cert_file"])


def wait_until_serving(url: str, context: ssl.SSLContext, timeout: float = 15) -> None:
    """Returns once GET `url` answers over TLS."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, context=context, timeout=2).close()
            return
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
