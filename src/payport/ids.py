"""Random ids drawn from a pooled buffer of the OS's randomness.

`uuid.uuid4()` and `secrets.token_bytes()` ask the kernel for 16-24 bytes each
time; an authorization makes about six ids (payment, events, the sandbox's
objects), and those system calls were ~5 % of the worker's CPU at 1,024
commands in flight. The bytes are the same `os.urandom` bytes, fetched 64 KiB at a
time; a forked child starts with an empty pool so it never repeats its parent's ids.
"""

from __future__ import annotations

import os
import threading
import uuid

_POOL_BYTES = 1 << 16
_lock = threading.Lock()
_pool = b""
_taken = 0


def random_bytes(count: int) -> bytes:
    """`count` fresh bytes from the OS's random source."""
    global _pool, _taken
    with _lock:
        if _taken + count > len(_pool):
            _pool, _taken = os.urandom(max(_POOL_BYTES, count)), 0
        start, _taken = _taken, _taken + count
        return _pool[start:_taken]


def new_uuid() -> str:
    """A random (version 4) UUID as text, like `str(uuid.uuid4())`."""
    return str(uuid.UUID(bytes=random_bytes(16), version=4))


def _empty_the_pool() -> None:
    global _pool, _taken
    _pool, _taken = b"", 0


os.register_at_fork(after_in_child=_empty_the_pool)
