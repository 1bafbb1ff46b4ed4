"""Consensus validity rules between a header and its parent.

A header that hashes correctly and links to its parent may still be invalid: a block
producer can write any timestamp, gas limit, base fee or blob gas it likes into it, and
after the Merge no proof of work stands in the way. execution-specs ``validate_header``
(``src/ethereum/forks/<fork>/fork.py``) lists what every node checks before it executes a
block; the rules that need only the header and its parent are ported here. Each rule has a
stable name, used in :class:`RuleReport` and :class:`~node.chain.errors.HeaderRuleError`:

=============================  ===============================================  ============
rule                           requirement                                      source
=============================  ===============================================  ============
``number``                     ``number == parent.number + 1``                  all forks
``parentHash``                 ``parentHash == keccak(rlp(parent))``            all forks
``timestamp``                  ``timestamp > parent.timestamp``                 all forks
``extraData``                  at most 32 bytes (not on a clique chain)         all forks
``extraData-dao``              ``"dao-hard-fork"`` in the 10 DAO fork blocks    DAO fork
``gasUsed``                    ``gasUsed <= gasLimit``                          all forks
``gasLimit-bounds``            ``|gasLimit - parent| < parent // 1024``         all forks
``gasLimit-minimum``           ``gasLimit >= 5000``                             all forks
``gasLimit-maximum``           ``gasLimit <= 2**63 - 1``                        geth
``fork-order``                 keeps every field its parent has                 header shapes
``fork-shape``                 the fields the schedule requires, no others      per config
``baseFeePerGas``              computed from the parent                         EIP-1559
``difficulty``                 0 after the Merge                                EIP-3675
``nonce``                      0 after the Merge                                EIP-3675
``sha3Uncles``                 ``keccak(rlp([]))`` after the Merge              EIP-3675
``blobGasUsed-granularity``    a multiple of ``GAS_PER_BLOB``                   EIP-4844
``blobGasUsed-max``            at most ``max`` blobs of the blob schedule       EIP-4844/7840
``excessBlobGas``              computed from the parent                         EIP-4844/7918
=============================  ===============================================  ============

What a rule needs but the inputs do not give is reported as *not checked*, with the reason,
never as checked: without a :class:`~node.chain.forks.ChainConfig` the blob schedule is
unknown (the London transition and the Merge are then recognised from the headers' shape);
past the schedule a config knows, the rules that depend on it are not checked either; the
proof-of-work seal and difficulty before the Merge (ethash) are out of scope.

:func:`validate_header` runs per header pair on the node's hot path (tens of thousands per
second together with hashing), so it reads each field once, allocates no report (reports are
shared per outcome) and builds error messages only when a rule is broken.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from node.chain.block import GAS_PER_BLOB
from node.chain.errors import HeaderRuleError
from node.chain.forks import SHAPES, BlobSchedule, ChainConfig
from node.chain.header import EMPTY_OMMERS_HASH, Header

__all__ = [
    "BASE_FEE_MAX_CHANGE_DENOMINATOR",
    "BLOB_BASE_COST",
    "ELASTICITY_MULTIPLIER",
    "GAS_LIMIT_ADJUSTMENT_FACTOR",
    "GAS_LIMIT_MAXIMUM",
    "GAS_LIMIT_MINIMUM",
    "INITIAL_BASE_FEE",
    "RULES",
    "RuleReport",
    "base_fee_per_blob_gas",
    "calculate_base_fee_per_gas",
    "calculate_excess_blob_gas",
    "check_gas_limit",
    "fake_exponential",
    "validate_header",
]

GAS_LIMIT_ADJUSTMENT_FACTOR = 1024  # execution-specs forks/*/fork.py
GAS_LIMIT_MINIMUM = 5000  # execution-specs forks/*/fork.py
GAS_LIMIT_MAXIMUM = 2**63 - 1  # geth params.MaxGasLimit (consensus/beacon verifyHeader)
MAX_EXTRA_DATA_BYTES = 32  # execution-specs validate_header; geth params.MaximumExtraDataSize
ELASTICITY_MULTIPLIER = 2  # EIP-1559
BASE_FEE_MAX_CHANGE_DENOMINATOR = 8  # EIP-1559
INITIAL_BASE_FEE = 1_000_000_000  # EIP-1559: the base fee of the first London block
BLOB_BASE_COST = 2**13  # EIP-7918: execution gas a blob is worth at least
MIN_BASE_FEE_PER_BLOB_GAS = 1  # EIP-4844
MINIMUM_DIFFICULTY = 131072  # execution-specs frontier: no ethash block is easier
DAO_FORK_EXTRA_DATA = b"dao-hard-fork"  # execution-specs dao_fork validate_header
DAO_FORK_EXTRA_RANGE = 10  # blocks from the DAO fork block that must carry it
POST_MERGE_NONCE = bytes(8)  # EIP-3675

RULES: tuple[str, ...] = (
    "number", "parentHash", "timestamp", "extraData", "extraData-dao", "gasUsed",
    "gasLimit-bounds", "gasLimit-minimum", "gasLimit-maximum", "fork-order", "fork-shape",
    "baseFeePerGas", "difficulty", "nonce", "sha3Uncles", "blobGasUsed-granularity",
    "blobGasUsed-max", "excessBlobGas", "ethash-seal", "clique-seal")
"""Every rule name :func:`validate_header` reports, checked or not."""

NO_SCHEDULE = "fork schedule unknown: pass a genesis/forkenv file or a known network"
POW_DIFFICULTY = "proof-of-work difficulty (calculate_block_difficulty) not checked"
POW_SEAL = "proof-of-work seal not checked"
CLIQUE_SEAL = "proof-of-authority signature (EIP-225) not checked"


@dataclass(frozen=True)
class RuleReport:
    """What :func:`validate_header` checked for one header (all passed: a broken rule
    raises). Rules that did not apply (a base fee before London) are in neither list."""

    checked: tuple[str, ...]  # rule names (see RULES)
    not_checked: tuple[tuple[str, str], ...]  # (rule, why it could not be checked)


# -- the formulas --------------------------------------------------------------------------

def check_gas_limit(gas_limit: int, parent_gas_limit: int) -> bool:
    """execution-specs ``check_gas_limit``: the gas limit moves by less than
    ``parent_gas_limit // 1024`` either way (strictly) and is at least 5000."""
    delta = parent_gas_limit // GAS_LIMIT_ADJUSTMENT_FACTOR
    return (parent_gas_limit - delta < gas_limit < parent_gas_limit + delta
            and gas_limit >= GAS_LIMIT_MINIMUM)


