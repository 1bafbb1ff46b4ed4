// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @dev The part of SatelliteRegistry this contract reads (and, for equivocation, writes).
interface ISatelliteRegistryView {
    function isActive(address signer) external view returns (bool);
    function isRegistered(address signer) external view returns (bool);
    function isEquivocated(address signer) external view returns (bool);
    function isOperator(address account) external view returns (bool);
    function activeSet() external view returns (address);
    function markEquivocated(address signer) external;
}

/// @title TaskAttestations
/// @notice On-chain certificates for the constellation's AI task results.
///
/// An operator posts a task (model hash, input hash, signer quorum k, operator quorum m).
/// Satellites run it and sign the EIP-712 (https://eips.ethereum.org/EIPS/eip-712) typed
/// structured data
///     TaskResult(bytes32 taskId,bytes32 modelHash,bytes32 inputHash,bytes32 outputHash,uint64 epoch)
/// under the domain {name: "OrbitalTaskAttestations", version: "1", chainId, verifyingContract:
/// this}; the signed digest is keccak256("\x19\x01" || domainSeparator || hashStruct(result)).
/// A certificate is signatures by distinct registered, active, never-equivocated satellites,
/// given in strictly ascending signer-address order (which rules out duplicates at no cost),
/// at least k of them, registered under at least m distinct operators. The first valid
/// certificate for a task stores its output; there is no second.
///
/// Two quorums, both per task: k counts keys, m counts the operators those keys are
/// registered under in SatelliteRegistry (each satellite belongs to the operator that
/// registered it). Keys are cheap -- one operator can register any number -- so k alone
/// only says that k keys agreed; m says that m independent operators' satellites agreed,
/// and is what keeps a single operator from certifying alone (m >= 2). 1 <= m <= k.
/// `postTask(taskId, modelHash, inputHash, k)` is the single-operator form (m = 1).
///
/// Batches: satellites sign the EIP-712 struct TaskBatch(bytes32 root,uint64 epoch,uint32
/// count) over the Merkle root of `count` results. `submitBatchCertificate` stores the
/// signer list for the root (as the code of a small data contract); each member is later
/// certified by `proveBatchMember` with a Merkle proof, provided the result's epoch is the
/// batch's and the batch's signers that are *still* active (re-checked against the registry
/// at proving time: deactivated or equivocated signers no longer count) reach both of that
/// task's quorums. A root's certificate is not first-come-first-served: a new certificate
/// for the same root replaces the stored one when it has at least as many still-active
/// signers and operators and more of either, so whoever saw one satellite's batch signature
/// cannot submit it alone and block the honest batch (the honest set, a superset, always
/// replaces it).
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
/// Equivocation: two valid signed claims by one registered satellite (active or not) of
/// TaskResults for the same task with different outputs. A claim is either a signature over
/// the TaskResult itself, or a signature over a TaskBatch together with a Merkle proof that
/// the TaskResult is a member of it (the batch's epoch being the result's). The report marks
/// the satellite equivocated in SatelliteRegistry, which removes it from the active set for
/// good: it stops counting toward every quorum (certificates, stored batches). Each
/// (signer, task) pair is reported once.
contract TaskAttestations {
    struct TaskResult {
        bytes32 taskId;
        bytes32 modelHash;
        bytes32 inputHash;
        bytes32 outputHash;
        uint64 epoch;
    }

    /// @notice One signed statement of a result, as equivocation evidence. With `count` 0,
    ///         `signature` is over the EIP-712 TaskResult digest of `result` (`index` and
    ///         `proof` must be empty). Otherwise `signature` is over the EIP-712 digest of
    ///         TaskBatch(root, result.epoch, count), where root is where `proof` leads from
    ///         hashStruct(result) as leaf `index` of a tree of `count` leaves.
    struct Claim {
        TaskResult result;
        bytes signature;
        uint32 count;
        uint256 index;
        bytes32[] proof;
    }

    struct Task {
        bytes32 modelHash;
        bytes32 inputHash;
        uint16 quorum; // signers; 0: not posted
        uint16 operatorQuorum; // distinct operators of those signers
    }

    struct Batch {
        address signerSet; // data contract: 0x00 || signers (20 bytes each, ascending); 0: none
        uint64 epoch;
        uint32 count;
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
    /// @dev Bytes per entry of the registry's active-set snapshot: signer || operator id.
    uint256 private constant ENTRY = 24;

    ISatelliteRegistryView public immutable registry;
    bytes32 private immutable _cachedDomainSeparator;
    uint256 private immutable _cachedChainId;
    address private immutable _cachedThis;

    mapping(bytes32 => Task) private _tasks;
    mapping(bytes32 => bytes32) public certifiedOutput;
    mapping(bytes32 => Batch) private _batches;
    mapping(address => mapping(bytes32 => bool)) public reported;

    event TaskPosted(
        bytes32 indexed taskId, bytes32 modelHash, bytes32 inputHash, uint16 quorum, address poster
    );
    /// @notice Emitted with every TaskPosted: the task's operator quorum.
    event TaskOperatorQuorum(bytes32 indexed taskId, uint16 operatorQuorum);
    event TaskCertified(bytes32 indexed taskId, bytes32 outputHash, uint64 epoch, uint256 signers);
    /// @notice A batch certificate was stored for `root` (replacing a weaker one if
    ///         `replaced`); `signerList` lets anyone read who signed without the calldata.
    event BatchCertified(
        bytes32 indexed root,
        uint64 epoch,
        uint32 count,
        uint256 signers,
        uint256 operators,
        bool replaced,
        address[] signerList
    );
    event Equivocation(
        address indexed signer, bytes32 indexed taskId, bytes32 outputA, bytes32 outputB
    );

    error ZeroAddress();
    error NotOperator();
    error ZeroQuorum();
    error BadOperatorQuorum(uint256 operatorQuorum, uint256 quorum);
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
    error SignerEquivocated(address signer);
    error SignerNotRegistered(address signer);
    error QuorumNotReached(uint256 have, uint256 need);
    error OperatorQuorumNotReached(uint256 have, uint256 need);
    error EmptyBatch();
    error BatchNotStronger(
        bytes32 root, uint256 signers, uint256 operators, uint256 storedSigners, uint256 storedOperators
    );
    error BatchUnknown(bytes32 root);
    error EpochMismatch(uint64 batchEpoch, uint64 resultEpoch);
    error BadMerkleProof();
    error BadClaim(uint256 index);
    error NotEquivocation();
    error AlreadyReported(address signer, bytes32 taskId);
    error SnapshotFailed();

    constructor(address registry_) {
        if (registry_ == address(0)) revert ZeroAddress();
        registry = ISatelliteRegistryView(registry_);
        _cachedChainId = block.chainid;
        _cachedThis = address(this);
        _cachedDomainSeparator = _buildDomainSeparator();
    }

    // ---------------------------------------------------------------- tasks and certificates

    /// @notice Post a task certified by `quorum` signers of any operators (operator quorum
    ///         1: for a constellation run by one operator). Only operators of the registry may
    ///         post (the quorums are what protect a result, so who sets them is restricted);
    ///         each taskId is posted once.
    function postTask(bytes32 taskId, bytes32 modelHash, bytes32 inputHash, uint16 quorum)
        external
    {
        _postTask(taskId, modelHash, inputHash, quorum, 1);
    }

    /// @notice Post a task certified by at least `quorum` signers registered under at least
    ///         `operatorQuorum` distinct operators (1 <= operatorQuorum <= quorum).
    function postTask(
        bytes32 taskId,
        bytes32 modelHash,
        bytes32 inputHash,
        uint16 quorum,
        uint16 operatorQuorum
    ) external {
        _postTask(taskId, modelHash, inputHash, quorum, operatorQuorum);
    }

    /// @notice Certify `result` with `signatures` (65 bytes each, signers strictly ascending,
    ///         every one registered, active and never equivocated; at least the task's quorum
    ///         of signers, registered under at least its operator quorum of operators).
    function submitCertificate(TaskResult calldata result, bytes[] calldata signatures) external {
        (uint256 quorum, uint256 operatorQuorum) = _checkTask(result);
        if (signatures.length < quorum) revert QuorumNotReached(signatures.length, quorum);
        (uint256 n, uint256 operators) =
            _verifySigners(_digest(_hashTaskResult(result)), signatures, 0);
        if (operators < operatorQuorum) revert OperatorQuorumNotReached(operators, operatorQuorum);
        certifiedOutput[result.taskId] = result.outputHash;
        emit TaskCertified(result.taskId, result.outputHash, result.epoch, n);
    }

    /// @notice Certify a batch: `signatures` (signers strictly ascending, every one active)
    ///         over the EIP-712 TaskBatch(root, epoch, count). Members are certified later,
    ///         one by one, with `proveBatchMember`. If a certificate for `root` is stored
    ///         already, this one replaces it only if it has at least as many signers and
    ///         operators as the stored one's still-active signers, and more of either
    ///         (otherwise BatchNotStronger): a superset of the stored signers always does.
    function submitBatchCertificate(
        bytes32 root,
        uint64 epoch,
        uint32 count,
        bytes[] calldata signatures
    ) external {
        if (count == 0) revert EmptyBatch();
        uint256 k = signatures.length;
        if (k == 0) revert QuorumNotReached(0, 1);
        // init code of the signer-list data contract, filled in by _verifySigners:
        // PUSH2 len, DUP1, PUSH1 10, PUSH0, CODECOPY, PUSH0, RETURN; runtime 0x00 || signers.
        uint256 runtime = 1 + 20 * k;
        bytes memory init = new bytes(10 + runtime + 12); // +12: spill of the last mstore
        uint256 out;
        assembly {
            let p := add(init, 32)
            mstore(p, or(shl(248, 0x61), shl(232, runtime)))
            mstore(add(p, 3), shl(200, 0x80600a5f395ff3))
            mstore8(add(p, 10), 0)
            out := add(p, 11)
            mstore(init, add(10, runtime))
        }
        (uint256 n, uint256 operators) =
            _verifySigners(_digest(_hashTaskBatch(root, epoch, count)), signatures, out);
        Batch storage b = _batches[root];
        address stored = b.signerSet;
        if (stored != address(0)) {
            (uint256 storedSigners, uint256 storedOperators) = _batchSupport(stored);
            if (
                n < storedSigners || operators < storedOperators
                    || (n == storedSigners && operators == storedOperators)
            ) revert BatchNotStronger(root, n, operators, storedSigners, storedOperators);
        }
        address set;
        assembly {
            set := create(0, add(init, 32), mload(init))
        }
        if (set == address(0)) revert SnapshotFailed();
        b.signerSet = set;
        b.epoch = epoch;
        b.count = count;
        emit BatchCertified(root, epoch, count, n, operators, stored != address(0), _readSigners(set));
    }

    /// @notice Certify one member of a certified batch: `proof` shows that
    ///         hashStruct(result) is leaf `index` of the tree with root `root`. The batch's
    ///         signers are re-checked against the registry now: only those still active count
    ///         toward the task's quorum and operator quorum.
    function proveBatchMember(
        TaskResult calldata result,
        bytes32 root,
        bytes32[] calldata proof,
        uint256 index
    ) external {
        Batch memory b = _batches[root];
        if (b.signerSet == address(0)) revert BatchUnknown(root);
        (uint256 quorum, uint256 operatorQuorum) = _checkTask(result);
        if (result.epoch != b.epoch) revert EpochMismatch(b.epoch, result.epoch);
        (uint256 n, uint256 operators) = _batchSupport(b.signerSet);
        if (n < quorum) revert QuorumNotReached(n, quorum);
        if (operators < operatorQuorum) revert OperatorQuorumNotReached(operators, operatorQuorum);
        (bool ok, bytes32 computed) = _merkleRoot(_hashTaskResult(result), proof, index, b.count);
        if (!ok || computed != root) revert BadMerkleProof();
        certifiedOutput[result.taskId] = result.outputHash;
        emit TaskCertified(result.taskId, result.outputHash, result.epoch, n);
    }

    /// @notice Report a satellite that signed two different outputs for one task, each as a
    ///         single TaskResult signature.
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
        _equivocated(signer, a.taskId, a.outputHash, b.outputHash);
    }

    /// @notice Report a satellite that claimed two different outputs for one task, each
    ///         claim a single TaskResult signature or a signed batch with a member proof
    ///         (see `Claim`): signing a batch root commits to every member.
    function reportClaimEquivocation(Claim calldata a, Claim calldata b) external {
        if (a.result.taskId != b.result.taskId || a.result.outputHash == b.result.outputHash) {
            revert NotEquivocation();
        }
        address signer = _claimSigner(a, 0);
        if (_claimSigner(b, 1) != signer) revert NotEquivocation();
        _equivocated(signer, a.result.taskId, a.result.outputHash, b.result.outputHash);
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

    /// @notice A posted task (quorum 0: never posted); its operator quorum: `operatorQuorum`.
    function task(bytes32 taskId)
        external
        view
        returns (bytes32 modelHash, bytes32 inputHash, uint16 quorum)
    {
        Task storage t = _tasks[taskId];
        return (t.modelHash, t.inputHash, t.quorum);
    }

    /// @notice How many distinct operators a task's certificate needs (0: never posted).
    function operatorQuorum(bytes32 taskId) external view returns (uint16) {
        return _tasks[taskId].operatorQuorum;
    }

    /// @notice A certified batch (signers 0: never certified); `signers` is how many signed
    ///         the stored certificate, `batchSupport` how many of them still count.
    function batch(bytes32 root) external view returns (uint64 epoch, uint32 count, uint32 signers) {
        Batch storage b = _batches[root];
        address set = b.signerSet;
        if (set == address(0)) return (0, 0, 0);
        return (b.epoch, b.count, uint32((set.code.length - 1) / 20));
    }

    /// @notice The signers of the stored certificate for `root`, ascending.
    function batchSigners(bytes32 root) external view returns (address[] memory) {
        address set = _batches[root].signerSet;
        if (set == address(0)) return new address[](0);
        return _readSigners(set);
    }

    /// @notice How many of the stored batch certificate's signers are active now, and under
    ///         how many distinct operators: what `proveBatchMember` checks the quorums against.
    function batchSupport(bytes32 root) external view returns (uint256 signers, uint256 operators) {
        address set = _batches[root].signerSet;
        if (set == address(0)) return (0, 0);
        return _batchSupport(set);
    }

    /// @notice Whether `signer` was proven to have equivocated (kept by the registry).
    function equivocated(address signer) external view returns (bool) {
        return registry.isEquivocated(signer);
    }

    // -------------------------------------------------------------------------- internals

    function _postTask(
        bytes32 taskId,
        bytes32 modelHash,
        bytes32 inputHash,
        uint16 quorum,
        uint16 operators
    ) private {
        if (!registry.isOperator(msg.sender)) revert NotOperator();
        if (quorum == 0 || operators == 0) revert ZeroQuorum();
        if (operators > quorum) revert BadOperatorQuorum(operators, quorum);
        Task storage t = _tasks[taskId];
        if (t.quorum != 0) revert TaskExists(taskId);
        t.modelHash = modelHash;
        t.inputHash = inputHash;
        t.quorum = quorum;
        t.operatorQuorum = operators;
        emit TaskPosted(taskId, modelHash, inputHash, quorum, msg.sender);
        emit TaskOperatorQuorum(taskId, operators);
    }

    function _buildDomainSeparator() private view returns (bytes32) {
        return keccak256(
            abi.encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, block.chainid, address(this))
        );
    }

    /// @dev The EIP-712 digest keccak256("\x19\x01" || domainSeparator || structHash).
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

    /// @dev EIP-712 hashStruct(TaskResult).
    function _hashTaskResult(TaskResult calldata r) private pure returns (bytes32) {
        return keccak256(
            abi.encode(TASK_RESULT_TYPEHASH, r.taskId, r.modelHash, r.inputHash, r.outputHash, r.epoch)
        );
    }

    /// @dev EIP-712 hashStruct(TaskBatch).
    function _hashTaskBatch(bytes32 root, uint64 epoch, uint32 count)
        private
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(TASK_BATCH_TYPEHASH, root, epoch, count));
    }

    /// @dev The checks every certification path shares; returns the task's quorums.
    function _checkTask(TaskResult calldata result)
        private
        view
        returns (uint256 quorum, uint256 operators)
    {
        bytes32 taskId = result.taskId;
        Task storage t = _tasks[taskId];
        quorum = t.quorum;
        operators = t.operatorQuorum;
        if (quorum == 0) revert TaskUnknown(taskId);
        if (t.modelHash != result.modelHash || t.inputHash != result.inputHash) {
            revert TaskMismatch(taskId);
        }
        if (result.outputHash == bytes32(0)) revert ZeroOutputHash();
        if (certifiedOutput[taskId] != bytes32(0)) revert AlreadyCertified(taskId);
    }

    /// @dev The signer of a Claim (see its documentation); `index` names it in errors.
    function _claimSigner(Claim calldata c, uint256 index) private view returns (address) {
        bytes32 leaf = _hashTaskResult(c.result);
        bytes32 digest;
        if (c.count == 0) {
            if (c.proof.length != 0 || c.index != 0) revert BadClaim(index);
            digest = _digest(leaf);
        } else {
            (bool ok, bytes32 root) = _merkleRoot(leaf, c.proof, c.index, c.count);
            if (!ok) revert BadMerkleProof();
            digest = _digest(_hashTaskBatch(root, c.result.epoch, c.count));
        }
        uint256 p;
        bytes calldata signature = c.signature;
        assembly {
            p := sub(signature.offset, 32)
        }
        return _recover(digest, p, index);
    }

    /// @dev Record proven equivocation by `signer` on `taskId` and have the registry drop it.
    function _equivocated(address signer, bytes32 taskId, bytes32 outputA, bytes32 outputB)
        private
    {
        if (!registry.isRegistered(signer)) revert SignerNotRegistered(signer);
        if (reported[signer][taskId]) revert AlreadyReported(signer, taskId);
        reported[signer][taskId] = true;
        registry.markEquivocated(signer);
        emit Equivocation(signer, taskId, outputA, outputB);
    }

    /// @dev The registry's active-set snapshot copied to fresh memory: `entries` entries of
    ///      ENTRY bytes (signer || uint32 operator id), ascending by signer, at `base`.
    function _loadActiveSet() private view returns (uint256 base, uint256 entries) {
        address set = registry.activeSet();
        assembly {
            base := mload(0x40)
            let size := extcodesize(set)
            if size {
                size := sub(size, 1)
                extcodecopy(set, base, 1, size)
                entries := div(size, ENTRY)
                // keep later scratch memory clear of the set (+32: spill of the last load)
                mstore(0x40, add(base, add(size, 32)))
            }
        }
    }

    /// @dev Binary search for `signer` in entries [lo, entries) of the set at `base`: whether
    ///      it is there, its operator id, and where a search for a larger signer may start.
    function _find(uint256 base, uint256 lo, uint256 entries, address signer)
        private
        pure
        returns (bool found, uint256 op, uint256 next)
    {
        assembly {
            let hi := entries
            for {} lt(lo, hi) {} {
                let mid := shr(1, add(lo, hi))
                let w := mload(add(base, mul(mid, ENTRY)))
                let a := shr(96, w)
                if eq(a, signer) {
                    found := 1
                    op := and(shr(64, w), 0xffffffff)
                    lo := add(mid, 1)
                    break
                }
                switch lt(a, signer)
                case 1 { lo := add(mid, 1) }
                default { hi := mid }
            }
            next := lo
        }
    }

    /// @dev Count operator id `op` once, in the tally at `seen`: word 0 a bitmap of the ids
    ///      below 256, word 1 how many larger ids follow, then those ids. Whether it is new.
    function _newOperator(uint256 seen, uint256 op) private pure returns (bool isNew) {
        assembly {
            switch lt(op, 256)
            case 1 {
                let bits := mload(seen)
                let bit := shl(op, 1)
                if iszero(and(bits, bit)) {
                    mstore(seen, or(bits, bit))
                    isNew := 1
                }
            }
            default {
                let high := mload(add(seen, 32))
                let q := add(seen, 64)
                let end := add(q, shl(5, high))
                for {} lt(q, end) { q := add(q, 32) } {
                    if eq(mload(q), op) { break }
                }
                if eq(q, end) {
                    mstore(end, op)
                    mstore(add(seen, 32), add(high, 1))
                    isNew := 1
                }
            }
        }
    }

    /// @dev A zeroed operator tally (see `_newOperator`) for at most `k` operators.
    function _tally(uint256 k) private pure returns (uint256 seen) {
        seen = _alloc(k + 2);
        assembly {
            mstore(seen, 0)
            mstore(add(seen, 32), 0)
        }
    }

    /// @dev Fresh memory for `words` 32-byte words.
    function _alloc(uint256 words) private pure returns (uint256 p) {
        assembly {
            p := mload(0x40)
            mstore(0x40, add(p, shl(5, words)))
        }
    }

    /// @dev Recover every signer, in order; each must be strictly above the previous and in
    ///      the registry's active set. Returns the number of signers and of their distinct
    ///      operators. The active set is read once from the registry's code snapshot and each
    ///      signer found by binary search, starting after the previous one. If `out` is not
    ///      0, signer i is written as 20 bytes at out + 20 i (each write spills 12 bytes).
    function _verifySigners(bytes32 digest, bytes[] calldata signatures, uint256 out)
        private
        view
        returns (uint256 n, uint256 operators)
    {
        n = signatures.length;
        (uint256 base, uint256 entries) = _loadActiveSet();
        uint256 seen = _tally(n);
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
            uint256 op = type(uint256).max; // not found
            assembly {
                let hi := entries
                for {} lt(lo, hi) {} {
                    let mid := shr(1, add(lo, hi))
                    let w := mload(add(base, mul(mid, ENTRY)))
                    let a := shr(96, w)
                    if eq(a, signer) {
                        op := and(shr(64, w), 0xffffffff)
                        lo := add(mid, 1)
                        break
                    }
                    switch lt(a, signer)
                    case 1 { lo := add(mid, 1) }
                    default { hi := mid }
                }
            }
            if (op == type(uint256).max) _refuse(signer);
            if (_newOperator(seen, op)) ++operators;
            if (out != 0) {
                assembly {
                    mstore(out, shl(96, signer))
                    out := add(out, 20)
                }
            }
            unchecked {
                ++i;
            }
        }
    }

    /// @dev Revert for a signer that is not in the active set, naming why.
    function _refuse(address signer) private view {
        if (registry.isEquivocated(signer)) revert SignerEquivocated(signer);
        revert SignerNotActive(signer);
    }

    /// @dev The stored signers of a batch (the data contract `set`) in memory.
    function _readSigners(address set) private view returns (address[] memory signers) {
        uint256 k = (set.code.length - 1) / 20;
        signers = new address[](k);
        uint256 tmp = _alloc(k + 1);
        assembly {
            extcodecopy(set, tmp, 1, mul(k, 20))
            for { let i := 0 } lt(i, k) { i := add(i, 1) } {
                mstore(add(add(signers, 32), shl(5, i)), shr(96, mload(add(tmp, mul(i, 20)))))
            }
        }
    }

    /// @dev How many of the signers stored in `set` are active now, and their distinct
    ///      operators (both lists are ascending, so each search starts after the previous).
    function _batchSupport(address set) private view returns (uint256 n, uint256 operators) {
        uint256 k;
        uint256 list;
        assembly {
            k := div(sub(extcodesize(set), 1), 20)
        }
        list = _alloc(k + 1);
        assembly {
            extcodecopy(set, list, 1, mul(k, 20))
        }
        (uint256 base, uint256 entries) = _loadActiveSet();
        uint256 seen = _tally(k);
        uint256 lo;
        for (uint256 i; i < k; ) {
            address signer;
            assembly {
                signer := shr(96, mload(add(list, mul(i, 20))))
            }
            (bool found, uint256 op, uint256 next) = _find(base, lo, entries, signer);
            lo = next;
            if (found) {
                ++n;
                if (_newOperator(seen, op)) ++operators;
            }
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

    /// @dev The root `proof` leads to from `leaf` at `index` in a tree of `count` leaves (see
    ///      the contract's documentation for the tree's shape); ok is false if the proof does
    ///      not fit (index >= count, too short or too long).
    function _merkleRoot(bytes32 leaf, bytes32[] calldata proof, uint256 index, uint256 count)
        private
        pure
        returns (bool ok, bytes32 node)
    {
        if (index >= count) return (false, 0);
        node = leaf;
        uint256 used;
        uint256 width = count;
        uint256 len = proof.length;
        while (width > 1) {
            if (index & 1 == 1 || index + 1 < width) {
                if (used == len) return (false, 0);
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
        ok = used == len;
    }
}
