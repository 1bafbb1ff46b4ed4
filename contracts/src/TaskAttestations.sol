// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @dev The part of SatelliteRegistry this contract reads.
interface ISatelliteRegistryView {
    function isActive(address signer) external view returns (bool);
    function isRegistered(address signer) external view returns (bool);
    function isOperator(address account) external view returns (bool);
    function activeSet() external view returns (address);
}

/// @title TaskAttestations
/// @notice On-chain certificates for the constellation's AI task results.
///
/// An operator posts a task (model hash, input hash, quorum k). Satellites run it and sign the
/// EIP-712 struct
///     TaskResult(bytes32 taskId,bytes32 modelHash,bytes32 inputHash,bytes32 outputHash,uint64 epoch)
/// under the domain {name: "OrbitalTaskAttestations", version: "1", chainId, verifyingContract:
/// this}. A certificate is k or more such signatures by distinct registered, active satellites,
/// given in strictly ascending signer-address order (which rules out duplicates at no cost).
/// The first valid certificate for a task stores its output; there is no second.
///
/// Batches: satellites sign TaskBatch(bytes32 root,uint64 epoch,uint32 count) over the Merkle
/// root of `count` results; `submitBatchCertificate` stores (epoch, count, signers) for the root
/// and each member is later certified by `proveBatchMember` with a Merkle proof, provided the
/// batch's signer count reaches that task's quorum and the result's epoch is the batch's.
///
/// Merkle tree (contracts/merkle.py builds the same): leaves are EIP-712 hashStruct(TaskResult)
/// (not the full digest) in batch order; a parent is keccak256(left || right), the left child
/// being the one with the even index (sibling order comes from the index bits, nothing is
/// sorted); the last node of a level with an odd number of nodes is promoted to the next level
/// unchanged (not duplicated, not hashed). The proof lists the siblings bottom-up, skipping
/// levels where the node was promoted; its length is therefore fixed by (index, count).
///
/// Signatures are 65 bytes r || s || v with v in {27, 28} and s <= secp256k1n / 2 (EIP-2), and
/// must recover (ecrecover precompile) to a non-zero address.
///
/// Equivocation: two valid signatures by one registered satellite (active or not) over
/// TaskResults for the same task with different outputs mark the satellite `equivocated` and
/// emit `Equivocation`; each (signer, task) pair is reported once.
contract TaskAttestations {
    struct TaskResult {
        bytes32 taskId;
        bytes32 modelHash;
        bytes32 inputHash;
        bytes32 outputHash;
        uint64 epoch;
    }

    struct Task {
        bytes32 modelHash;
        bytes32 inputHash;
        uint16 quorum; // 0: not posted
    }

    struct Batch {
        uint64 epoch;
        uint32 count;
        uint32 signers; // 0: not certified
    }

    bytes32 private constant DOMAIN_TYPEHASH = keccak256(
        "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    );
    bytes32 private constant NAME_HASH = keccak256("OrbitalTaskAttestations");
    bytes32 private constant VERSION_HASH = keccak256("1");
    bytes32 public constant TASK_RESULT_TYPEHASH = keccak256(
        "TaskResult(bytes32 taskId,bytes32 modelHash,bytes32 inputHash,bytes32 outputHash,uint64 epoch)"
    );
    bytes32 public constant TASK_BATCH_TYPEHASH =
        keccak256("TaskBatch(bytes32 root,uint64 epoch,uint32 count)");
    uint256 private constant HALF_N =
        0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

    ISatelliteRegistryView public immutable registry;
    bytes32 private immutable _cachedDomainSeparator;
    uint256 private immutable _cachedChainId;
    address private immutable _cachedThis;

    mapping(bytes32 => Task) private _tasks;
    mapping(bytes32 => bytes32) public certifiedOutput;
    mapping(bytes32 => Batch) private _batches;
    mapping(address => bool) public equivocated;
    mapping(address => mapping(bytes32 => bool)) public reported;

    event TaskPosted(
        bytes32 indexed taskId, bytes32 modelHash, bytes32 inputHash, uint16 quorum, address poster
    );
    event TaskCertified(bytes32 indexed taskId, bytes32 outputHash, uint64 epoch, uint256 signers);
    event BatchCertified(bytes32 indexed root, uint64 epoch, uint32 count, uint256 signers);
    event Equivocation(
        address indexed signer, bytes32 indexed taskId, bytes32 outputA, bytes32 outputB
    );

    error ZeroAddress();
    error NotOperator();
    error ZeroQuorum();
    error TaskExists(bytes32 taskId);
    error TaskUnknown(bytes32 taskId);
    error TaskMismatch(bytes32 taskId);
    error ZeroOutputHash();
    error AlreadyCertified(bytes32 taskId);
    error BadSignatureLength(uint256 index);
    error BadSignatureV(uint256 index);
    error HighS(uint256 index);
    error InvalidSignature(uint256 index);
    error SignersNotAscending(uint256 index);
    error SignerNotActive(address signer);
    error SignerNotRegistered(address signer);
    error QuorumNotReached(uint256 have, uint256 need);
    error EmptyBatch();
    error BatchAlreadyCertified(bytes32 root);
    error BatchUnknown(bytes32 root);
    error EpochMismatch(uint64 batchEpoch, uint64 resultEpoch);
    error BadMerkleProof();
    error NotEquivocation();
    error AlreadyReported(address signer, bytes32 taskId);

    constructor(address registry_) {
        if (registry_ == address(0)) revert ZeroAddress();
        registry = ISatelliteRegistryView(registry_);
        _cachedChainId = block.chainid;
        _cachedThis = address(this);
        _cachedDomainSeparator = _buildDomainSeparator();
    }

    // ---------------------------------------------------------------- tasks and certificates

    /// @notice Post a task; only operators of the registry may (the quorum is what protects
    ///         a result, so who sets it is restricted). Each taskId is posted once.
    function postTask(bytes32 taskId, bytes32 modelHash, bytes32 inputHash, uint16 quorum)
        external
    {
        if (!registry.isOperator(msg.sender)) revert NotOperator();
        if (quorum == 0) revert ZeroQuorum();
        Task storage t = _tasks[taskId];
        if (t.quorum != 0) revert TaskExists(taskId);
        t.modelHash = modelHash;
        t.inputHash = inputHash;
        t.quorum = quorum;
        emit TaskPosted(taskId, modelHash, inputHash, quorum, msg.sender);
    }

    /// @notice Certify `result` with `signatures` (65 bytes each, signers strictly ascending,
    ///         at least the task's quorum, every one registered and active).
    function submitCertificate(TaskResult calldata result, bytes[] calldata signatures) external {
        uint256 quorum = _checkTask(result);
        if (signatures.length < quorum) revert QuorumNotReached(signatures.length, quorum);
        uint256 n = _verifySigners(_digest(_hashTaskResult(result)), signatures);
        certifiedOutput[result.taskId] = result.outputHash;
        emit TaskCertified(result.taskId, result.outputHash, result.epoch, n);
    }

    /// @notice Certify a batch: `signatures` over TaskBatch(root, epoch, count). Members are
    ///         certified later, one by one, with `proveBatchMember`.
    function submitBatchCertificate(
        bytes32 root,
        uint64 epoch,
        uint32 count,
        bytes[] calldata signatures
    ) external {
        if (count == 0) revert EmptyBatch();
        Batch storage b = _batches[root];
        if (b.signers != 0) revert BatchAlreadyCertified(root);
        if (signatures.length == 0) revert QuorumNotReached(0, 1);
        uint256 n = _verifySigners(_digest(_hashTaskBatch(root, epoch, count)), signatures);
        b.epoch = epoch;
        b.count = count;
        b.signers = uint32(n); // n < 2**32: the gas limit bounds the signatures far below
        emit BatchCertified(root, epoch, count, n);
    }

    /// @notice Certify one member of a certified batch: `proof` shows that
    ///         hashStruct(result) is leaf `index` of the tree with root `root`.
    function proveBatchMember(
        TaskResult calldata result,
        bytes32 root,
        bytes32[] calldata proof,
        uint256 index
    ) external {
        Batch memory b = _batches[root];
        if (b.signers == 0) revert BatchUnknown(root);
        uint256 quorum = _checkTask(result);
        if (result.epoch != b.epoch) revert EpochMismatch(b.epoch, result.epoch);
        if (b.signers < quorum) revert QuorumNotReached(b.signers, quorum);
        if (!_merkleVerify(_hashTaskResult(result), proof, index, b.count, root)) {
            revert BadMerkleProof();
        }
        certifiedOutput[result.taskId] = result.outputHash;
        emit TaskCertified(result.taskId, result.outputHash, result.epoch, b.signers);
    }

    /// @notice Report a satellite that signed two different outputs for one task.
    function reportEquivocation(
        TaskResult calldata a,
        bytes calldata sigA,
        TaskResult calldata b,
        bytes calldata sigB
    ) external {
        if (a.taskId != b.taskId || a.outputHash == b.outputHash) revert NotEquivocation();
        uint256 pa;
        uint256 pb;
        assembly {
            pa := sub(sigA.offset, 32)
            pb := sub(sigB.offset, 32)
        }
        address signer = _recover(_digest(_hashTaskResult(a)), pa, 0);
        if (_recover(_digest(_hashTaskResult(b)), pb, 1) != signer) revert NotEquivocation();
        if (!registry.isRegistered(signer)) revert SignerNotRegistered(signer);
        if (reported[signer][a.taskId]) revert AlreadyReported(signer, a.taskId);
        reported[signer][a.taskId] = true;
        equivocated[signer] = true;
        emit Equivocation(signer, a.taskId, a.outputHash, b.outputHash);
    }

    // ------------------------------------------------------------------------------ views

    /// @notice The EIP-712 domain separator (recomputed if the chain id changed since deployment).
    function domainSeparator() public view returns (bytes32) {
        if (block.chainid == _cachedChainId && address(this) == _cachedThis) {
            return _cachedDomainSeparator;
        }
        return _buildDomainSeparator();
    }

    /// @notice The EIP-712 digest a satellite signs for `result`.
    function hashTaskResult(TaskResult calldata result) external view returns (bytes32) {
        return _digest(_hashTaskResult(result));
    }

    /// @notice EIP-712 hashStruct(result): the Merkle leaf of `result` in a batch.
    function taskResultHashStruct(TaskResult calldata result) external pure returns (bytes32) {
        return _hashTaskResult(result);
    }

    /// @notice The EIP-712 digest satellites sign for a batch.
    function hashTaskBatch(bytes32 root, uint64 epoch, uint32 count)
        external
        view
        returns (bytes32)
    {
        return _digest(_hashTaskBatch(root, epoch, count));
    }

    /// @notice A posted task (quorum 0: never posted).
    function task(bytes32 taskId)
        external
        view
        returns (bytes32 modelHash, bytes32 inputHash, uint16 quorum)
    {
        Task storage t = _tasks[taskId];
        return (t.modelHash, t.inputHash, t.quorum);
    }

    /// @notice A certified batch (signers 0: never certified).
    function batch(bytes32 root) external view returns (uint64 epoch, uint32 count, uint32 signers) {
        Batch storage b = _batches[root];
        return (b.epoch, b.count, b.signers);
    }

    // -------------------------------------------------------------------------- internals

    function _buildDomainSeparator() private view returns (bytes32) {
        return keccak256(
            abi.encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, block.chainid, address(this))
        );
    }

    function _digest(bytes32 structHash) private view returns (bytes32 d) {
        bytes32 sep = domainSeparator();
        assembly {
            let m := mload(0x40)
            mstore(m, hex"1901")
            mstore(add(m, 2), sep)
            mstore(add(m, 34), structHash)
            d := keccak256(m, 66)
        }
    }

    function _hashTaskResult(TaskResult calldata r) private pure returns (bytes32) {
        return keccak256(
            abi.encode(TASK_RESULT_TYPEHASH, r.taskId, r.modelHash, r.inputHash, r.outputHash, r.epoch)
        );
    }

    function _hashTaskBatch(bytes32 root, uint64 epoch, uint32 count)
        private
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(TASK_BATCH_TYPEHASH, root, epoch, count));
    }

    /// @dev The checks every certification path shares; returns the task's quorum.
    function _checkTask(TaskResult calldata result) private view returns (uint256 quorum) {
        bytes32 taskId = result.taskId;
        Task storage t = _tasks[taskId];
        quorum = t.quorum;
        if (quorum == 0) revert TaskUnknown(taskId);
        if (t.modelHash != result.modelHash || t.inputHash != result.inputHash) {
            revert TaskMismatch(taskId);
        }
        if (result.outputHash == bytes32(0)) revert ZeroOutputHash();
        if (certifiedOutput[taskId] != bytes32(0)) revert AlreadyCertified(taskId);
    }

    /// @dev Recover every signer, in order; each must be strictly above the previous and in
    ///      the registry's active set. Returns the number of signers. The active set is read
    ///      once from the registry's code snapshot (ascending 20-byte entries after a 0x00
    ///      byte) and each signer found by binary search, starting after the previous one.
    function _verifySigners(bytes32 digest, bytes[] calldata signatures)
        private
        view
        returns (uint256 n)
    {
        n = signatures.length;
        address set = registry.activeSet();
        uint256 base;
        uint256 entries;
        assembly {
            let size := extcodesize(set)
            if size {
                size := sub(size, 1)
                base := mload(0x40)
                extcodecopy(set, base, 1, size)
                // keep _recover's scratch memory clear of the set (+32: spill of the last load)
                mstore(0x40, add(base, add(size, 32)))
                entries := div(size, 20)
            }
        }
        uint256 last;
        uint256 lo;
        for (uint256 i; i < n; ) {
            uint256 p;
            assembly {
                p := add(signatures.offset, calldataload(add(signatures.offset, shl(5, i))))
            }
            address signer = _recover(digest, p, i);
            if (uint160(signer) <= last) revert SignersNotAscending(i);
            last = uint160(signer);
            bool found;
            assembly {
                let hi := entries
                for {} lt(lo, hi) {} {
                    let mid := shr(1, add(lo, hi))
                    let a := shr(96, mload(add(base, mul(mid, 20))))
                    if eq(a, signer) {
                        found := 1
                        lo := add(mid, 1)
                        break
                    }
                    switch lt(a, signer)
                    case 1 { lo := add(mid, 1) }
                    default { hi := mid }
                }
            }
            if (!found) revert SignerNotActive(signer);
            unchecked {
                ++i;
            }
        }
    }

    /// @dev Recover the signer of `digest` from the signature whose length word is at
    ///      calldata offset `p`; `index` names it in errors.
    function _recover(bytes32 digest, uint256 p, uint256 index)
        private
        view
        returns (address signer)
    {
        uint256 len;
        uint256 r;
        uint256 s;
        uint256 v;
        assembly {
            len := calldataload(p)
            r := calldataload(add(p, 32))
            s := calldataload(add(p, 64))
            v := byte(0, calldataload(add(p, 96)))
        }
        if (len != 65) revert BadSignatureLength(index);
        if (v != 27 && v != 28) revert BadSignatureV(index);
        if (s > HALF_N) revert HighS(index);
        assembly {
            let m := mload(0x40)
            mstore(m, digest)
            mstore(add(m, 32), v)
            mstore(add(m, 64), r)
            mstore(add(m, 96), s)
            mstore(0, 0)
            pop(staticcall(gas(), 1, m, 128, 0, 32))
            signer := mload(0)
        }
        if (signer == address(0)) revert InvalidSignature(index);
    }

    /// @dev Whether `proof` leads from `leaf` at `index` to `root` in a tree of `count` leaves
    ///      (see the contract's documentation for the tree's shape).
    function _merkleVerify(
        bytes32 leaf,
        bytes32[] calldata proof,
        uint256 index,
        uint256 count,
        bytes32 root
    ) private pure returns (bool) {
        if (index >= count) return false;
        bytes32 node = leaf;
        uint256 used;
        uint256 width = count;
        uint256 len = proof.length;
        while (width > 1) {
            if (index & 1 == 1 || index + 1 < width) {
                if (used == len) return false;
                bytes32 sibling = proof[used];
                unchecked {
                    ++used;
                }
                bool right = index & 1 == 1;
                assembly {
                    switch right
                    case 1 {
                        mstore(0, sibling)
                        mstore(32, node)
                    }
                    default {
                        mstore(0, node)
                        mstore(32, sibling)
                    }
                    node := keccak256(0, 64)
                }
            }
            index >>= 1;
            width = (width + 1) >> 1;
        }
        return used == len && node == root;
    }
}