def calculate_base_fee_per_gas(parent_gas_limit: int, parent_gas_used: int,
                               parent_base_fee_per_gas: int) -> int:
    """execution-specs ``calculate_base_fee_per_gas`` (EIP-1559): the parent's base fee moved
    by at most 1/8 towards how far its gas used was above or below its target
    (``gas_limit // ELASTICITY_MULTIPLIER``); up by at least 1 when above. (The gas limit
    check the spec folds in is :func:`check_gas_limit`.)"""
    target = parent_gas_limit // ELASTICITY_MULTIPLIER
    if parent_gas_used == target:
        return parent_base_fee_per_gas
    if parent_gas_used > target:
        delta = parent_base_fee_per_gas * (parent_gas_used - target) // target
        return parent_base_fee_per_gas + max(delta // BASE_FEE_MAX_CHANGE_DENOMINATOR, 1)
    delta = parent_base_fee_per_gas * (target - parent_gas_used) // target
    return parent_base_fee_per_gas - delta // BASE_FEE_MAX_CHANGE_DENOMINATOR


def fake_exponential(factor: int, numerator: int, denominator: int) -> int:
    """EIP-4844 ``fake_exponential``: ``factor * e ** (numerator / denominator)`` in integers
    (a Taylor series; execution-specs ``taylor_exponential``)."""
    i = 1
    output = 0
    accumulator = factor * denominator
    while accumulator > 0:
        output += accumulator
        accumulator = accumulator * numerator // (denominator * i)
        i += 1
    return output // denominator


def base_fee_per_blob_gas(excess_blob_gas: int, schedule: BlobSchedule) -> int:
    """EIP-4844 ``get_base_fee_per_blob_gas`` with the fork's ``baseFeeUpdateFraction``
    (EIP-7691, EIP-7892; execution-specs ``calculate_blob_gas_price``)."""
    return fake_exponential(MIN_BASE_FEE_PER_BLOB_GAS, excess_blob_gas,
                            schedule.base_fee_update_fraction)


def calculate_excess_blob_gas(parent: Header, schedule: BlobSchedule,
                              reserve_price: bool) -> int:
    """execution-specs ``calculate_excess_blob_gas``: the parent's excess plus its blob gas
    used, less the target of the *child's* blob schedule (EIP-4844, EIP-7892), never below 0.
    A parent without blob fields (the last block before Cancun) counts as 0 and 0.

    With ``reserve_price`` (Osaka on, EIP-7918), when a blob at the parent's blob base fee
    (computed with the child's fraction) costs less than ``BLOB_BASE_COST`` execution gas at
    the parent's base fee, the target is not subtracted: the excess grows by
    ``blob_gas_used * (max - target) / max`` instead."""
    excess = parent.excess_blob_gas or 0
    used = parent.blob_gas_used or 0
    target_gas = GAS_PER_BLOB * schedule.target
    if excess + used < target_gas:
        return 0
    if reserve_price and (BLOB_BASE_COST * (parent.base_fee_per_gas or 0)
                          > GAS_PER_BLOB * base_fee_per_blob_gas(excess, schedule)):
        return excess + used * (schedule.max - schedule.target) // schedule.max
    return excess + used - target_gas


# -- the rules -----------------------------------------------------------------------------

def _shape(header: Header) -> int:
    """The header's shape rank (:data:`node.chain.forks.SHAPES`): its newest field's fork."""
    if header.slot_number is not None or header.block_access_list_hash is not None:
        return 5
    if header.requests_hash is not None:
        return 4
    if (header.parent_beacon_block_root is not None or header.excess_blob_gas is not None
            or header.blob_gas_used is not None):
        return 3
    if header.withdrawals_root is not None:
        return 2
    return 1 if header.base_fee_per_gas is not None else 0


_SHAPE_FIELDS = ("baseFeePerGas", "withdrawalsRoot",
                 "blobGasUsed, excessBlobGas and parentBeaconBlockRoot", "requestsHash",
                 "blockAccessListHash and slotNumber")
"""The fields each shape rank adds to the one before (index rank - 1)."""

_REPORTS: dict[tuple[tuple[str, ...], tuple[tuple[str, str], ...]], RuleReport] = {}


def _report(checked: list[str], not_checked: list[tuple[str, str]]) -> RuleReport:
    key = (tuple(checked), tuple(not_checked))
    report = _REPORTS.get(key)
    if report is None:
        if len(_REPORTS) > 4096:  # reasons name configs and dates: a few dozen in practice
            _REPORTS.clear()
        report = _REPORTS[key] = RuleReport(*key)
    return report


def _broken(rule: str, header: Header, claimed: object, computed: object,
            reason: str) -> HeaderRuleError:
    return HeaderRuleError(rule, header.number, header.hash, claimed, computed, reason=reason)


def validate_header(header: Header, parent: Header,
                    config: ChainConfig | None = None) -> RuleReport:
    """Check the consensus rules between ``header`` and its ``parent`` (execution-specs
    ``validate_header`` of every fork, Frontier to Osaka and the BPO forks) and return what
    was checked and what could not be. Both headers are taken as correctly hashed (the
    caller checked); ``config`` gives the fork schedule (``None``: the London transition
    and the Merge are recognised from the headers' fields, the blob schedule is unknown).

    Raises :class:`~node.chain.errors.HeaderRuleError` on the first broken rule, naming the
    rule, the header and both values.
    """
    if type(header) is not Header or type(parent) is not Header:
        raise TypeError(f"validate_header wants two Headers, got {type(header).__name__} and "
                        f"{type(parent).__name__}")
    if config is not None and type(config) is not ChainConfig:
        raise TypeError(f"config must be a ChainConfig or None, not {type(config).__name__}")
    checked = ["number", "parentHash", "timestamp", "gasUsed", "fork-order"]
    not_checked: list[tuple[str, str]] = []

    # execution-specs validate_header: number, parent hash, timestamp, gas used
    number = header.number
    if number != parent.number + 1:
        raise _broken("number", header, number, parent.number + 1,
                      f"number {number} is not {parent.number + 1} (parent's {parent.number} + 1)")
    if header.parent_hash != parent.hash:
        raise _broken("parentHash", header, header.parent_hash, parent.hash,
                      f"parentHash 0x{header.parent_hash.hex()} is not the parent's hash "
                      f"0x{parent.hash.hex()}")
    timestamp = header.timestamp
    if timestamp <= parent.timestamp and not (
            timestamp == parent.timestamp and config is not None
            and "anvil-equal-timestamps" in config.quirks):
        raise _broken("timestamp", header, timestamp, parent.timestamp,
                      f"timestamp {timestamp} is not after parent's {parent.timestamp}")
    gas_limit = header.gas_limit
    if header.gas_used > gas_limit:
        raise _broken("gasUsed", header, header.gas_used, gas_limit,
                      f"gasUsed {header.gas_used} exceeds gasLimit {gas_limit}")

    # Header shapes only grow (node.chain.header): a field the parent has, the child has.
    shape = _shape(header)
    parent_shape = _shape(parent)
    if shape < parent_shape:
        raise _broken("fork-order", header, SHAPES[shape], SHAPES[parent_shape],
                      f"header has the {SHAPES[shape]} shape but its parent the "
                      f"{SHAPES[parent_shape]} shape: {_SHAPE_FIELDS[shape]} dropped "
                      f"(forks never go back)")

    # The schedule at this header (geth applies timestamp forks only once London is on).
    era = None
    schedule_reason = NO_SCHEDULE  # why schedule-dependent rules are not checked, if so
    if config is not None:
        london_block = config.london_block
        london = london_block is not None and number >= london_block
        era = config.era_at(timestamp) if london else config.eras[0]
        expected = 1 if london and era.shape < 1 else era.shape
        known_until = config.known_until
        if known_until is not None and timestamp > known_until:
            schedule_reason = config.cache.get("stale")
            if schedule_reason is None:
                date = datetime.fromtimestamp(known_until, UTC).date()
                schedule_reason = config.cache["stale"] = (
                    f"{config.name}'s fork schedule is known only up to {date} "
                    f"({known_until}): pass a genesis/forkenv file with the current schedule")
        elif not era.implemented:
            schedule_reason = (f"{config.name} schedules a fork at {era.start} whose rules "
                               f"are not implemented here ({era.fork})")
        else:
            schedule_reason = ""
        if shape < expected:
            fork = config.fork_at(number, timestamp)
            raise _broken("fork-shape", header, SHAPES[shape], SHAPES[expected],
                          f"header at timestamp {timestamp} has the {SHAPES[shape]} shape "
                          f"but {config.name} requires the {SHAPES[expected]} shape there "
                          f"({fork}): {_SHAPE_FIELDS[shape]} missing")
        if shape > expected:
            if shape in config.listed_shapes and not schedule_reason:
                where = (f"block {london_block}, this is block {number}" if shape == 1 else
                         f"timestamp {config.time_of(SHAPES[shape])}, this header's is "
                         f"{timestamp}" + ("" if london else f", before London at block "
                                                            f"{london_block}"))
                raise _broken("fork-shape", header, SHAPES[shape], SHAPES[expected],
                              f"header has the {SHAPES[shape]} shape "
                              f"({_SHAPE_FIELDS[shape - 1]}) but {config.name} requires the "
                              f"{SHAPES[expected]} shape there: {SHAPES[shape]} starts at "
                              f"{where}")
            if not schedule_reason:
                schedule_reason = (f"header has {SHAPES[shape]} fields but {config.name} "
                                   f"lists no such fork (its schedule ends at "
                                   f"{config.last_fork}): fork schedule unknown here")
        if schedule_reason:
            not_checked.append(("fork-shape", schedule_reason))
        else:
            checked.append("fork-shape")
        if london_block is None:  # a config without London: recognise it by shape
            transition = shape >= 1 and parent_shape == 0
        else:
            transition = london and parent.number < london_block
        merged = (parent.difficulty == 0 or header.difficulty == 0 or shape >= 2
                  or era.shape >= 2 or (config.merged_from is not None
                                        and number >= config.merged_from))
        clique = config.clique and not merged
    else:
        london = shape >= 1
        transition = london and parent_shape == 0  # EIP-1559: the first block with a base fee
        merged = parent.difficulty == 0 or header.difficulty == 0 or shape >= 2
        clique = not merged and header.difficulty < MINIMUM_DIFFICULTY
        not_checked.append(("fork-shape", NO_SCHEDULE))

    # extraData: 32 bytes at most (execution-specs; clique chains put signers there)
    extra = header.extra_data
    if clique:
        not_checked.append(("extraData", "a clique (EIP-225) header before the Merge may "
                            "carry signer data in extraData" if config is not None else
                            "pre-Merge header with difficulty below 131072 is not ethash "
                            "(clique, EIP-225?): extraData may carry signer data"))
    else:
        if len(extra) > MAX_EXTRA_DATA_BYTES:
            raise _broken("extraData", header, len(extra), MAX_EXTRA_DATA_BYTES,
                          f"extraData is {len(extra)} bytes, more than "
                          f"{MAX_EXTRA_DATA_BYTES}")
        checked.append("extraData")
    if config is not None and config.dao_fork_block is not None:
        dao = config.dao_fork_block
        if dao <= number < dao + DAO_FORK_EXTRA_RANGE:
            if extra != DAO_FORK_EXTRA_DATA:
                raise _broken("extraData-dao", header, extra, DAO_FORK_EXTRA_DATA,
                              f"extraData 0x{extra.hex()} in DAO fork block {number} is not "
                              f"0x{DAO_FORK_EXTRA_DATA.hex()} ('dao-hard-fork')")
            checked.append("extraData-dao")

    # Gas limit (execution-specs check_gas_limit; EIP-1559 doubles the parent's at London)
    parent_gas_limit = parent.gas_limit * ELASTICITY_MULTIPLIER if transition else (
        parent.gas_limit)
    delta = parent_gas_limit // GAS_LIMIT_ADJUSTMENT_FACTOR
    if not parent_gas_limit - delta < gas_limit < parent_gas_limit + delta:
        source = (f"{ELASTICITY_MULTIPLIER} x parent's {parent.gas_limit} = {parent_gas_limit} "
                  f"(London transition, EIP-1559)" if transition
                  else f"parent's {parent.gas_limit}")
        raise _broken("gasLimit-bounds", header, gas_limit, parent_gas_limit,
                      f"gasLimit {gas_limit} is outside {source} +/- {max(delta - 1, 0)}")
    if gas_limit < GAS_LIMIT_MINIMUM:
        raise _broken("gasLimit-minimum", header, gas_limit, GAS_LIMIT_MINIMUM,
                      f"gasLimit {gas_limit} is below the minimum {GAS_LIMIT_MINIMUM}")
    if gas_limit > GAS_LIMIT_MAXIMUM:
        raise _broken("gasLimit-maximum", header, gas_limit, GAS_LIMIT_MAXIMUM,
                      f"gasLimit {gas_limit} exceeds the maximum {GAS_LIMIT_MAXIMUM} (2**63 - 1)")
    checked += ("gasLimit-bounds", "gasLimit-minimum", "gasLimit-maximum")

    # EIP-1559 base fee
    base_fee = header.base_fee_per_gas
    if base_fee is not None:
        if transition:
            expected_fee = INITIAL_BASE_FEE
            source = "INITIAL_BASE_FEE at the London transition (EIP-1559)"
        elif parent.base_fee_per_gas is None:  # config puts the parent after London
            raise _broken("baseFeePerGas", header, base_fee, None,
                          f"parent {parent.number} has no baseFeePerGas to compute "
                          f"{base_fee} from, though London is active there")
        elif (parent.number == 0 and config is not None
              and "anvil-block-1-base-fee" in config.quirks):
            expected_fee = parent.base_fee_per_gas
            source = "the genesis base fee (the anvil-block-1-base-fee quirk of this chain)"
        else:
            expected_fee = calculate_base_fee_per_gas(parent.gas_limit, parent.gas_used,
                                                      parent.base_fee_per_gas)
            source = (f"computed from the parent (gasLimit {parent.gas_limit}, gasUsed "
                      f"{parent.gas_used}, baseFeePerGas {parent.base_fee_per_gas})")
        if base_fee != expected_fee:
            raise _broken("baseFeePerGas", header, base_fee, expected_fee,
                          f"baseFeePerGas {base_fee} is not {expected_fee}, {source}")
        checked.append("baseFeePerGas")

    # EIP-3675: after the Merge no difficulty, nonce or ommers
    if merged:
        if header.difficulty != 0:
            raise _broken("difficulty", header, header.difficulty, 0,
                          f"difficulty {header.difficulty} after the Merge is not 0 (EIP-3675)")
        if header.nonce != POST_MERGE_NONCE:
            raise _broken("nonce", header, header.nonce, POST_MERGE_NONCE,
                          f"nonce 0x{header.nonce.hex()} after the Merge is not "
                          f"0x{POST_MERGE_NONCE.hex()} (EIP-3675)")
        if header.ommers_hash != EMPTY_OMMERS_HASH:
            raise _broken("sha3Uncles", header, header.ommers_hash, EMPTY_OMMERS_HASH,
                          f"sha3Uncles 0x{header.ommers_hash.hex()} after the Merge is not "
                          f"keccak(rlp([])) 0x{EMPTY_OMMERS_HASH.hex()} (EIP-3675)")
        checked += ("difficulty", "nonce", "sha3Uncles")
    elif clique:
        not_checked += (("difficulty", "clique difficulty (EIP-225) not checked"),
                        ("clique-seal", CLIQUE_SEAL))
    else:
        not_checked += (("difficulty", POW_DIFFICULTY), ("ethash-seal", POW_SEAL))

    # EIP-4844 blob gas, with the schedule of EIP-7691/7840/7892 and EIP-7918's reserve price
    blob_gas_used = header.blob_gas_used
    if blob_gas_used is not None:
        if blob_gas_used % GAS_PER_BLOB:
            raise _broken("blobGasUsed-granularity", header, blob_gas_used, GAS_PER_BLOB,
                          f"blobGasUsed {blob_gas_used} is not a multiple of GAS_PER_BLOB "
                          f"{GAS_PER_BLOB}")
        checked.append("blobGasUsed-granularity")
        blobs = None if era is None or schedule_reason else era.blobs
        if blobs is None:
            not_checked += (("blobGasUsed-max", schedule_reason),
                            ("excessBlobGas", schedule_reason))
        else:
            if blob_gas_used > GAS_PER_BLOB * blobs.max:
                raise _broken("blobGasUsed-max", header, blob_gas_used,
                              GAS_PER_BLOB * blobs.max,
                              f"blobGasUsed {blob_gas_used} ({blob_gas_used // GAS_PER_BLOB} "
                              f"blobs) exceeds {era.fork}'s max of {blobs.max} blobs "
                              f"({GAS_PER_BLOB * blobs.max})")
            expected_excess = calculate_excess_blob_gas(parent, blobs, era.reserve_price)
            if header.excess_blob_gas != expected_excess:
                raise _broken("excessBlobGas", header, header.excess_blob_gas, expected_excess,
                              f"excessBlobGas {header.excess_blob_gas} is not "
                              f"{expected_excess}, computed from the parent (excessBlobGas "
                              f"{parent.excess_blob_gas}, blobGasUsed {parent.blob_gas_used}, "
                              f"baseFeePerGas {parent.base_fee_per_gas}) with {era.fork}'s "
                              f"blob schedule ({blobs})"
                              + (" and EIP-7918's reserve price" if era.reserve_price else ""))
            checked += ("blobGasUsed-max", "excessBlobGas")
    return _report(checked, not_checked)
