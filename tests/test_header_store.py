"""The header store: trust only from anchors, linking backward, forward-linked headers kept
but never verified, reorgs made only by anchors and their limits, consensus rules on every
pair, durability of the SQLite file.

Headers are the hive chain's (post-Merge from block 37) and branches made from them that
obey every consensus rule (same gas, fee and time fields as the genuine header at their
height), so only anchoring decides what is verified."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.chain.anchor import Anchor, AnchorSource
from node.chain.errors import (
    HeaderRuleError,
    HeaderStoreError,
    NotAnchoredError,
    VerificationError,
)
from node.chain.header import Header
from node.chain.header_store import HeaderStore

from vectors import child_of, hive_chain_config, hive_header


def H(number: int) -> Header:
    """Header ``number`` of the hive chain."""
    return hive_header(number)


def A(header: Header, source: AnchorSource = AnchorSource.USER) -> Anchor:
    return Anchor(header.number, header.hash, source, "test")


def fork(parent: Header, length: int, tag: bytes, **changes: object) -> list[Header]:
    """``length`` rule-abiding headers descending from ``parent``; ``tag`` (extraData) makes
    their hashes differ from the genuine chain's and from other forks."""
    out = []
    for _ in range(length):
        number = parent.number + 1
        parent = dataclasses.replace(H(number), parent_hash=parent.hash, extra_data=tag,
                                     **changes)
        out.append(parent)
    return out


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "headers.sqlite"


@pytest.fixture
def store(path: Path) -> Iterator[HeaderStore]:
    """Anchored at block 45 holding its ancestors down to 40."""
    with HeaderStore(path, hive_chain_config()) as s:
        s.add_anchor(A(H(45)), H(45))
        s.add_many([H(n) for n in range(44, 39, -1)])
        yield s


def canonical(s: HeaderStore, low: int, high: int) -> list[bytes | None]:
    return [s.canonical_hash(n) for n in range(low, high + 1)]


# --- anchors and linking backward -----------------------------------------------------

def test_anchor_then_ancestors_newest_first_are_verified(path: Path) -> None:
    with HeaderStore(path, hive_chain_config()) as s:
        assert s.head is None
        assert s.add_anchor(A(H(50)), H(50)).status == "anchored"
        insertions = s.add_many([H(n) for n in range(49, 29, -1)])  # fast path
        assert [i.status for i in insertions] == ["anchored"] * 20
        assert s.head == H(50)
        assert canonical(s, 30, 50) == [H(n).hash for n in range(30, 51)]
        assert all(s.get(H(n).hash) == H(n) for n in range(30, 51))
        assert [s.add(H(n)).status for n in (29, 28)] == ["anchored"] * 2  # one at a time
        assert s.by_number(28) == H(28) and s.reorg_count() == 0
        assert s.anchors() == [A(H(50))] and s.anchor_of(H(50).hash) == A(H(50))


def test_hive_chain_anchored_at_its_last_block_verifies_back_to_genesis(path: Path) -> None:
    with HeaderStore(path, hive_chain_config()) as s:
        s.add_anchor(A(H(54)), H(54))
        for top in range(53, -1, -10):  # batches of ten, newest first, as the node fetches
            s.add_many([H(n) for n in range(top, max(top - 10, -1), -1)])
        assert canonical(s, 0, 54) == [H(n).hash for n in range(55)]
        assert all(s.status(H(n).hash) == "anchored" for n in range(55))
        assert s.not_checked == {} or "excessBlobGas" not in s.not_checked


def test_hive_chain_anchored_at_block_40_leaves_41_to_54_not_anchored(path: Path) -> None:
    with HeaderStore(path, hive_chain_config()) as s:
        s.add_anchor(A(H(40)), H(40))
        s.add_many([H(n) for n in range(39, -1, -1)])
        later = s.add_many([H(n) for n in range(41, 55)])
        assert [i.status for i in later] == ["linked"] * 14
        assert s.head == H(40) and s.linked_count() == 14
        for n in range(41, 55):
            assert s.get(H(n).hash) is None and s.by_number(n) is None
            with pytest.raises(NotAnchoredError, match="links forward from anchored block 40"):
                s.require_anchored(H(n).hash)
        assert s.linked(H(47).hash) == H(47)  # kept, for a later anchor


