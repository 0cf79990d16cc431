"""How a job's items become chunks. Every id here is deterministic: replays yield the same ids."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

MANIFEST_IDS_PER_PAGE = 1_000


@dataclass(frozen=True, slots=True)
class Chunk:
    chunk_id: str
    entity_ids: tuple[str, ...]
    attempt: int = 1


def base_chunk_id(index: int) -> str:
    return f"{index:06d}"


def retry_chunk_id(chunk_id: str, attempt: int) -> str:
    """The chunk that carries `chunk_id`'s still-failing items into `attempt` (one per parent)."""
    base = chunk_id.split(".", 1)[0]
    return f"{base}.r{attempt}"


def plan_chunks(entity_ids: Sequence[str], chunk_size: int) -> list[Chunk]:
    return [
        Chunk(base_chunk_id(i), tuple(entity_ids[start : start + chunk_size]))
        for i, start in enumerate(range(0, len(entity_ids), chunk_size))
    ]


def chunks_per_manifest_page(chunk_size: int) -> int:
    return max(1, MANIFEST_IDS_PER_PAGE // chunk_size)


def shard_of(chunk_id: str, shards: int) -> int:
    """Spreads a job's counter writes over `shards` items (one item takes ~1,000 WCU/s)."""
    digest = hashlib.blake2b(chunk_id.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % shards
