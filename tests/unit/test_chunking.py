from batchpredict.chunking import (
    base_chunk_id,
    chunks_per_manifest_page,
    plan_chunks,
    retry_chunk_id,
    shard_of,
)


def test_plan_chunks_26_items_by_25_makes_two_chunks_in_order() -> None:
    ids = [f"e{i}" for i in range(26)]
    chunks = plan_chunks(ids, 25)
    assert [c.chunk_id for c in chunks] == ["000000", "000001"]
    assert [len(c.entity_ids) for c in chunks] == [25, 1]
    assert [i for c in chunks for i in c.entity_ids] == ids


def test_plan_chunks_replayed_gives_identical_ids() -> None:
    ids = [f"e{i}" for i in range(1000)]
    assert plan_chunks(ids, 25) == plan_chunks(list(ids), 25)


def test_retry_chunk_id_is_one_per_parent_and_attempt() -> None:
    assert retry_chunk_id("000012", 2) == "000012.r2"
    assert retry_chunk_id("000012.r2", 3) == "000012.r3"
    assert base_chunk_id(7) == "000007"


def test_retry_chunk_ids_sort_right_after_their_base_chunk() -> None:
    ids = sorted(["000002", "000001.r2", "000001", "000001.r3", "000010"])
    assert ids == ["000001", "000001.r2", "000001.r3", "000002", "000010"]


def test_shard_of_is_stable_and_spreads_chunks() -> None:
    shards = [shard_of(base_chunk_id(i), 16) for i in range(400)]
    assert shards == [shard_of(base_chunk_id(i), 16) for i in range(400)]
    assert set(shards) == set(range(16))
    assert max(shards.count(s) for s in range(16)) < 50  # no shard takes a big share


def test_chunks_per_manifest_page_holds_whole_chunks() -> None:
    assert chunks_per_manifest_page(25) == 40
    assert chunks_per_manifest_page(100) == 10
    assert chunks_per_manifest_page(1) == 1000
