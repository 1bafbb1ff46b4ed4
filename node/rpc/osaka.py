"""Osaka (EIP-7607, Fusaka's execution layer) on top of py-evm's Prague VM.

py-evm 0.12 stops at Prague, so calls on an Osaka chain would run with the wrong opcode set,
precompiles and MODEXP prices. :class:`OsakaVM` is py-evm's ``PragueVM`` with what Osaka changes,
built the way py-evm builds each fork from the previous one (computation -> state -> VM).

What each EIP of EIP-7607 means here:

========  =====================================================  ===============================
EIP       change                                                 here
========  =====================================================  ===============================
7939      ``CLZ`` (0x1e), gas 5 (the EIP's final price, MUL's)   opcode in :class:`OsakaComputation`
7951      ``P256VERIFY`` precompile at 0x100, gas 6900           :func:`p256verify` (checks by
                                                                 hand, ECDSA by ``cryptography``)
7823      MODEXP lengths above 1024 bytes halt (all gas burnt)   :func:`modexp_osaka`
7883      MODEXP gas: minimum 500, no divisor 3, complexity      :func:`modexp_gas`
          16 up to 32 bytes, 16 per exponent byte past 32
7825      transaction gas limit at most 2**24                    :func:`validate_tx_gas_limit`,
                                                                 run by ``validate_transaction``
7594      at most 6 blobs per transaction (the EL part of        ``validate_transaction``
          PeerDAS; the rest is networking)
7892      blob parameter only forks (BPO1, BPO2, ...)            :meth:`OsakaVM.with_blob_schedule`
                                                                 (``BLOBBASEFEE`` uses its fraction)
7918      blob base fee reserve price in ``excess_blob_gas``     header creation and block
                                                                 validation (not visible to calls)
7934      RLP block size at most 8 MiB                           ``validate_block`` (not visible
                                                                 to calls)
7917      proposer lookahead                                     consensus layer only: nothing
7642      eth/69 (history range, no TD, no receipt bloom)        p2p only: nothing
7910      ``eth_config`` RPC method                              not the EVM: nothing
7935      default block gas limit 60M                            client configuration, not a
                                                                 rule: nothing
========  =====================================================  ===============================

How EIP-7825's cap applies. It is a transaction validity rule, so ``OsakaState`` refuses a
transaction above 2**24 gas in ``validate_transaction`` (``apply_transaction``, block import and
building). The ``eth_call`` path of :mod:`node.rpc` (``build_evm_message`` then
``build_computation``, no validation) is *not* refused here: geth (PR #32641), erigon (#17169) and
reth skip the cap for ``eth_call`` (their default call gas is above it), and anvil 1.7.1 runs such
calls too. ``eth_estimateGas`` is where the cap shows: an estimate above 2**24 names a
transaction no block can include, so its search must stop at ``min(TX_GAS_LIMIT_CAP, block gas
limit)`` (erigon #17251, reth) and report "gas required exceeds allowance" above it (anvil 1.7.1
does not: it estimates up to the block gas limit, and refuses transactions above the cap only
with ``--enable-tx-gas-limit``). A caller that wants calls refused exactly as transactions would
be runs :func:`validate_tx_gas_limit`.

py-evm quirks corrected in :func:`modexp_osaka` (it replaces py-evm's MODEXP rather than
wrapping it): py-evm answers 0 whenever the base length is 0, where EIP-198 reads an empty base
as 0 and ``0 ** 0 mod m`` is ``1 mod m``.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import ClassVar

import rlp
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature
from eth import constants
from eth._utils.address import force_bytes_to_address
from eth._utils.db import get_block_header_by_hash
from eth.abc import BlockAPI, BlockHeaderAPI, ComputationAPI, SignedTransactionAPI
from eth.exceptions import VMError
from eth.precompiles.modexp import extract_lengths
from eth.vm.forks.cancun import get_total_blob_gas
from eth.vm.forks.cancun.constants import BLOB_TX_TYPE
from eth.vm.forks.prague import PragueVM
from eth.vm.forks.prague.computation import PragueComputation
from eth.vm.forks.prague.headers import create_prague_header_from_parent
from eth.vm.forks.prague.opcodes import PRAGUE_OPCODES
from eth.vm.forks.prague.state import PragueState
from eth.vm.opcode import as_opcode
from eth_utils import ValidationError

from node.chain.forks import BlobSchedule
from node.chain.header_rules import base_fee_per_blob_gas, calculate_excess_blob_gas

__all__ = [
    "OSAKA_BLOB_SCHEDULE",
    "TX_GAS_LIMIT_CAP",
    "OsakaComputation",
    "OsakaState",
    "OsakaVM",
    "TransactionGasLimitExceeded",
    "validate_tx_gas_limit",
]

# -- EIP-7939: CLZ ---------------------------------------------------------------------------

CLZ = 0x1E
"""EIP-7939 opcode number."""
GAS_CLZ = constants.GAS_LOW
"""EIP-7939: 5 gas, MUL's price (raised from an earlier draft's 3)."""


def clz(computation: ComputationAPI) -> None:
    """EIP-7939 ``CLZ``: pop ``x``, push the number of zero bits above its highest set bit
    (256 for ``x == 0``)."""
    value = computation.stack_pop1_int()
    computation.stack_push_int(256 - value.bit_length())


# -- EIP-7951: P256VERIFY --------------------------------------------------------------------

P256VERIFY_ADDRESS = force_bytes_to_address(b"\x01\x00")
"""EIP-7951: the precompile lives at 0x100 (RIP-7212's address)."""
GAS_P256VERIFY = 6900
"""EIP-7951: charged in full whatever the input (RIP-7212 charged 3450)."""

# secp256r1 (NIST P-256, SP 800-186) as EIP-7951 lists it
P256_P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
P256_A = P256_P - 3
P256_B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

P256VERIFY_INPUT_LENGTH = 160
P256VERIFY_SUCCESS = (1).to_bytes(32, "big")
_SHA256_PREHASHED = ec.ECDSA(Prehashed(hashes.SHA256()))


def p256_verify(data: bytes) -> bool:
    """EIP-7951's check of one input: ``h || r || s || qx || qy`` (32 bytes each).

    The input rules are checked here, in the EIP's order: exactly 160 bytes, ``0 < r, s < n``,
    ``qx, qy < p``, ``(qx, qy)`` on the curve and not the ``(0, 0)`` encoding of infinity.
    The ECDSA equation itself (``R' = h/s*G + r/s*Q``, failure when ``R'`` is infinity,
    ``R'.x == r (mod n)``) is OpenSSL's through ``cryptography``; ``h`` is used as the
    32-byte digest as is (never hashed again, not reduced before use).
    """
    if len(data) != P256VERIFY_INPUT_LENGTH:
        return False
    digest = data[:32]
    r, s, qx, qy = (int.from_bytes(data[i:i + 32], "big") for i in range(32, 160, 32))
    if not (0 < r < P256_N and 0 < s < P256_N):
        return False
    if not (qx < P256_P and qy < P256_P):
        return False
    if (qy * qy - (qx * qx * qx + P256_A * qx + P256_B)) % P256_P != 0:
        return False
    if qx == 0 and qy == 0:  # cannot pass the curve check (b != 0); the EIP lists it apart
        return False
    public_key = ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256R1(), b"\x04" + data[96:160])
    try:
        public_key.verify(encode_dss_signature(r, s), digest, _SHA256_PREHASHED)
    except InvalidSignature:
        return False
    return True


