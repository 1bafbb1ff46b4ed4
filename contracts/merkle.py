"""The ordered binary Merkle tree of a certified batch, as TaskAttestations.proveBatchMember
checks it.

* Leaves are 32-byte EIP-712 ``hashStruct(TaskResult)`` values
  (:func:`contracts.eip712.task_result_hash_struct`), in batch order; not the full digests.
* A parent is ``keccak256(left || right)``; the left child is the one with the even index.
  Sibling order comes from the index bits: nothing is sorted.
* A level with an odd number of nodes promotes its last node to the next level unchanged
  (not duplicated, not re-hashed). A single leaf is its own root.
* A proof lists the siblings bottom-up, skipping the levels where the node was promoted; its
  length is therefore fixed by ``(index, count)``, and the contract knows ``count`` (it is
  signed as part of TaskBatch), so a proof of another length, or an index >= count, fails.
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_utils import keccak


def _parent(left: bytes, right: bytes) -> bytes:
    return keccak(left + right)


def _check_leaves(leaves: Sequence[bytes]) -> None:
    if not leaves:
        raise ValueError("a Merkle tree needs at least one leaf")
    for leaf in leaves:
        if len(leaf) != 32:
            raise ValueError(f"a leaf is 32 bytes, not {len(leaf)}")


def _next_level(level: list[bytes]) -> list[bytes]:
    parents = [_parent(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
    if len(level) % 2:
        parents.append(level[-1])  # promoted
    return parents


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """The root of the tree over ``leaves``."""
    _check_leaves(leaves)
    level = list(leaves)
    while len(level) > 1:
        level = _next_level(level)
    return level[0]


def merkle_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """The siblings proving ``leaves[index]``, bottom-up."""
    _check_leaves(leaves)
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf index {index} outside 0..{len(leaves) - 1}")
    proof: list[bytes] = []
    level = list(leaves)
    while len(level) > 1:
        if index % 2:
            proof.append(level[index - 1])
        elif index + 1 < len(level):
            proof.append(level[index + 1])
        level = _next_level(level)
        index //= 2
    return proof


def root_from_proof(leaf: bytes, proof: Sequence[bytes], index: int, count: int) -> bytes | None:
    """The root ``proof`` leads to from ``leaf`` at ``index`` of ``count``, or None if the
    proof has the wrong length or the index is out of range (the contract's rules)."""
    if not 0 <= index < count:
        return None
    node, used, width = leaf, 0, count
    while width > 1:
        if index % 2 or index + 1 < width:
            if used == len(proof):
                return None
            sibling = proof[used]
            used += 1
            node = _parent(sibling, node) if index % 2 else _parent(node, sibling)
        index //= 2
        width = (width + 1) // 2
    return node if used == len(proof) else None


def verify(leaf: bytes, proof: Sequence[bytes], index: int, count: int, root: bytes) -> bool:
    """Whether ``proof`` shows ``leaf`` is leaf ``index`` of a ``count``-leaf tree with
    ``root``: exactly what proveBatchMember accepts."""
    return root_from_proof(leaf, proof, index, count) == root
