"""API key checking: the `X-Api-Key` header against the configured keys.

Keys are compared in constant time (`hmac.compare_digest`, against every key, so the time
taken says nothing about which key nearly matched). Authentication is on unless the
configuration sets `api.authentication.enabled: false`, which the server logs loudly.
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
        """Returns if the request may proceed; raises Unauthorized otherwise."""
        if not self.enabled:
            return
        if not given:
            raise Unauthorized("an API key is required (header X-Api-Key)")
        candidate = given.encode()
        matched = False
        for key in self.keys:
            matched |= hmac.compare_digest(candidate, key)
        if not matched:
            raise Unauthorized("the API key is not valid")