def p256verify(computation: ComputationAPI) -> ComputationAPI:
    """EIP-7951 ``P256VERIFY``: 6900 gas always; 32-byte 1 when the signature verifies,
    empty output otherwise. Bad input never reverts or halts it (only too little gas does)."""
    computation.consume_gas(GAS_P256VERIFY, reason="P256VERIFY Precompile")
    verified = p256_verify(computation.msg.data_as_bytes)
    computation.output = P256VERIFY_SUCCESS if verified else b""
    return computation


# -- EIP-7823 and EIP-7883: MODEXP -----------------------------------------------------------

MODEXP_ADDRESS = force_bytes_to_address(b"\x05")
MODEXP_MAX_LENGTH = 1024
"""EIP-7823: the base, exponent and modulus lengths may each be at most 8192 bits."""
MODEXP_MIN_GAS = 500
"""EIP-7883: the minimum price (EIP-2565 had 200)."""


def _read(data: bytes, start: int, length: int) -> bytes:
    """``length`` bytes of ``data`` from ``start``, zero-padded on the right (EIP-198 input
    beyond the calldata reads as zeros)."""
    return data[start:start + length].ljust(length, b"\x00")


def modexp_gas(base_length: int, exponent_length: int, modulus_length: int,
               exponent_head: int) -> int:
    """EIP-7883 MODEXP price, EIP-2565's formula with its three changes: multiplication
    complexity 16 up to 32-byte operands and ``2 * words ** 2`` above; each exponent byte past
    the first 32 counts 16 iterations (was 8); no division by 3 and a minimum of 500.

    ``exponent_head`` is the first 32 bytes of the exponent (EIP-198's definition); the bit
    part of the iteration count never goes below 0 (a zero head adds nothing).
    """
    max_length = max(base_length, modulus_length)
    words = (max_length + 7) // 8
    complexity = 2 * words * words if max_length > 32 else 16
    head_bits = max(exponent_head.bit_length() - 1, 0)
    tail_bytes = max(exponent_length - 32, 0)
    iterations = 16 * tail_bytes + head_bits
    return max(MODEXP_MIN_GAS, complexity * max(iterations, 1))


