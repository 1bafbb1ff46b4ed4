// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title SatelliteRegistry
/// @notice Who may sign task results: the signer addresses of the constellation's satellites,
///         each with a name and NORAD catalogue id, registered, deactivated and re-activated
///         by operators. The owner (the deployer) manages operators and is an operator too.
/// @dev Besides the per-satellite flags, the registry keeps a snapshot of the active set in
///      contract code (the "SSTORE2" pattern): `activeSet()` is a data contract whose code is
///      one 0x00 byte (so calling it just stops) followed by the active signer addresses,
///      20 bytes each, strictly ascending. Every change (register, deactivate, reactivate)
///      deploys a new snapshot. TaskAttestations reads the whole set with one EXTCODECOPY and
///      checks each signer by binary search in memory, instead of one cold SLOAD (2,100 gas)
///      per signer; that keeps a certificate's cost per additional signer under 6,000 gas.
///      The price is paid on changes (~32,000 gas + 4,000 gas per active satellite) and caps
///      the active set at 1,228 satellites (the 24,576-byte code size limit).
contract SatelliteRegistry {
    struct Satellite {
        uint32 noradId;
        bool registered;
        bool active;
        string name;
    }

    /// @notice Largest active set a snapshot can hold ((24,576 - 1) / 20).
    uint256 public constant MAX_ACTIVE = 1228;

    address public immutable owner;

    /// @notice The current snapshot of the active set (see the contract's @dev); zero before
    ///         the first registration.
    address public activeSet;

    mapping(address => bool) public isOperator;
    mapping(address => Satellite) private _satellites;

    event OperatorAdded(address operator);
    event OperatorRemoved(address operator);
    event SatelliteRegistered(address indexed signer, string name, uint32 noradId);
    event SatelliteDeactivated(address indexed signer);
    event SatelliteReactivated(address indexed signer);

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
        isOperator[msg.sender] = true;
        emit OperatorAdded(msg.sender);
    }

    /// @notice Let `operator` register, deactivate and re-activate satellites.
    function addOperator(address operator) external onlyOwner {
        if (operator == address(0)) revert ZeroAddress();
        if (isOperator[operator]) revert AlreadyOperator(operator);
        isOperator[operator] = true;
        emit OperatorAdded(operator);
    }

    /// @notice Withdraw operator rights (the owner always keeps them).
    function removeOperator(address operator) external onlyOwner {
        if (operator == owner) revert CannotRemoveOwner();
        if (!isOperator[operator]) revert NotAnOperator(operator);
        isOperator[operator] = false;
        emit OperatorRemoved(operator);
    }

    /// @notice Register a satellite's signer address; it is active at once.
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
        sat.name = name;
        _updateActiveSet(signer, true);
        emit SatelliteRegistered(signer, name, noradId);
    }

    /// @notice Stop accepting `signer`'s signatures (it stays registered: its past
    ///         signatures still count as equivocation evidence).
    function deactivate(address signer) external onlyOperator {
        Satellite storage sat = _satellites[signer];
        if (!sat.registered) revert NotRegistered(signer);
        if (!sat.active) revert AlreadyInactive(signer);
        sat.active = false;
        _updateActiveSet(signer, false);
        emit SatelliteDeactivated(signer);
    }

    /// @notice Accept `signer`'s signatures again.
    function reactivate(address signer) external onlyOperator {
        Satellite storage sat = _satellites[signer];
        if (!sat.registered) revert NotRegistered(signer);
        if (sat.active) revert AlreadyActive(signer);
        sat.active = true;
        _updateActiveSet(signer, true);
        emit SatelliteReactivated(signer);
    }

    /// @notice Whether `signer` is registered and active.
    function isActive(address signer) external view returns (bool) {
        return _satellites[signer].active;
    }

    /// @notice Whether `signer` was ever registered (active or not).
    function isRegistered(address signer) external view returns (bool) {
        return _satellites[signer].registered;
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
        uint256 n = packed.length / 20;
        signers = new address[](n);
        for (uint256 i; i < n; ++i) {
            signers[i] = _entry(packed, i);
        }
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

    function _entry(bytes memory packed, uint256 i) private pure returns (address a) {
        assembly {
            a := shr(96, mload(add(add(packed, 32), mul(i, 20))))
        }
    }

    /// @dev Deploy a new snapshot with `signer` inserted (`add`) or removed.
    function _updateActiveSet(address signer, bool add) private {
        bytes memory old = _readActiveSet();
        uint256 n = old.length / 20;
        if (add && n == MAX_ACTIVE) revert TooManyActive();
        uint256 newLength = add ? old.length + 20 : old.length - 20;
        // init code: PUSH2 len, DUP1, PUSH1 10, PUSH0, CODECOPY, PUSH0, RETURN; then runtime
        // code 0x00 || entries. Entries are written in ascending order, so each 32-byte mstore
        // only spills into the place of the next entry (or past the end, which is free memory).
        bytes memory init = new bytes(11 + newLength);
        uint256 out;
        assembly {
            let p := add(init, 32)
            mstore(p, or(shl(248, 0x61), shl(232, add(newLength, 1))))
            mstore(add(p, 3), shl(200, 0x80600a5f395ff3))
            mstore8(add(p, 10), 0)
            out := add(p, 11)
        }
        bool done = !add;
        for (uint256 i; i < n; ++i) {
            address a = _entry(old, i);
            if (!done && uint160(a) > uint160(signer)) {
                out = _put(out, signer);
                done = true;
            }
            if (!add && a == signer) continue;
            out = _put(out, a);
        }
        if (!done) _put(out, signer);
        address set;
        assembly {
            set := create(0, add(init, 32), mload(init))
        }
        if (set == address(0)) revert SnapshotFailed();
        activeSet = set;
    }

    function _put(uint256 out, address a) private pure returns (uint256) {
        assembly {
            mstore(out, shl(96, a))
        }
        return out + 20;
    }
}