def test_a_newer_anchor_reaches_back_through_linked_headers(store: HeaderStore) -> None:
    store.add_many([H(n) for n in range(46, 51)])
    assert store.status(H(48).hash) == "linked"
    insertion = store.add_anchor(A(H(51), AnchorSource.GROUND), H(51))
    assert insertion.status == "anchored" and insertion.reorg is None
    assert store.head == H(51) and store.linked_count() == 0
    assert canonical(store, 40, 51) == [H(n).hash for n in range(40, 52)]


def test_a_fabricated_child_of_an_anchor_links_but_is_never_verified(
        store: HeaderStore) -> None:
    forged = fork(H(45), 1, b"forged", state_root=b"\x99" * 32)[0]  # any stateRoot
    assert store.add(forged).status == "linked"
    assert store.get(forged.hash) is None and store.head == H(45)
    with pytest.raises(NotAnchoredError):
        store.require_anchored(forged.hash)


def test_a_longer_fabricated_branch_cannot_reorg_the_anchored_chain(
        store: HeaderStore) -> None:
    branch = fork(H(42), 8, b"forged")  # 43'..50': longer than the anchored chain
    assert [i.status for i in store.add_many(branch)] == ["linked"] * 8
    assert store.head == H(45) and canonical(store, 43, 45) == [H(n).hash for n in (43, 44, 45)]
    assert store.reorg_count() == 0


def test_store_refuses_a_header_that_links_to_nothing(store: HeaderStore) -> None:
    with pytest.raises(HeaderStoreError, match="does not link"):
        store.add(H(47))  # 46 unknown
    assert store.status(H(47).hash) is None


def test_anchor_must_be_its_header(path: Path) -> None:
    with HeaderStore(path) as s:
        with pytest.raises(VerificationError, match="anchor"):
            s.add_anchor(A(H(45)), H(44))
        with pytest.raises(VerificationError, match=r"anchor\.number"):
            s.add_anchor(Anchor(46, H(45).hash, AnchorSource.USER), H(45))
        with pytest.raises(VerificationError, match=r"anchor\.stateRoot"):
            s.add_anchor(Anchor(45, H(45).hash, AnchorSource.BEACON,
                                state_root=b"\x01" * 32), H(45))
        assert s.head is None and s.anchors() == []


@pytest.mark.parametrize("number, block_hash", [(-1, b"\x00" * 32), (2**64, b"\x00" * 32),
                                                (1, b"\x00" * 31)])
def test_anchor_needs_a_uint64_number_and_a_32_byte_hash(number: int, block_hash: bytes
                                                         ) -> None:
    with pytest.raises(ValueError):
        Anchor(number, block_hash, AnchorSource.USER)


def test_add_many_is_all_or_nothing(store: HeaderStore) -> None:
    with pytest.raises(HeaderStoreError):
        store.add_many([H(46), H(47), H(49)])
    assert store.status(H(46).hash) is None
    assert [i.status for i in store.add_many([H(46), H(47)])] == ["linked", "linked"]


def test_a_rule_broken_between_linked_headers_is_refused_too(store: HeaderStore) -> None:
    early = dataclasses.replace(H(46), timestamp=H(45).timestamp)  # not after its parent
    with pytest.raises(HeaderRuleError, match="timestamp"):
        store.add(early)
    assert store.status(early.hash) is None


def test_a_rule_broken_by_an_ancestor_below_an_anchor_is_refused(path: Path) -> None:
    with HeaderStore(path, hive_chain_config()) as s:
        liar = dataclasses.replace(H(45), gas_limit=H(44).gas_limit * 2)
        s.add_anchor(A(liar), liar)  # the user trusts it: its parent must still obey
        with pytest.raises(HeaderRuleError, match="gasLimit"):
            s.add_many([H(44), H(43)])
        assert s.status(H(44).hash) is None


def test_too_many_linked_headers_are_refused(path: Path) -> None:
    with HeaderStore(path, max_linked=3) as s:
        s.add_anchor(A(H(40)), H(40))
        s.add_many([H(41), H(42), H(43)])
        with pytest.raises(HeaderStoreError, match="not anchored"):
            s.add(H(44))
        s.add_anchor(A(H(44)), H(44))  # anchoring them frees the room
        assert s.linked_count() == 0