class ModexpLengthTooLarge(VMError):
    """EIP-7823: a MODEXP length above 1024 bytes; an exceptional halt (all gas burnt)."""


def modexp_osaka(computation: ComputationAPI) -> ComputationAPI:
    """MODEXP (EIP-198) with Osaka's input bounds (EIP-7823) and price (EIP-7883).

    Output: empty when both the base and modulus lengths are 0, ``modulus_length`` zero bytes
    when the modulus is 0, else ``base ** exponent % modulus`` in ``modulus_length`` bytes.
    """
    data = computation.msg.data_as_bytes
    base_length, exponent_length, modulus_length = extract_lengths(data)
    if max(base_length, exponent_length, modulus_length) > MODEXP_MAX_LENGTH:
        raise ModexpLengthTooLarge(
            f"MODEXP lengths base {base_length}, exponent {exponent_length}, modulus "
            f"{modulus_length}: EIP-7823 allows at most {MODEXP_MAX_LENGTH} bytes each")
    exponent_start = 96 + base_length
    head_length = min(exponent_length, 32)
    exponent_head = int.from_bytes(_read(data, exponent_start, head_length), "big")
    computation.consume_gas(
        modexp_gas(base_length, exponent_length, modulus_length, exponent_head),
        reason="MODEXP Precompile")

    if base_length == 0 and modulus_length == 0:
        computation.output = b""
        return computation
    base = int.from_bytes(_read(data, 96, base_length), "big")
    exponent = int.from_bytes(_read(data, exponent_start, exponent_length), "big")
    modulus = int.from_bytes(
        _read(data, exponent_start + exponent_length, modulus_length), "big")
    result = 0 if modulus == 0 else pow(base, exponent, modulus)
    computation.output = result.to_bytes(modulus_length, "big")
    return computation


# -- the computation -------------------------------------------------------------------------

OSAKA_OPCODES = {
    **copy.deepcopy(PRAGUE_OPCODES),
    CLZ: as_opcode(logic_fn=clz, mnemonic="CLZ", gas_cost=GAS_CLZ),
}
OSAKA_PRECOMPILES = {
    **PragueComputation.get_precompiles(),
    MODEXP_ADDRESS: modexp_osaka,
    P256VERIFY_ADDRESS: p256verify,
}


class OsakaComputation(PragueComputation):
    """Prague's computation with ``CLZ`` (EIP-7939), ``P256VERIFY`` (EIP-7951) and Osaka's
    MODEXP (EIP-7823, EIP-7883). Precompiles are warm from the start (EIP-2929) because py-evm
    reads the warm set from this table, so 0x100 is warm too, as the EIPs require."""

    opcodes = OSAKA_OPCODES
    _precompiles = OSAKA_PRECOMPILES


# -- transaction validity: EIP-7825, EIP-7594 ------------------------------------------------

TX_GAS_LIMIT_CAP = 2**24
"""EIP-7825: 16,777,216, the most gas one transaction may ask for."""
BLOB_COUNT_LIMIT = 6
"""EIP-7594: the most blobs one transaction may carry (whatever a block may hold)."""


class TransactionGasLimitExceeded(ValidationError):
    """EIP-7825: a transaction asks for more than :data:`TX_GAS_LIMIT_CAP` gas."""


class BlobCountExceeded(ValidationError):
    """EIP-7594: a blob transaction carries more than :data:`BLOB_COUNT_LIMIT` blobs."""


def validate_tx_gas_limit(gas: int) -> None:
    """Raise :class:`TransactionGasLimitExceeded` unless ``gas <= 2**24`` (EIP-7825)."""
    if gas > TX_GAS_LIMIT_CAP:
        raise TransactionGasLimitExceeded(
            f"transaction gas limit {gas} is above EIP-7825's cap {TX_GAS_LIMIT_CAP}")


OSAKA_BLOB_SCHEDULE = BlobSchedule(target=6, max=9, base_fee_update_fraction=5_007_716)
"""Osaka keeps Prague's blob parameters (EIP-7691); BPO forks (EIP-7892) replace them."""


