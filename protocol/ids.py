"""Random identifiers for tasks, contexts, artifacts, messages and leases.

`new_uuid()` is the text of a random (version 4, RFC 9562) UUID, as
``str(uuid.uuid4())`` gives it, built without the `uuid.UUID` object: a blocking
SendMessage mints four of them, and the object and its checks cost more than the
random bytes (docs/benchmarks.md, "Hot path").
"""

from __future__ import annotations

import os

__all__ = ["new_uuid"]

_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))  # the version nibble and the variant bits
_SET = (0x4000 << 64) | (0x8000 << 48)  # version 4, variant RFC 9562 (10xx)


def new_uuid() -> str:
    """A random UUID's canonical text (lower-case hex, 8-4-4-4-12)."""
    h = "%032x" % ((int.from_bytes(os.urandom(16), "big") & _CLEAR) | _SET)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
