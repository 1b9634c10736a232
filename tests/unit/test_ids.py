"""Pooled random ids: well formed, never repeated, and not shared with a forked child."""

from __future__ import annotations

import os
import uuid

from payport.ids import new_uuid, random_bytes


def test_ids_are_version_4_uuids_and_never_repeat_across_pool_refills() -> None:
    ids = [new_uuid() for _ in range(10_000)]  # 160 KB: the 64 KiB pool refills twice
    assert len(set(ids)) == len(ids)
    parsed = uuid.UUID(ids[-1])
    assert parsed.version == 4 and str(parsed) == ids[-1]


def test_a_request_larger_than_the_pool_gets_all_its_bytes() -> None:
    assert len(random_bytes(100_000)) == 100_000
    assert len(random_bytes(24)) == 24


def test_a_forked_child_does_not_repeat_its_parents_next_id() -> None:
    random_bytes(1)  # the pool holds bytes the parent has not handed out yet
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.write(writer, new_uuid().encode())
        os._exit(0)
    os.close(writer)
    parents = new_uuid()
    os.waitpid(child, 0)
    with os.fdopen(reader, "rb") as pipe:
        childs = pipe.read().decode()
    assert len(childs) == 36 and childs != parents