class OsakaState(PragueState):
    """Prague's state with Osaka's computation, its transaction rules and a blob schedule."""

    computation_class = OsakaComputation
    blob_schedule: ClassVar[BlobSchedule] = OSAKA_BLOB_SCHEDULE

    @property
    def blob_base_fee(self) -> int:
        """EIP-4844 blob base fee with the fraction of the schedule in force (EIP-7892): what
        ``BLOBBASEFEE`` pushes and blob transactions pay."""
        return base_fee_per_blob_gas(self.execution_context.excess_blob_gas, self.blob_schedule)

    def validate_transaction(self, transaction: SignedTransactionAPI) -> None:
        """Prague's checks, then EIP-7825's gas cap and EIP-7594's blob count."""
        super().validate_transaction(transaction)
        validate_tx_gas_limit(transaction.gas)
        if transaction.type_id == BLOB_TX_TYPE:
            count = len(transaction.blob_versioned_hashes)
            if count > BLOB_COUNT_LIMIT:
                raise BlobCountExceeded(
                    f"blob transaction carries {count} blobs; EIP-7594 allows at most "
                    f"{BLOB_COUNT_LIMIT}")


# -- the VM ----------------------------------------------------------------------------------

MAX_RLP_BLOCK_SIZE = 10_485_760 - 2_097_152
"""EIP-7934: ``MAX_BLOCK_SIZE`` (10 MiB) less ``SAFETY_MARGIN`` (2 MiB) for the beacon block."""


class OsakaVM(PragueVM):
    """py-evm's Prague VM with the Osaka rules (see the module docstring for each EIP).

    ``OsakaVM`` carries Osaka's own blob parameters; on a chain past a BPO fork use
    ``OsakaVM.with_blob_schedule(config.blob_schedule_at(timestamp))``.
    """

    fork = "osaka"
    _state_class = OsakaState

    @classmethod
    def with_blob_schedule(cls, schedule: BlobSchedule) -> type[OsakaVM]:
        """This VM with another blob schedule (EIP-7892 BPO forks); one class per schedule."""
        return _vm_with_blob_schedule(cls, schedule)

    @classmethod
    def blob_schedule(cls) -> BlobSchedule:
        return cls._state_class.blob_schedule  # type: ignore[attr-defined]

    @classmethod
    def create_header_from_parent(cls, parent_header: BlockHeaderAPI | None,
                                  **header_params: object) -> BlockHeaderAPI:
        """Prague's header, with ``excess_blob_gas`` per EIP-7918 (the reserve price) and the
        schedule's target and maximum (EIP-7892)."""
        header = create_prague_header_from_parent(parent_header, **header_params)
        if parent_header is None:
            return header
        excess = calculate_excess_blob_gas(parent_header, cls.blob_schedule(), True)
        return header.copy(excess_blob_gas=excess)

    def validate_block(self, block: BlockAPI) -> None:
        """EIP-7934's size limit on the block's RLP (checked first: it needs no state), then
        Prague's block checks."""
        size = len(rlp.encode(block))
        if size > MAX_RLP_BLOCK_SIZE:
            raise ValidationError(
                f"block RLP is {size} bytes; EIP-7934 allows at most {MAX_RLP_BLOCK_SIZE}")
        super().validate_block(block)

    def validate_block_blobs(self, block: BlockAPI) -> None:
        """``excess_blob_gas`` per EIP-7918 and blob gas within the schedule's maximum."""
        schedule = self.blob_schedule()
        parent_header = get_block_header_by_hash(block.header.parent_hash, self.chaindb)
        expected = calculate_excess_blob_gas(parent_header, schedule, True)
        if block.header.excess_blob_gas != expected:
            raise ValidationError(
                f"block excess_blob_gas {block.header.excess_blob_gas}, expected {expected} "
                f"(EIP-4844 with EIP-7918's reserve price)")
        used = sum(get_total_blob_gas(tx) for tx in block.transactions)
        if used > schedule.max_blob_gas:
            raise ValidationError(
                f"block blob gas {used} is above the schedule's maximum {schedule.max_blob_gas}")
        if block.header.blob_gas_used != used:
            raise ValidationError(
                f"block blob_gas_used {block.header.blob_gas_used} but its transactions "
                f"use {used}")


@cache
def _vm_with_blob_schedule(vm_class: type[OsakaVM], schedule: BlobSchedule) -> type[OsakaVM]:
    if schedule == vm_class.blob_schedule():
        return vm_class
    state_class = vm_class._state_class.configure(  # type: ignore[attr-defined]
        __name__=f"{vm_class._state_class.__name__}WithBlobs", blob_schedule=schedule)
    return vm_class.configure(__name__=f"{vm_class.__name__}WithBlobs",
                              _state_class=state_class)