# --- reorgs, only by anchors ----------------------------------------------------------

def test_anchor_on_a_side_branch_reorgs_and_the_reorg_is_recorded(store: HeaderStore) -> None:
    side = fork(H(42), 4, b"side")  # 43'..46'
    store.add_many(side)
    insertion = store.add_anchor(A(side[-1], AnchorSource.QUORUM), side[-1])
    reorg = insertion.reorg
    assert reorg is not None and reorg.ancestor_number == 42 and reorg.depth == 3
    assert reorg.removed == (H(43).hash, H(44).hash, H(45).hash)
    assert reorg.added == tuple(h.hash for h in side)
    assert (reorg.old_head, reorg.new_head) == (H(45).hash, side[-1].hash)
    assert store.head == side[-1] and store.by_number(43) == side[0]
    assert store.reorg_count() == 1
    assert store.get(H(44).hash) == H(44)  # still an ancestor of the old anchor


def test_anchor_below_the_head_on_the_canonical_chain_changes_nothing(
        store: HeaderStore) -> None:
    assert store.add_anchor(A(H(42)), H(42)).reorg is None
    assert store.head == H(45)


def test_anchor_below_the_head_on_another_branch_rewinds_as_a_reorg(
        store: HeaderStore) -> None:
    side = fork(H(41), 2, b"side")
    store.add_many(side)
    reorg = store.add_anchor(A(side[0]), side[0]).reorg
    assert reorg is not None and reorg.removed == tuple(H(n).hash for n in (42, 43, 44, 45))
    assert store.head == side[0] and store.canonical_hash(43) is None


def test_back_filling_below_a_gap_replaces_an_older_anchors_branch(path: Path) -> None:
    with HeaderStore(path, hive_chain_config()) as s:
        side = fork(H(41), 6, b"side")  # 42'..47'
        s.add_anchor(A(side[3]), side[3])  # 45' with 44'.. not yet stored
        s.add_many(side[2::-1])  # 44', 43', 42' (the genuine 41 is not stored)
        assert s.head == side[3]
        s.add_anchor(A(H(48)), H(48))  # the genuine chain, 47..42 not yet stored
        # under the gap the canonical entries are still the older anchor's ancestry
        assert canonical(s, 42, 45) == [h.hash for h in side[:4]]
        assert s.canonical_hash(46) is None and s.head == H(48)
        insertions = s.add_many([H(n) for n in range(47, 41, -1)])
        reorgs = [i.reorg for i in insertions if i.reorg is not None]
        assert len(reorgs) == 1 and reorgs[0].ancestor_number == 41
        assert reorgs[0].removed == tuple(h.hash for h in side[:4])
        assert (reorgs[0].old_head, reorgs[0].new_head) == (side[3].hash, H(45).hash)
        assert canonical(s, 42, 48) == [H(n).hash for n in range(42, 49)]


def test_final_anchor_cannot_be_reorganised_away(store: HeaderStore) -> None:
    store.add_anchor(A(H(44), AnchorSource.BEACON), H(44), final=True)
    assert store.finalized is not None and store.finalized.number == 44
    side = fork(H(43), 3, b"side")
    store.add_many(side)
    with pytest.raises(HeaderStoreError, match="finalized"):
        store.add_anchor(A(side[-1]), side[-1])
    assert store.head == H(45) and store.anchors()[-1] == A(H(44), AnchorSource.BEACON)
    above = fork(H(44), 2, b"above")
    assert store.add_many(above) and store.add_anchor(A(above[-1]), above[-1]).reorg.depth == 1


def test_reorg_deeper_than_max_reorg_depth_is_refused(path: Path) -> None:
    with HeaderStore(path, hive_chain_config(), max_reorg_depth=2) as s:
        s.add_anchor(A(H(45)), H(45))
        s.add_many([H(n) for n in range(44, 39, -1)])
        shallow = fork(H(43), 3, b"shallow")  # replaces 44, 45
        s.add_many(shallow)
        assert s.add_anchor(A(shallow[-1]), shallow[-1]).reorg.depth == 2
        deep = fork(H(41), 6, b"deep")
        s.add_many(deep)
        with pytest.raises(HeaderStoreError, match="depth"):
            s.add_anchor(A(deep[-1]), deep[-1])
        assert s.head == shallow[-1]


