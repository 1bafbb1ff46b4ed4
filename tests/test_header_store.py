"""The header store: trust from a checkpoint, hash links forward and backward, side
branches, reorgs and their limits, and durability of the SQLite file."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.chain.errors import HeaderStoreError
from node.chain.header import Header
from node.chain.header_store import Checkpoint, HeaderStore

from vectors import hive_block


def H(number: int) -> Header:
    """Header ``number`` of the hive chain."""
    return hive_block(number).header


def fork(parent: Header, length: int, tag: bytes) -> list[Header]:
    """``length`` headers descending from ``parent``; ``tag`` (extraData) makes their hashes
    differ from the real chain's and from other forks."""
    out = []
    for _ in range(length):
        number = parent.number + 1
        parent = dataclasses.replace(H(min(number, 54)), number=number,
                                     parent_hash=parent.hash, extra_data=tag)
        out.append(parent)
    return out


def checkpoint(number: int) -> Checkpoint:
    return Checkpoint(number, H(number).hash)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "headers.sqlite"


@pytest.fixture
def store(path: Path) -> Iterator[HeaderStore]:
    """A store anchored at block 10 holding the canonical chain 10..15."""
    with HeaderStore(path, checkpoint(10)) as s:
        for n in range(10, 16):
            s.add(H(n))
        yield s


def canonical(s: HeaderStore, low: int, high: int) -> list[bytes | None]:
    return [s.canonical_hash(n) for n in range(low, high + 1)]


# --- trust from the checkpoint, links forward and backward ----------------------------

def test_checkpoint_header_then_forward_links_become_the_head(path: Path) -> None:
    with HeaderStore(path, checkpoint(10)) as s:
        assert s.head is None
        assert s.add(H(10)).status == "head"
        statuses = [s.add(H(n)).status for n in range(11, 21)]
        assert statuses == ["head"] * 10
        assert s.head == H(20)
        assert s.by_number(15) == H(15) and s.get(H(17).hash) == H(17)
        assert canonical(s, 10, 20) == [H(n).hash for n in range(10, 21)]
        assert s.finalized == checkpoint(10) and s.reorg_count() == 0


def test_store_refuses_headers_before_the_checkpoint_arrives(path: Path) -> None:
    with HeaderStore(path, checkpoint(10)) as s, pytest.raises(HeaderStoreError):
        s.add(H(11))


def test_store_refuses_checkpoint_hash_claimed_at_another_number(path: Path) -> None:
    with HeaderStore(path, Checkpoint(11, H(10).hash)) as s, pytest.raises(HeaderStoreError):
        s.add(H(10))


def test_store_refuses_unlinked_header(store: HeaderStore) -> None:
    with pytest.raises(HeaderStoreError, match="does not link"):
        store.add(H(17))  # its parent, 16, is unknown
    with pytest.raises(HeaderStoreError):
        store.add(fork(H(20), 1, b"stray")[0])
    assert store.get(H(17).hash) is None and store.head == H(15)


def test_store_refuses_header_whose_number_does_not_follow_its_parent(
        store: HeaderStore) -> None:
    liar = dataclasses.replace(H(16), number=17)
    with pytest.raises(HeaderStoreError, match="number"):
        store.add(liar)
    assert store.get(liar.hash) is None


def test_adding_a_stored_header_again_is_known(store: HeaderStore) -> None:
    assert store.add(H(12)).status == "known"
    assert store.head == H(15)


def test_store_back_fills_ancestors_below_the_checkpoint(store: HeaderStore) -> None:
    assert [store.add(H(n)).status for n in (9, 8, 7)] == ["ancestor"] * 3
    assert canonical(store, 7, 15) == [H(n).hash for n in range(7, 16)]
    assert store.head == H(15)
    with pytest.raises(HeaderStoreError):  # not the parent of block 7
        store.add(fork(H(4), 1, b"impostor")[0])


def test_add_many_is_all_or_nothing(store: HeaderStore) -> None:
    with pytest.raises(HeaderStoreError):
        store.add_many([H(16), H(17), H(19)])
    assert store.get(H(16).hash) is None and store.head == H(15)
    assert [i.status for i in store.add_many([H(16), H(17)])] == ["head", "head"]


# --- side branches and reorgs ---------------------------------------------------------

def test_shorter_or_equal_branch_is_kept_on_the_side(store: HeaderStore) -> None:
    side = fork(H(12), 3, b"side")  # 13', 14', 15': as long as the canonical chain
    assert [store.add(h).status for h in side] == ["side"] * 3
    assert store.head == H(15) and store.by_number(13) == H(13)
    assert all(store.get(h.hash) == h for h in side)
    assert store.reorg_count() == 0


def test_longer_branch_reorgs_and_the_reorg_is_returned_and_recorded(
        store: HeaderStore) -> None:
    side = fork(H(12), 4, b"side")  # 13'..16'
    insertions = [store.add(h) for h in side]
    assert [i.status for i in insertions] == ["side", "side", "side", "head"]
    reorg = insertions[-1].reorg
    assert reorg is not None
    assert reorg.ancestor_number == 12 and reorg.depth == 3
    assert reorg.removed == (H(13).hash, H(14).hash, H(15).hash)
    assert reorg.added == tuple(h.hash for h in side)
    assert (reorg.old_head, reorg.new_head) == (H(15).hash, side[-1].hash)
    assert store.head == side[-1] and store.by_number(13) == side[0]
    assert store.reorg_count() == 1
    assert store.get(H(14).hash) == H(14)  # the old branch is kept, off the canonical chain


