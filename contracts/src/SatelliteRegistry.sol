// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title SatelliteRegistry
/// @notice Who may sign task results: the signer addresses of the constellation's satellites,
///         each with a name and NORAD catalogue id, registered, deactivated and re-activated
///         by operators. The owner (the deployer) manages operators and is an operator too.
///         An operator deactivates and re-activates only the satellites registered under it
///         (the owner any): one operator cannot silence another's satellites and so block
///         the quorums they count toward.
///
///         Every satellite is registered *under an operator*: the operator account that
///         called `register`. Operators get a small id (1, 2, ... in the order they were first
///         added; the owner is 1) that never changes or is reused. TaskAttestations counts
///         distinct operators as well as distinct signers, so one operator registering k keys
///         is still one operator toward a task's operator quorum.
///
///         A satellite proven to have equivocated (TaskAttestations.reportEquivocation, the
///         one contract the owner named with `setAttestations`) is marked `equivocated`,
///         leaves the active set in the same transaction and can never be re-activated: its
///         signatures stop counting toward every quorum, certificates and batches alike.
/// @dev Besides the per-satellite flags, the registry keeps a snapshot of the active set in
///      contract code (the "SSTORE2" pattern): `activeSet()` is a data contract whose code is
///      one 0x00 byte (so calling it just stops) followed by one 24-byte entry per active
///      satellite, strictly ascending by signer: the signer address (20 bytes) then its
///      operator's id (uint32, big-endian). Every change (register, deactivate, reactivate,
///      equivocation) deploys a new snapshot. TaskAttestations reads the whole set with one
///      EXTCODECOPY and checks each signer by binary search in memory, instead of one cold
///      SLOAD (2,100 gas) per signer; that keeps a certificate's cost per additional signer
///      under 6,000 gas. The price is paid on changes (~32,000 gas + 4,800 gas per active
///      satellite) and caps the active set at 1,023 satellites (the 24,576-byte code size
///      limit).
contract SatelliteRegistry {
    struct Satellite {
        uint32 noradId;
        bool registered;
        bool active;
        bool equivocated;
        address operator; // the operator that registered it
        string name;
    }

    /// @notice Bytes per active-set entry: signer (20) || operator id (4).
    uint256 public constant ENTRY_SIZE = 24;

    /// @notice Largest active set a snapshot can hold ((24,576 - 1) / 24).
    uint256 public constant MAX_ACTIVE = 1023;

    address public immutable owner;

    /// @notice The current snapshot of the active set (see the contract's @dev); zero before
    ///         the first registration.
    address public activeSet;

    /// @notice The TaskAttestations contract whose equivocation reports this registry accepts
    ///         (`markEquivocated`); set by the owner, zero until then.
    address public attestations;

    /// @notice Operators ever added (the largest operator id).
    uint32 public operatorCount;

    mapping(address => bool) public isOperator;
    /// @notice An operator's id (0: never an operator). Kept when the operator is removed.
    mapping(address => uint32) public operatorId;
    mapping(address => Satellite) private _satellites;

    event OperatorAdded(address operator);
    event OperatorRemoved(address operator);
    event AttestationsSet(address attestations);
    event SatelliteRegistered(address indexed signer, string name, uint32 noradId);
    event SatelliteOperator(address indexed signer, address indexed operator, uint32 operatorId);
    event SatelliteDeactivated(address indexed signer);
    event SatelliteReactivated(address indexed signer);
    event SatelliteEquivocated(address indexed signer);

    error NotOwner();
    error NotOperator();
    error ZeroAddress();
    error AlreadyOperator(address operator);
    error NotAnOperator(address operator);
    error CannotRemoveOwner();
    error AlreadyRegistered(address signer);
    error NotRegistered(address signer);
    error AlreadyActive(address signer);
    error AlreadyInactive(address signer);
    error TooManyActive();
    error SnapshotFailed();
    error NotAttestations();
    error Equivocated(address signer);
    error NotItsOperator(address signer);

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner();
        _;
    }

    modifier onlyOperator() {
        if (!isOperator[msg.sender]) revert NotOperator();
        _;
    }

    constructor() {
        owner = msg.sender;
        _addOperator(msg.sender);
    }

    /// @notice Let `operator` register, deactivate and re-activate satellites. The
    ///         satellites it registers count as one operator toward operator quorums.
    function addOperator(address operator) external onlyOwner {
        if (operator == address(0)) revert ZeroAddress();
        if (isOperator[operator]) revert AlreadyOperator(operator);
        _addOperator(operator);
    }

    /// @notice Name the TaskAttestations contract allowed to mark satellites equivocated.
    function setAttestations(address attestations_) external onlyOwner {
        if (attestations_ == address(0)) revert ZeroAddress();
        attestations = attestations_;
        emit AttestationsSet(attestations_);
    }

    /// @notice Withdraw operator rights (the owner always keeps them).
    function removeOperator(address operator) external onlyOwner {
        if (operator == owner) revert CannotRemoveOwner();
        if (!isOperator[operator]) revert NotAnOperator(operator);
        isOperator[operator] = false;
        emit OperatorRemoved(operator);
    }

    /// @notice Register a satellite's signer address under the calling operator; it is
    ///         active at once.
    function register(address signer, string calldata name, uint32 noradId)
        external
        onlyOperator
    {
        if (signer == address(0)) revert ZeroAddress();
        Satellite storage sat = _satellites[signer];
        if (sat.registered) revert AlreadyRegistered(signer);
        sat.noradId = noradId;
        sat.registered = true;
        sat.active = true;
        sat.operator = msg.sender;
        sat.name = name;
        _updateActiveSet(signer, true);
        emit SatelliteRegistered(signer, name, noradId);
        emit SatelliteOperator(signer, msg.sender, operatorId[msg.sender]);
    }

    /// @notice Stop accepting `signer`'s signatures (it stays registered: its past
    ///         signatures still count as equivocation evidence). Only the operator it is
    ///         registered under, or the owner.
    function deactivate(address signer) external onlyOperator {
        Satellite storage sat = _satellites[signer];
        if (!sat.registered) revert NotRegistered(signer);
        _onlyItsOperator(sat, signer);
        if (!sat.active) revert AlreadyInactive(signer);
        sat.active = false;
        _updateActiveSet(signer, false);
        emit SatelliteDeactivated(signer);
    }

    /// @notice Accept `signer`'s signatures again (never an equivocated satellite's). Only
    ///         the operator it is registered under, or the owner.
    function reactivate(address signer) external onlyOperator {
        Satellite storage sat = _satellites[signer];
        if (!sat.registered) revert NotRegistered(signer);
        _onlyItsOperator(sat, signer);
        if (sat.equivocated) revert Equivocated(signer);
        if (sat.active) revert AlreadyActive(signer);
        sat.active = true;
        _updateActiveSet(signer, true);
        emit SatelliteReactivated(signer);
    }

    function _onlyItsOperator(Satellite storage sat, address signer) private view {
        if (msg.sender != sat.operator && msg.sender != owner) revert NotItsOperator(signer);
    }

    /// @notice Mark `signer` as proven to have equivocated: it leaves the active set for good.
    ///         Only the `attestations` contract calls this, after checking the evidence
    ///         (two EIP-712 signatures by `signer` over conflicting results); a second call
    ///         for the same signer changes nothing.
    function markEquivocated(address signer) external {
        if (msg.sender != attestations || msg.sender == address(0)) revert NotAttestations();
        Satellite storage sat = _satellites[signer];
        if (!sat.registered) revert NotRegistered(signer);
        if (sat.equivocated) return;
        sat.equivocated = true;
        if (sat.active) {
            sat.active = false;
            _updateActiveSet(signer, false);
            emit SatelliteDeactivated(signer);
        }
        emit SatelliteEquivocated(signer);
    }

    /// @notice Whether `signer` is registered and active.
    function isActive(address signer) external view returns (bool) {
        return _satellites[signer].active;
    }

    /// @notice Whether `signer` was ever registered (active or not).
    function isRegistered(address signer) external view returns (bool) {
        return _satellites[signer].registered;
    }

    /// @notice Whether `signer` was proven to have equivocated (it is then never active).
    function isEquivocated(address signer) external view returns (bool) {
        return _satellites[signer].equivocated;
    }

    /// @notice The operator `signer` is registered under, and that operator's id (zero for
    ///         an unknown address).
    function operatorOf(address signer) external view returns (address operator, uint32 id) {
        operator = _satellites[signer].operator;
        id = operatorId[operator];
    }

    /// @notice A satellite's metadata and flags (all zero for an unknown address).
    function satellite(address signer)
        external
        view
        returns (string memory name, uint32 noradId, bool registered, bool active)
    {
        Satellite storage sat = _satellites[signer];
        return (sat.name, sat.noradId, sat.registered, sat.active);
    }

    /// @notice The active signers, ascending (read from the snapshot).
    function activeSigners() external view returns (address[] memory signers) {
        bytes memory packed = _readActiveSet();
        uint256 n = packed.length / ENTRY_SIZE;
        signers = new address[](n);
        for (uint256 i; i < n; ++i) {
            (signers[i],) = _entry(packed, i);
        }
    }

    /// @notice The active signers, ascending, with their operators' ids (from the snapshot).
    function activeSignersWithOperators()
        external
        view
        returns (address[] memory signers, uint32[] memory operatorIds)
    {
        bytes memory packed = _readActiveSet();
        uint256 n = packed.length / ENTRY_SIZE;
        signers = new address[](n);
        operatorIds = new uint32[](n);
        for (uint256 i; i < n; ++i) {
            (signers[i], operatorIds[i]) = _entry(packed, i);
        }
    }

    function _addOperator(address operator) private {
        isOperator[operator] = true;
        if (operatorId[operator] == 0) operatorId[operator] = ++operatorCount;
        emit OperatorAdded(operator);
    }

    function _readActiveSet() private view returns (bytes memory packed) {
        address set = activeSet;
        if (set == address(0)) return packed;
        uint256 size = set.code.length - 1;
        packed = new bytes(size);
        assembly {
            extcodecopy(set, add(packed, 32), 1, size)
        }
    }

    function _entry(bytes memory packed, uint256 i) private pure returns (address a, uint32 op) {
        assembly {
            let w := mload(add(add(packed, 32), mul(i, 24)))
            a := shr(96, w)
            op := and(shr(64, w), 0xffffffff)
        }
    }

    /// @dev Deploy a new snapshot with `signer` inserted (`add`, under its operator's id) or
    ///      removed.
    function _updateActiveSet(address signer, bool add) private {
        bytes memory old = _readActiveSet();
        uint256 n = old.length / ENTRY_SIZE;
        if (add && n == MAX_ACTIVE) revert TooManyActive();
        uint32 op = add ? operatorId[_satellites[signer].operator] : 0;
        uint256 newLength = add ? old.length + ENTRY_SIZE : old.length - ENTRY_SIZE;
        // init code: PUSH2 len, DUP1, PUSH1 10, PUSH0, CODECOPY, PUSH0, RETURN; then runtime
        // code 0x00 || entries. Entries are written in ascending order, so each 32-byte mstore
        // only spills into the place of the next entry (or past the end, which is free memory:
        // `init` is the last allocation, and 8 bytes of slack are reserved below).
        bytes memory init = new bytes(11 + newLength + 8);
        uint256 out;
        assembly {
            let p := add(init, 32)
            mstore(p, or(shl(248, 0x61), shl(232, add(newLength, 1))))
            mstore(add(p, 3), shl(200, 0x80600a5f395ff3))
            mstore8(add(p, 10), 0)
            out := add(p, 11)
            mstore(init, add(11, newLength)) // the slack is not part of the init code
        }
        bool done = !add;
        for (uint256 i; i < n; ++i) {
            (address a, uint32 aOp) = _entry(old, i);
            if (!done && uint160(a) > uint160(signer)) {
                out = _put(out, signer, op);
                done = true;
            }
            if (!add && a == signer) continue;
            out = _put(out, a, aOp);
        }
        if (!done) _put(out, signer, op);
        address set;
        assembly {
            set := create(0, add(init, 32), mload(init))
        }
        if (set == address(0)) revert SnapshotFailed();
        activeSet = set;
    }

    function _put(uint256 out, address a, uint32 op) private pure returns (uint256) {
        assembly {
            mstore(out, or(shl(96, a), shl(64, op)))
        }
        return out + 24;
    }
}