def test_finalize_refuses_a_header_off_the_canonical_chain_and_going_backwards(
        store: HeaderStore) -> None:
    side = fork(H(42), 1, b"side")
    store.add_many(side)
    with pytest.raises(HeaderStoreError):
        store.finalize(side[0].hash)
    store.finalize(H(44).hash)
    with pytest.raises(HeaderStoreError):
        store.finalize(H(42).hash)


# --- durability -----------------------------------------------------------------------

def test_reopen_keeps_anchors_head_finality_reorgs_and_linked_status(path: Path) -> None:
    with HeaderStore(path, hive_chain_config()) as s:
        s.add_anchor(A(H(45)), H(45))
        s.add_many([H(n) for n in range(44, 39, -1)])
        side = fork(H(43), 3, b"side")
        s.add_many(side)
        s.add_anchor(A(side[-1]), side[-1])
        s.finalize(H(43).hash)
        s.add_many(fork(side[-1], 1, b"later"))
    with HeaderStore(path, hive_chain_config()) as s:
        assert s.head == side[-1] and s.finalized.number == 43 and s.reorg_count() == 1
        assert [a.number for a in s.anchors()] == [45, 46] and s.linked_count() == 1
        assert s.add(H(44)).status == "known"


def test_header_is_durable_as_soon_as_add_returns(store: HeaderStore, path: Path) -> None:
    store.add(H(46))
    with HeaderStore(path) as other:  # another connection, store still open
        assert other.status(H(46).hash) == "linked"
        other.add_anchor(A(H(47)), H(47))
    assert store.head == H(47) and store.get(H(46).hash) == H(46)
    assert path.with_name(path.name + "-wal").exists()  # WAL mode


def test_a_format_1_store_is_refused_with_what_to_do(path: Path) -> None:
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);"
                     "INSERT INTO meta VALUES ('schema', x'0001');")
    db.commit()
    db.close()
    with pytest.raises(HeaderStoreError, match=r"format 1.*start a new file"):
        HeaderStore(path)


KILLED_WRITER = """
import sys
sys.path[:0] = [{repo!r}, {tests!r}]
from node.chain.anchor import Anchor, AnchorSource
from node.chain.header_store import HeaderStore
from vectors import child_of, hive_chain_config, hive_header
from wallet.sqlite import write_transaction
store = HeaderStore({path!r}, hive_chain_config())
top = hive_header(54)
store.add_anchor(Anchor(54, top.hash, AnchorSource.USER), top)
print("anchored", flush=True)
while True:  # back-fill, drop, back-fill again: every commit is a full batch or nothing
    store.add_many([hive_header(n) for n in range(53, -1, -1)])
    with write_transaction(store._db) as db:  # back to the anchor alone, in one commit
        db.execute("DELETE FROM headers WHERE number < 54")
        db.execute("DELETE FROM canonical WHERE number < 54")
        db.execute("DELETE FROM orphans")
        db.execute("INSERT INTO orphans VALUES (?, ?)", (top.parent_hash, top.hash))
"""


def test_a_writer_killed_mid_batch_leaves_a_whole_batch_or_none(path: Path) -> None:
    """kill -9 while back-filling in a loop: after reopening, the chain below the anchor is
    either complete and anchored or absent -- never half a batch."""
    import signal
    import subprocess
    import sys
    import time

    repo = Path(__file__).resolve().parents[1]
    code = KILLED_WRITER.format(repo=str(repo), tests=str(repo / "tests"), path=str(path))
    for delay in (0.05, 0.2, 0.4):
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                text=True)
        assert proc.stdout is not None and proc.stdout.readline() == "anchored\n"
        time.sleep(delay)  # not synchronisation: a random moment to kill at
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with HeaderStore(path, hive_chain_config()) as s:
            stored = [n for n in range(54) if s.status(H(n).hash) is not None]
            assert stored in ([], list(range(54)))
            assert all(s.get(H(n).hash) == H(n) for n in stored)
            assert s.head == H(54) and s.linked_count() == 0
            assert [s.canonical_hash(n) for n in stored] == [H(n).hash for n in stored]
        path.unlink()
        for extra in ("-wal", "-shm"):
            path.with_name(path.name + extra).unlink(missing_ok=True)