def test_old_branch_can_win_back_with_another_reorg(store: HeaderStore) -> None:
    for h in fork(H(12), 4, b"side"):
        store.add(h)
    assert store.add(H(16)).status == "side"  # 16 on the old branch: not longer
    insertion = store.add(H(17))
    assert insertion.status == "head" and insertion.reorg is not None
    assert insertion.reorg.ancestor_number == 12 and insertion.reorg.depth == 4
    assert store.head == H(17) and store.reorg_count() == 2


def test_reorg_replacing_a_finalized_header_is_refused(store: HeaderStore) -> None:
    store.finalize(H(14).hash)
    side = fork(H(12), 4, b"side")
    for h in side[:3]:
        store.add(h)
    with pytest.raises(HeaderStoreError, match="finalized"):
        store.add(side[3])
    assert store.get(side[3].hash) is None and store.head == H(15)
    assert store.reorg_count() == 0


def test_reorg_above_the_finalized_header_is_allowed(store: HeaderStore) -> None:
    store.finalize(H(13).hash)
    side = fork(H(13), 3, b"side")
    assert store.add_many(side)[-1].status == "head"
    assert store.reorg_count() == 1 and store.by_number(13) == H(13)


def test_reorg_below_the_checkpoint_is_refused(store: HeaderStore) -> None:
    store.add(H(9))
    side = fork(H(9), 7, b"side")  # 10'..16' would replace the checkpoint
    with pytest.raises(HeaderStoreError):
        store.add_many(side)
    assert store.head == H(15) and store.canonical_hash(10) == H(10).hash


def test_reorg_deeper_than_max_reorg_depth_is_refused(path: Path) -> None:
    with HeaderStore(path, checkpoint(10), max_reorg_depth=2) as s:
        s.add_many([H(n) for n in range(10, 16)])
        shallow = fork(H(13), 3, b"shallow")  # replaces 14, 15
        assert s.add_many(shallow)[-1].reorg.depth == 2
        deep = fork(H(12), 5, b"deep")  # would replace 13, 14', 15', 16'
        with pytest.raises(HeaderStoreError, match="depth"):
            s.add_many(deep)
        assert s.head == shallow[-1]


# --- set_head (head trust) and finalize -----------------------------------------------

def test_set_head_to_a_lower_canonical_header_rewinds_as_a_reorg(store: HeaderStore) -> None:
    reorg = store.set_head(H(12).hash)
    assert reorg is not None and reorg.depth == 3 and reorg.added == ()
    assert reorg.removed == (H(13).hash, H(14).hash, H(15).hash)
    assert store.head == H(12) and store.canonical_hash(13) is None
    assert store.reorg_count() == 1


def test_set_head_to_a_side_branch_switches_to_it(store: HeaderStore) -> None:
    side = fork(H(12), 2, b"side")
    store.add_many(side)
    reorg = store.set_head(side[-1].hash)
    assert reorg is not None and reorg.added == (side[0].hash, side[1].hash)
    assert store.head == side[-1]


def test_set_head_to_the_head_or_a_descendant_is_no_reorg(store: HeaderStore) -> None:
    assert store.set_head(H(15).hash) is None
    store.set_head(H(13).hash)
    assert store.set_head(H(15).hash) is None  # stored above: extends the chain again
    assert store.head == H(15)


def test_set_head_refuses_unknown_hash_and_rewinding_below_finalized(
        store: HeaderStore) -> None:
    with pytest.raises(HeaderStoreError):
        store.set_head(b"\x00" * 32)
    store.finalize(H(13).hash)
    with pytest.raises(HeaderStoreError):
        store.set_head(H(12).hash)
    assert store.head == H(15)


def test_finalize_refuses_side_branch_and_going_backwards(store: HeaderStore) -> None:
    side = fork(H(12), 1, b"side")
    store.add_many(side)
    with pytest.raises(HeaderStoreError):
        store.finalize(side[0].hash)
    store.finalize(H(14).hash)
    assert store.finalized == checkpoint(14)
    with pytest.raises(HeaderStoreError):
        store.finalize(H(12).hash)


@pytest.mark.parametrize("number, block_hash", [(-1, b"\x00" * 32), (1, b"\x00" * 31)])
def test_checkpoint_needs_a_number_and_a_32_byte_hash(number: int, block_hash: bytes) -> None:
    with pytest.raises(HeaderStoreError):
        Checkpoint(number, block_hash)


# --- durability -----------------------------------------------------------------------

def test_second_open_with_another_checkpoint_is_refused(store: HeaderStore, path: Path) -> None:
    with pytest.raises(HeaderStoreError, match="checkpoint"):
        HeaderStore(path, checkpoint(11))


def test_reopen_after_close_keeps_head_finality_and_reorgs(path: Path) -> None:
    with HeaderStore(path, checkpoint(10)) as s:
        s.add_many([H(n) for n in range(10, 16)])
        s.add_many(fork(H(13), 3, b"side"))
        s.finalize(H(13).hash)
        head = s.head
    with HeaderStore(path, checkpoint(10)) as s:
        assert s.head == head and s.head.extra_data == b"side"
        assert s.finalized == checkpoint(13) and s.reorg_count() == 1
        assert s.add(H(14)).status == "known"


def test_header_is_durable_as_soon_as_add_returns(store: HeaderStore, path: Path) -> None:
    store.add(H(16))
    with HeaderStore(path, checkpoint(10)) as other:  # another connection, store still open
        assert other.head == H(16)
        other.add(H(17))
    assert store.head == H(17)
    assert path.with_name(path.name + "-wal").exists()  # WAL mode
