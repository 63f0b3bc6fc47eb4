"""API key checking: the `X-Api-Key` header against the configured keys.

The header is compared as the bytes sent (WSGI hands them over as Latin-1 characters), so a
key that is not UTF-8 is a wrong key (401), not an error. Keys are compared in constant time
(`hmac.compare_digest`, against every key, so the time taken says nothing about which key
nearly matched). Authentication is on unless the configuration sets
`api.authentication.enabled: false`, which the server logs loudly.
"""

import hmac
from dataclasses import dataclass

from pvc.config import Config
from pvc.errors import Unauthorized


@dataclass(frozen=True)
class KeyCheck:
    enabled: bool
    keys: tuple[bytes, ...]

    @classmethod
    def from_config(cls, config: Config) -> "KeyCheck":
        section = config.get("api.authentication")
        keys = tuple(entry["key"].encode() for entry in section["keys"])
        return cls(section["enabled"], keys)

    def check(self, given: str | None) -> None:
        """Returns if the request may proceed; raises Unauthorized otherwise.

        `given`: the header as WSGI has it (environ["HTTP_X_API_KEY"], bytes as Latin-1)."""
        if not self.enabled:
            return
        if not given:
            raise Unauthorized("an API key is required (header X-Api-Key)")
        candidate = given.encode("latin-1", errors="replace")
        matched = False
        for key in self.keys:
            matched |= hmac.compare_digest(candidate, key)
        if not matched:
            raise Unauthorized("the API key is not valid")