def test_anvils_block_1_base_fee_is_accepted_on_anvil_only(path: Path) -> None:
    """anvil mines block 1 with the genesis base fee (EIP-1559 would lower it): a named quirk
    of the ANVIL config; any other chain, or any later block, is held to EIP-1559."""
    import json
    from importlib import resources

    from node.chain.forks import ANVIL
    from node.chain.header import verify_header

    blocks = json.loads(resources.files("node.examples").joinpath("headers.json").read_text())
    genesis, first, second = (verify_header(b) for b in blocks)
    with HeaderStore(path, ANVIL) as s:
        s.add_anchor(A(second), second)
        assert [i.status for i in s.add_many([first, genesis])] == ["anchored"] * 2
    with HeaderStore(path.with_name("other.sqlite")) as s:
        s.add_anchor(A(first), first)
        with pytest.raises(HeaderRuleError, match="baseFeePerGas 1000000000 is not 875000000"):
            s.add(genesis)
    same_fee = dataclasses.replace(second, base_fee_per_gas=first.base_fee_per_gas)
    with HeaderStore(path.with_name("later.sqlite"), ANVIL) as s:
        s.add_anchor(A(same_fee), same_fee)
        with pytest.raises(HeaderRuleError, match="baseFeePerGas"):
            s.add(first)


def test_anvils_equal_timestamps_are_accepted_on_anvil_only(path: Path) -> None:
    """anvil gives blocks mined in the same second their parent's timestamp: accepted under
    the ANVIL config's named quirk, never an earlier timestamp, and nowhere else."""
    from node.chain.forks import ANVIL

    same = child_of(H(45), None, timestamp=H(45).timestamp)
    with HeaderStore(path) as s:
        s.add_anchor(A(H(45)), H(45))
        with pytest.raises(HeaderRuleError, match="is not after parent's"):
            s.add(same)
    anvil = dataclasses.replace(ANVIL, time_forks=())  # the hive header's blob fields aside
    earlier = child_of(H(45), None, timestamp=H(45).timestamp - 1)
    with HeaderStore(path.with_name("anvil.sqlite"), anvil) as s:
        s.add_anchor(A(H(45)), H(45))
        assert s.add(same).status == "linked"
        with pytest.raises(HeaderRuleError, match="is not after parent's"):
            s.add(earlier)


# --- the file is not trusted ------------------------------------------------------------

@pytest.mark.parametrize("victim", [45, 42])  # the head; an ancestor read by number
def test_an_edited_header_row_fails_loudly_instead_of_being_served(path: Path,
                                                                   victim: int) -> None:
    """Another process rewrites a stored header's RLP (another state root, the hash column
    kept): every read of it names the file and the mismatch; nothing forged is returned."""
    with HeaderStore(path, hive_chain_config()) as s:
        s.add_anchor(A(H(45)), H(45))
        s.add_many([H(n) for n in range(44, 39, -1)])
    forged = dataclasses.replace(H(victim), state_root=b"\x66" * 32)
    with sqlite3.connect(path) as db:
        assert db.execute("UPDATE headers SET rlp=? WHERE hash=?",
                          (forged.rlp, H(victim).hash)).rowcount == 1
    with HeaderStore(path, hive_chain_config()) as s:
        reads = [lambda: s.get(H(victim).hash), lambda: s.linked(H(victim).hash),
                 lambda: s.by_number(victim), lambda: s.require_anchored(H(victim).hash)]
        if victim == 45:
            reads.append(lambda: s.head)
        for read in reads:
            with pytest.raises(HeaderStoreError, match=f"{path}: the header stored as block "
                                                       f"0x{H(victim).hash.hex()} hashes to "
                                                       f"0x{forged.hash.hex()}.*edited"):
                read()
        assert s.get(H(44 if victim == 45 else 43).hash) == H(44 if victim == 45 else 43)
