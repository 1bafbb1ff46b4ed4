"""Solidity sources, pinned compiler, artifacts and the single EIP-712 definitions.

* ``src/SatelliteRegistry.sol``: owner, operators, satellite signer addresses (name, NORAD
  id), registered / deactivated / re-activated, with a code snapshot of the active set.
* ``src/TaskAttestations.sol``: tasks, k-of-n EIP-712 certificates over ``TaskResult``,
  batch certificates over a Merkle root with per-member proofs, equivocation reports.
* :mod:`contracts.build`: compiles both with npm solc 0.8.37 (standard JSON through node) into
  ``artifacts/<Contract>.json``; ``build(check=True)`` proves the committed artifacts are
  reproduced byte for byte.
* :mod:`contracts.eip712`: THE definition of the EIP-712 domain, ``TaskResult`` and
  ``TaskBatch`` (type strings, hashStruct, digests, typed-data documents).
* :mod:`contracts.merkle`: the batch Merkle tree, exactly as ``proveBatchMember`` checks it.

Nothing here imports from ``node``.
"""
