"""The policy engine: every rule allows and denies (one table), the order of the rules,
the pinned TOML file and its strict grammar, the rolling 24 h window across a restart,
the time-lock and its cancel window, m-of-n co-signatures, EIP-7702 delegates, EIP-712
domains, ERC-20 token amounts (strict ABI decoding, their own limits, window and gates, a
ledger file of the old schema), and the signing path: a denied request is audited and
never signed."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wallet.audit import AuditLog, verify
from wallet.errors import MalformedRequestError, PolicyDeniedError
from wallet.keys.signer import Signature
from wallet.onboard import OnboardSigner
from wallet.policy import (
    MAX_UINT256,
    TRANSACTION_RULES,
    Authorization,
    Decision,
    Policy,
    PolicyLedger,
    PolicyPinError,
    SigningRequest,
    TokenCallError,
    decode_token_call,
    format_duration,
    format_token_amount,
    format_wei,
    load_policy,
    parse_amount,
    parse_duration,
    parse_policy,
    parse_selector,
    parse_token_amount,
    pin_policy,
)
from wallet.transactions import TransactionRequest

from signers import SoftwareSigner

GWEI = 10**9
ETHER = 10**18
NOW = 1_750_000_000.0
HOUR = 3600.0

SENDER = bytes.fromhex("5e" * 20)
TREASURY = bytes.fromhex("11" * 20)
TOKEN = bytes.fromhex("22" * 20)
DELEGATE = bytes.fromhex("33" * 20)
REGISTRY = bytes.fromhex("44" * 20)
STRANGER = bytes.fromhex("99" * 20)
OP1, OP2, OP3 = (bytes.fromhex(b * 20) for b in ("a1", "a2", "a3"))
USDC = bytes.fromhex("66" * 20)  # a token destination with a token section
PAYEE = bytes.fromhex("77" * 20)
OTHER_USDC = bytes.fromhex("88" * 20)  # a second token, its own limits

TRANSFER = bytes.fromhex("a9059cbb")  # transfer(address,uint256)
APPROVE = bytes.fromhex("095ea7b3")  # approve(address,uint256)
TRANSFER_FROM = bytes.fromhex("23b872dd")  # transferFrom(address,address,uint256)
INCREASE_ALLOWANCE = bytes.fromhex("39509351")  # increaseAllowance(address,uint256)
U = 10**6  # one USDC (6 decimals) in base units
FEE = 21000 * 50 * GWEI  # the most tx() can pay in fees: gas x max_fee_per_gas (0.00105 ether)
TOKEN_FEE = 60_000 * 50 * GWEI  # the same for token_tx() (gas 60000): 0.003 ether
FREE = {"max_fee_per_gas": 0, "max_priority_fee_per_gas": 0}  # a transaction without fees

TOKEN_LINE = (  # TOML: an inline table is one line
              'token = { symbol = "USDC", decimals = 6, per_transaction = "1000 USDC", '
              'per_24h = "5000 USDC", timelock_threshold = "500 USDC", '
              'cosign_threshold = "800 USDC" }')


BASE_POLICY = f"""
version = 1
chain_id = 31337

[destinations]
allow_create = false

[[destinations.allow]]
address = "0x{TREASURY.hex()}"
label = "treasury"

[[destinations.allow]]
address = "0x{TOKEN.hex()}"
label = "token"
selectors = ["transfer(address,uint256)"]

[[destinations.allow]]
address = "0x{USDC.hex()}"
label = "usdc"
selectors = ["transfer(address,uint256)", "transferFrom(address,address,uint256)",
             "approve(address,uint256)", "increaseAllowance(address,uint256)"]
{TOKEN_LINE}

[[destinations.allow]]
address = "0x{OTHER_USDC.hex()}"
label = "other"
selectors = ["transfer(address,uint256)"]

[destinations.allow.token]
symbol = "OTH"
decimals = 0
per_transaction = 1000
per_24h = 5000

[limits]
per_transaction = "1 ether"
per_24h = "3 ether"

[fees]
max_gas = 500000
max_fee_per_gas = "100 gwei"
max_priority_fee_per_gas = "2 gwei"
max_gas_price = "100 gwei"
max_total_fee = "0.01 ether"

[timelock]
threshold = "0.5 ether"
delay = "1h"
cancel_window = "30m"

[cosign]
threshold = "0.8 ether"
required = 2
operators = ["0x{OP1.hex()}", "0x{OP2.hex()}", "0x{OP3.hex()}"]

[delegation]
allow_delegates = ["0x{DELEGATE.hex()}"]

[messages]
allow_personal = false

[[messages.typed_data]]
name = "orbital"
chain_id = 31337
verifying_contract = "0x{REGISTRY.hex()}"
primary_types = ["TaskResult"]
"""


def policy_from(text: str = BASE_POLICY, edits: tuple[tuple[str, str], ...] = ()) -> Policy:
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    return parse_policy(text.encode(), "test.toml")


def tx(**changes: Any) -> SigningRequest:
    """A plain EIP-1559 transfer of 0.1 ether to the treasury, with ``changes``."""
    fields: dict[str, Any] = dict(
        sender=SENDER, chain_id=31337, to=TREASURY, value=ETHER // 10, data=b"", gas=21000,
        tx_type=2, nonce=7, max_fee_per_gas=50 * GWEI, max_priority_fee_per_gas=1 * GWEI)
    fields.update(changes)
    if fields["tx_type"] in (0, 1):
        fields.setdefault("gas_price", 20 * GWEI)
        fields["max_fee_per_gas"] = fields["max_priority_fee_per_gas"] = None
    return SigningRequest.transaction(**fields)


def word(value: int | bytes) -> bytes:
    """One ABI word: a uint256, or an address left-padded with 12 zero bytes."""
    return value.rjust(32, b"\x00") if isinstance(value, bytes) else value.to_bytes(32, "big")


def erc20(selector: bytes, *args: int | bytes) -> bytes:
    return selector + b"".join(word(arg) for arg in args)


def token_tx(data: bytes, to: bytes = USDC, **changes: Any) -> SigningRequest:
    """A call of ``data`` to the USDC token with no ether (EIP-1559), with ``changes``."""
    return tx(**{"to": to, "value": 0, "data": data, "gas": 60_000, **changes})


def transfer(amount: int, **changes: Any) -> SigningRequest:
    return token_tx(erc20(TRANSFER, PAYEE, amount), **changes)


def typed(**domain_changes: Any) -> SigningRequest:
    domain = {"name": "orbital", "version": "1", "chainId": 31337,
              "verifyingContract": "0x" + REGISTRY.hex()}
    primary = domain_changes.pop("primaryType", "TaskResult")
    domain.update(domain_changes)
    types: dict[str, Any] = {
        "EIP712Domain": [{"name": "name", "type": "string"},
                         {"name": "version", "type": "string"},
                         {"name": "chainId", "type": "uint256"},
                         {"name": "verifyingContract", "type": "address"}],
        primary: [{"name": "taskId", "type": "bytes32"}, {"name": "output", "type": "bytes32"}],
    }
    document = {"types": types, "primaryType": primary, "domain": domain,
                "message": {"taskId": "0x" + "01" * 32, "output": "0x" + "02" * 32}}
    return SigningRequest.typed_data(sender=SENDER, document=document)


def auth(address: bytes = DELEGATE, chain_id: int = 31337) -> Authorization:
    return Authorization(chain_id=chain_id, address=address, nonce=8)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[PolicyLedger]:
    with PolicyLedger(tmp_path / "ledger.sqlite") as opened:
        yield opened


# --------------------------------------------------------------------------- the table

@dataclass(frozen=True)
class Case:
    """One row: a request (built lazily) judged by the base policy with ``edits``."""

    id: str
    request: Any  # () -> SigningRequest
    outcome: str
    rule: str
    reason: str = ""  # a fragment the reason must contain
    edits: tuple[tuple[str, str], ...] = ()
    spent: tuple[tuple[int, float], ...] = ()  # (wei, seconds ago) signed earlier
    token_spent: tuple[tuple[int, float], ...] = ()  # (USDC base units, seconds ago)
    queued_ago: float | None = None  # the request was queued this long ago
    approvals: frozenset[bytes] = field(default_factory=frozenset)


TWO_OPS = frozenset({OP1, OP2})
ALLOW_CREATE = (("allow_create = false", "allow_create = true"),)
ALLOW_PERSONAL = (("allow_personal = false", "allow_personal = true"),)

CASES = [
    # 1. chain_id (EIP-155)
    Case("chain_id-allow", lambda: tx(), "allow", "all", "transfer of 0.1 ether"),
    Case("chain_id-deny-other-chain", lambda: tx(chain_id=1), "deny", "chain_id",
         "chain id 1 is not the pinned chain id 31337"),
    Case("chain_id-deny-pre-eip155", lambda: tx(tx_type=0, chain_id=None), "deny", "chain_id",
         "pre-EIP-155"),
    # 2. tx_type (EIP-2718)
    Case("tx_type-allow-legacy", lambda: tx(tx_type=0), "allow", "all"),
    Case("tx_type-allow-2930", lambda: tx(tx_type=1), "allow", "all"),
    Case("tx_type-deny-blob", lambda: tx(tx_type=3), "deny", "tx_type", "EIP-4844"),
    Case("tx_type-deny-unknown", lambda: tx(tx_type=9), "deny", "tx_type", "unknown type 9"),
    # 3. destination
    Case("destination-allow", lambda: tx(to=TREASURY), "allow", "all", "(treasury)"),
    Case("destination-deny-unlisted", lambda: tx(to=STRANGER), "deny", "destination",
         "0x9999999999999999999999999999999999999999 is not in the allowlist"),
    Case("destination-deny-create", lambda: tx(to=None, data=b"\x60\x00"), "deny",
         "destination", "contract creation is not allowed"),
    Case("destination-allow-create", lambda: tx(to=None, data=b"\x60\x00"), "allow", "all",
         "contract creation", edits=ALLOW_CREATE),
    # 4. calldata (4-byte selector, Solidity ABI)
    Case("calldata-allow-selector", lambda: tx(to=TOKEN, value=0, data=TRANSFER + bytes(64)),
         "allow", "all", "call transfer(address,uint256) on"),
    Case("calldata-deny-selector", lambda: tx(to=TOKEN, value=0, data=APPROVE + bytes(64)),
         "deny", "calldata", "selector 0x095ea7b3 is not allowed"),
    Case("calldata-deny-short", lambda: tx(to=TOKEN, value=0, data=TRANSFER[:2]), "deny",
         "calldata", "holds no 4-byte function selector"),
    Case("calldata-deny-plain-to-contract", lambda: tx(to=TOKEN), "deny", "calldata",
         "plain transfer (empty calldata)"),
    Case("calldata-deny-data-to-eoa", lambda: tx(to=TREASURY, data=TRANSFER), "deny",
         "calldata", "accepts no calldata"),
    # 5. delegation (EIP-7702)
    Case("delegation-allow", lambda: tx(tx_type=4, authorization_list=[auth()]), "allow", "all"),
    Case("delegation-deny-delegate", lambda: tx(tx_type=4, authorization_list=[auth(STRANGER)]),
         "deny", "delegation", "is not in [delegation] allow_delegates"),
    Case("delegation-deny-any-chain",
         lambda: tx(tx_type=4, authorization_list=[auth(chain_id=0)]), "deny", "delegation",
         "chain id 0 (valid on every chain)"),
    # 6. fees (EIP-1559 fields, legacy gas price, total)
    Case("fees-allow-at-caps", lambda: tx(gas=100_000, max_fee_per_gas=100 * GWEI,
                                          max_priority_fee_per_gas=2 * GWEI), "allow", "all"),
    Case("fees-deny-gas-limit", lambda: tx(gas=500_001, max_fee_per_gas=GWEI), "deny", "fees",
         "gas limit 500001 exceeds the cap 500000"),
    Case("fees-deny-max-fee", lambda: tx(max_fee_per_gas=101 * GWEI), "deny", "fees",
         "max_fee_per_gas 101 gwei exceeds the cap 100 gwei"),
    Case("fees-deny-priority", lambda: tx(max_priority_fee_per_gas=3 * GWEI), "deny", "fees",
         "max_priority_fee_per_gas 3 gwei exceeds the cap 2 gwei"),
    Case("fees-deny-priority-above-max",
         lambda: tx(max_fee_per_gas=GWEI, max_priority_fee_per_gas=2 * GWEI), "deny", "fees",
         "invalid, EIP-1559"),
    Case("fees-deny-gas-price", lambda: tx(tx_type=0, gas_price=101 * GWEI), "deny", "fees",
         "gas_price 101 gwei exceeds the cap 100 gwei"),
    Case("fees-deny-total", lambda: tx(gas=200_000, max_fee_per_gas=60 * GWEI), "deny", "fees",
         "total fee (gas 200000 x 60 gwei) 0.012 ether exceeds the cap 0.01 ether"),
    # 7. per_transaction (value + fee, the fee being gas x max_fee_per_gas)
    Case("per_transaction-allow-at-limit", lambda: tx(value=ETHER - FEE), "allow", "all",
         queued_ago=2 * HOUR, approvals=TWO_OPS),
    Case("per_transaction-allow-at-limit-free", lambda: tx(value=ETHER, **FREE), "allow",
         "all", queued_ago=2 * HOUR, approvals=TWO_OPS),
    Case("per_transaction-deny", lambda: tx(value=ETHER + 1, **FREE), "deny",
         "per_transaction",
         "value 1.000000000000000001 ether exceeds the per-transaction limit 1 ether"),
    Case("per_transaction-deny-value-plus-fee", lambda: tx(value=ETHER), "deny",
         "per_transaction", "value 1 ether + fee 0.00105 ether (gas 21000 x 50 gwei) = "
         "1.00105 ether exceeds the per-transaction limit 1 ether"),
    # 8. per_24h (values and fees; spent entries are recorded with tx()'s fee)
    Case("per_24h-allow-at-limit", lambda: tx(value=ETHER - FEE), "allow", "all",
         spent=((ETHER - FEE, HOUR), (ETHER - FEE, 23 * HOUR)), queued_ago=2 * HOUR,
         approvals=TWO_OPS),
    Case("per_24h-allow-outside-window", lambda: tx(value=ETHER // 10), "allow", "all",
         spent=((3 * ETHER, 24 * HOUR), (3 * ETHER, 30 * HOUR))),
    Case("per_24h-deny", lambda: tx(value=ETHER // 10), "deny", "per_24h",
         "value 0.1 ether + fee 0.00105 ether (gas 21000 x 50 gwei) + 2.9521 ether signed in "
         "the last 24 h = 3.05315 ether exceeds the 24 h limit 3 ether",
         spent=((2 * ETHER, HOUR), (ETHER * 95 // 100, 23.9 * HOUR))),
    Case("per_24h-deny-fee-only", lambda: tx(value=0), "deny", "per_24h",
         "value 0 wei + fee 0.00105 ether (gas 21000 x 50 gwei) + 3 ether signed in the last "
         "24 h = 3.00105 ether exceeds the 24 h limit 3 ether",
         spent=((3 * ETHER - FEE, HOUR),)),
    # 9. timelock
    Case("timelock-allow-below", lambda: tx(value=ETHER // 2 - 1), "allow", "all"),
    Case("timelock-delay", lambda: tx(value=ETHER // 2), "delay", "timelock",
         "value 0.5 ether >= time-lock threshold 0.5 ether: time-locked, signable from"),
    Case("timelock-delay-not-yet", lambda: tx(value=ETHER // 2), "delay", "timelock",
         "signable from", queued_ago=HOUR - 1),
    Case("timelock-allow-elapsed", lambda: tx(value=ETHER // 2), "allow", "all",
         "time-lock elapsed", queued_ago=HOUR),
    # 10. cosign
    Case("cosign-needs-approvals", lambda: tx(value=ETHER * 8 // 10), "needs_approvals",
         "cosign", "approvals from 0 of 3 operators, 2 required", queued_ago=2 * HOUR),
    Case("cosign-allow", lambda: tx(value=ETHER * 8 // 10), "allow", "all",
         "approvals from 2 of 3 operators, 2 required", queued_ago=2 * HOUR, approvals=TWO_OPS),
    # messages: EIP-191 personal messages
    Case("personal_message-deny", lambda: SigningRequest.personal_message(
        sender=SENDER, message=b"hello"), "deny", "personal_message", "allow_personal = false"),
    Case("personal_message-allow", lambda: SigningRequest.personal_message(
        sender=SENDER, message=b"hello"), "allow", "personal_message", edits=ALLOW_PERSONAL),
    # messages: EIP-712 domains
    Case("typed_data-allow", lambda: typed(), "allow", "typed_data", "matches an allowed"),
    Case("typed_data-deny-contract", lambda: typed(verifyingContract="0x" + TOKEN.hex()),
         "deny", "typed_data", "matches no [[messages.typed_data]] entry"),
    Case("typed_data-deny-chain", lambda: typed(chainId=1), "deny", "typed_data",
         "chainId 1"),
    Case("typed_data-deny-name", lambda: typed(name="permit"), "deny", "typed_data"),
    Case("typed_data-deny-primary-type", lambda: typed(primaryType="Permit"), "deny",
         "typed_data", "typed data 'Permit'"),
    # EIP-7702 authorization tuples signed alone
    Case("authorization-allow", lambda: SigningRequest.authorization(
        sender=SENDER, authorization=auth()), "allow", "all"),
    Case("authorization-deny-delegate", lambda: SigningRequest.authorization(
        sender=SENDER, authorization=auth(STRANGER)), "deny", "delegation"),
    Case("authorization-deny-chain", lambda: SigningRequest.authorization(
        sender=SENDER, authorization=auth(chain_id=0)), "deny", "chain_id",
         "valid on every chain"),
]

USDC_SHOWN = "0x6666666666666666666666666666666666666666 (usdc)"
DIRTY = b"\x01" + bytes(11) + PAYEE  # an address word whose padding is not zero

TOKEN_CASES = [
    # 4. calldata: a token destination's calls are exactly their ABI encoding
    Case("calldata-allow-token-transfer", lambda: transfer(100 * U), "allow", "all",
         "transfer of 100 USDC to 0x7777777777777777777777777777777777777777 on "
         f"{USDC_SHOWN} with value 0 wei"),
    Case("calldata-deny-token-short", lambda: token_tx(erc20(TRANSFER, PAYEE, U)[:-1]),
         "deny", "calldata", f"malformed ERC-20 call to {USDC_SHOWN}: "
         "transfer(address,uint256): 63 bytes of arguments, not 64"),
    Case("calldata-deny-token-selector-alone", lambda: token_tx(TRANSFER), "deny",
         "calldata", "0 bytes of arguments, not 64"),
    Case("calldata-deny-token-long", lambda: token_tx(erc20(TRANSFER, PAYEE, U) + b"\x00"),
         "deny", "calldata", "65 bytes of arguments, not 64"),
    Case("calldata-deny-token-extra-word", lambda: token_tx(erc20(TRANSFER, PAYEE, U, 0)),
         "deny", "calldata", "96 bytes of arguments, not 64"),
    Case("calldata-deny-token-dirty-address", lambda: token_tx(erc20(TRANSFER, DIRTY, U)),
         "deny", "calldata", "transfer(address,uint256): argument 1 is not an address "
         "(its 12 padding bytes are not zero)"),
    Case("calldata-deny-token-transferFrom-dirty-from",
         lambda: token_tx(erc20(TRANSFER_FROM, DIRTY, PAYEE, U)), "deny", "calldata",
         "transferFrom(address,address,uint256): argument 1 is not an address"),
    Case("calldata-deny-token-transferFrom-dirty-to",
         lambda: token_tx(erc20(TRANSFER_FROM, SENDER, DIRTY, U)), "deny", "calldata",
         "argument 2 is not an address"),
    Case("calldata-deny-token-approve-short", lambda: token_tx(erc20(APPROVE, PAYEE)),
         "deny", "calldata", "approve(address,uint256): 32 bytes of arguments, not 64"),
    Case("calldata-allow-token-without-section-unlimited",  # today's behaviour, documented
         lambda: token_tx(erc20(TRANSFER, PAYEE, MAX_UINT256) + b"\x00", to=TOKEN),
         "allow", "all", "call transfer(address,uint256) on"),
    # 7. per_transaction, in token units
    Case("per_transaction-allow-token-at-limit", lambda: transfer(1000 * U), "allow", "all",
         "transfer of 1000 USDC", queued_ago=2 * HOUR, approvals=TWO_OPS),
    Case("per_transaction-deny-token", lambda: transfer(1500 * U), "deny", "per_transaction",
         "transfer of 1500 USDC exceeds the per-transaction limit 1000 USDC"),
    Case("per_transaction-deny-token-one-base-unit", lambda: transfer(1000 * U + 1), "deny",
         "per_transaction", "transfer of 1000.000001 USDC exceeds"),
    Case("per_transaction-deny-token-transferFrom",
         lambda: token_tx(erc20(TRANSFER_FROM, STRANGER, PAYEE, 2000 * U)), "deny",
         "per_transaction", "transferFrom of 2000 USDC exceeds the per-transaction limit"),
    Case("per_transaction-deny-token-approve", lambda: token_tx(erc20(APPROVE, PAYEE,
                                                                      1500 * U)),
         "deny", "per_transaction", "allowance of 1500 USDC exceeds the per-transaction "
         "limit 1000 USDC"),
    Case("per_transaction-deny-token-unlimited-approve",
         lambda: token_tx(erc20(APPROVE, PAYEE, MAX_UINT256)), "deny", "per_transaction",
         "allowance of unlimited USDC (2^256-1 base units) exceeds the per-transaction "
         "limit 1000 USDC"),
    Case("per_transaction-deny-token-increaseAllowance",
         lambda: token_tx(erc20(INCREASE_ALLOWANCE, PAYEE, 1001 * U)), "deny",
         "per_transaction", "allowance increase of 1001 USDC exceeds"),
    Case("per_transaction-allow-token-approve-revoke",
         lambda: token_tx(erc20(APPROVE, PAYEE, 0)), "allow", "all", "allowance of 0 USDC"),
    Case("per_transaction-deny-ether-beside-token", lambda: token_tx(
        erc20(TRANSFER, PAYEE, U), value=2 * ETHER), "deny", "per_transaction",
         "value 2 ether + fee 0.003 ether (gas 60000 x 50 gwei) = 2.003 ether exceeds the "
         "per-transaction limit 1 ether"),
    Case("per_transaction-deny-token-beside-ether", lambda: token_tx(
        erc20(TRANSFER, PAYEE, 1001 * U), value=ETHER // 10), "deny", "per_transaction",
         "transfer of 1001 USDC exceeds"),
    Case("per_transaction-deny-other-token-own-limit",
         lambda: token_tx(erc20(TRANSFER, PAYEE, 1001), to=OTHER_USDC), "deny",
         "per_transaction", "transfer of 1001 OTH exceeds the per-transaction limit 1000 OTH"),
    # 8. per_24h: per sender and token, independent of ether
    Case("per_24h-allow-token-at-limit", lambda: transfer(100 * U), "allow", "all",
         token_spent=((2000 * U, HOUR), (2900 * U, 23 * HOUR))),
    Case("per_24h-allow-token-outside-window", lambda: transfer(100 * U), "allow", "all",
         token_spent=((5000 * U, 24 * HOUR), (5000 * U, 30 * HOUR))),
    Case("per_24h-deny-token", lambda: transfer(100 * U), "deny", "per_24h",
         "transfer of 100 USDC + 4950 USDC signed in the last 24 h = 5050 USDC exceeds the "
         "24 h limit 5000 USDC", token_spent=((4000 * U, HOUR), (950 * U, 23.9 * HOUR))),
    Case("per_24h-deny-token-approve", lambda: token_tx(erc20(APPROVE, PAYEE, 100 * U)),
         "deny", "per_24h", "allowance of 100 USDC + 4950 USDC signed in the last 24 h",
         token_spent=((4950 * U, HOUR),)),
    Case("per_24h-allow-token-after-ether-spent", lambda: transfer(100 * U), "allow", "all",
         spent=((3 * ETHER - FEE - TOKEN_FEE, HOUR),)),  # room left for its fee only
    Case("per_24h-deny-token-fee-after-ether-spent", lambda: transfer(100 * U), "deny",
         "per_24h", "value 0 wei + fee 0.003 ether (gas 60000 x 50 gwei) + 3 ether signed",
         spent=((3 * ETHER - FEE, HOUR),)),
    Case("per_24h-allow-ether-after-token-spent", lambda: tx(value=ETHER // 10), "allow",
         "all", token_spent=((5000 * U, HOUR),)),
    Case("per_24h-allow-other-token-after-token-spent",
         lambda: token_tx(erc20(TRANSFER, PAYEE, 1000), to=OTHER_USDC), "allow", "all",
         token_spent=((5000 * U, HOUR),)),
    # 9. timelock, at the token's threshold
    Case("timelock-allow-token-below", lambda: transfer(500 * U - 1), "allow", "all"),
    Case("timelock-delay-token", lambda: transfer(500 * U), "delay", "timelock",
         "transfer of 500 USDC >= time-lock threshold 500 USDC: time-locked, signable from"),
    Case("timelock-delay-token-approve", lambda: token_tx(erc20(APPROVE, PAYEE, 600 * U)),
         "delay", "timelock", "allowance of 600 USDC >= time-lock threshold 500 USDC"),
    Case("timelock-allow-token-elapsed", lambda: transfer(500 * U), "allow", "all",
         "time-lock elapsed", queued_ago=HOUR),
    Case("timelock-allow-other-token-no-threshold",
         lambda: token_tx(erc20(TRANSFER, PAYEE, 1000), to=OTHER_USDC), "allow", "all"),
    # 10. cosign, at the token's threshold
    Case("cosign-needs-approvals-token", lambda: transfer(800 * U), "needs_approvals",
         "cosign", "transfer of 800 USDC >= co-signature threshold 800 USDC: approvals from "
         "0 of 3 operators, 2 required", queued_ago=2 * HOUR),
    Case("cosign-allow-token", lambda: transfer(800 * U), "allow", "all",
         "approvals from 2 of 3 operators, 2 required", queued_ago=2 * HOUR,
         approvals=TWO_OPS),
]
CASES += TOKEN_CASES


def judge(case: Case, ledger: PolicyLedger) -> Decision:
    policy = policy_from(edits=case.edits)
    request = case.request()
    for i, (value, ago) in enumerate(case.spent):
        ledger.record_signed(tx(value=value, nonce=1000 + i), NOW - ago)
    for i, (amount, ago) in enumerate(case.token_spent):
        ledger.record_signed(transfer(amount, nonce=2000 + i), NOW - ago)
    if case.queued_ago is not None:
        first = policy.evaluate(request, now=NOW - case.queued_ago, ledger=ledger)
        assert first.outcome == "delay", first
        ledger.queue(first)
    return policy.evaluate(request, now=NOW, ledger=ledger, approvals=case.approvals)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_policy_table(case: Case, ledger: PolicyLedger) -> None:
    decision = judge(case, ledger)
    assert (decision.outcome, decision.rule) == (case.outcome, case.rule), decision.reason
    assert case.reason in decision.reason
    assert "\n" not in decision.reason
    assert decision.request_id == case.request().request_id
    assert decision.decided_at == NOW


def test_the_table_allows_and_denies_with_every_rule() -> None:
    by_rule: dict[str, set[str]] = {}
    for case in CASES:
        rule = case.id.split("-")[0]
        by_rule.setdefault(rule, set()).add(case.outcome)
    for rule in TRANSACTION_RULES:
        assert "allow" in by_rule[rule], rule
        assert by_rule[rule] & {"deny", "delay", "needs_approvals"}, rule
    for rule in ("personal_message", "typed_data", "authorization"):
        assert {"allow", "deny"} <= by_rule[rule], rule


# --------------------------------------------------------------------------- order

def test_first_failing_rule_decides(ledger: PolicyLedger) -> None:
    policy = policy_from()
    # wrong chain, unlisted destination and too much gas: the chain rule comes first
    decision = policy.evaluate(tx(chain_id=5, to=STRANGER, gas=10**6), now=NOW, ledger=ledger)
    assert decision.rule == "chain_id"
    decision = policy.evaluate(tx(to=STRANGER, gas=10**6), now=NOW, ledger=ledger)
    assert decision.rule == "destination"


def test_deny_beats_delay(ledger: PolicyLedger) -> None:
    decision = policy_from().evaluate(tx(value=2 * ETHER), now=NOW, ledger=ledger)
    assert (decision.outcome, decision.rule) == ("deny", "per_transaction")
    assert ledger.pending_requests() == []


def test_delay_beats_needs_approvals_and_says_what_is_missing(ledger: PolicyLedger) -> None:
    decision = policy_from().evaluate(tx(value=ETHER * 9 // 10), now=NOW, ledger=ledger,
                                      approvals={OP1})
    assert (decision.outcome, decision.rule) == ("delay", "timelock")
    assert decision.not_before == NOW + HOUR
    assert decision.cancel_until == NOW + HOUR / 2
    assert (decision.approvals_required, decision.approvals_missing) == (2, 1)


def test_decision_payload_and_require_allowed(ledger: PolicyLedger) -> None:
    policy = policy_from()
    denied = policy.evaluate(tx(chain_id=1), now=NOW, ledger=ledger)
    with pytest.raises(PolicyDeniedError) as raised:
        denied.require_allowed()
    assert raised.value.rule == "chain_id"
    assert raised.value.exit_code == 3
    payload = denied.to_payload()
    assert payload["outcome"] == "deny"
    assert payload["policy_sha256"] == policy.sha256
    assert payload["request_id"] == "0x" + tx(chain_id=1).request_id.hex()
    policy.evaluate(tx(), now=NOW, ledger=ledger).require_allowed()


# --------------------------------------------------------------------------- the file

def test_load_policy_checks_the_pin(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(BASE_POLICY)
    pin = pin_policy(path)
    assert pin == hashlib.sha256(BASE_POLICY.encode()).hexdigest()
    assert load_policy(path, pin).sha256 == pin
    assert load_policy(path, "sha256:" + pin.upper()).chain_id == 31337

    path.write_text(BASE_POLICY.replace('per_transaction = "1 ether"',
                                        'per_transaction = "100 ether"'))
    with pytest.raises(PolicyPinError) as raised:
        load_policy(path, pin)
    message = str(raised.value)
    assert f"policy file {path} changed" in message
    assert hashlib.sha256(path.read_bytes()).hexdigest() in message
    assert f"pinned {pin}" in message
    assert "`orbital wallet policy pin`" in message
    assert raised.value.exit_code == 3


@pytest.mark.parametrize("pin", ["", "abc", "g" * 64, "0" * 63])
def test_a_malformed_pin_is_refused(tmp_path: Path, pin: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(BASE_POLICY)
    with pytest.raises(MalformedRequestError, match="is not a sha256"):
        load_policy(path, pin)


def test_pin_refuses_a_policy_that_does_not_parse(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(BASE_POLICY + "\nsurprise = 1\n")
    with pytest.raises(MalformedRequestError, match="unknown key 'surprise'"):
        pin_policy(path)
    with pytest.raises(MalformedRequestError, match="cannot read policy file"):
        pin_policy(tmp_path / "missing.toml")


def test_the_example_policy_loads_and_judges() -> None:
    path = Path(__file__).parent.parent / "configs" / "policy.example.toml"
    policy = load_policy(path, pin_policy(path))
    treasury = bytes.fromhex("70997970C51812dc3A010C7d01b50e0d17dc79C8")
    assert policy.timelock is not None and policy.cosign is not None
    assert policy.delegates and policy.messages.typed_data
    request = tx(to=treasury, value=ETHER // 10)
    history = _EmptyHistory()
    assert policy.evaluate(request, now=NOW, ledger=history).outcome == "allow"
    assert policy.evaluate(tx(to=treasury, value=ETHER // 4), now=NOW,
                           ledger=history).outcome == "needs_approvals"
    # the payment token counts its amounts (token section: 1000 / 5000 / 500 / 250 USDC)
    token = bytes.fromhex("e7f1725E7734CE288F8367e1Bb143E90bb3F0512")
    judged = {amount: policy.evaluate(token_tx(erc20(TRANSFER, PAYEE, amount), to=token),
                                      now=NOW, ledger=history)
              for amount in (100 * U, 250 * U, 500 * U, 1001 * U)}
    assert {amount: (d.outcome, d.rule) for amount, d in judged.items()} == {
        100 * U: ("allow", "all"), 250 * U: ("needs_approvals", "cosign"),
        500 * U: ("delay", "timelock"), 1001 * U: ("deny", "per_transaction")}
    assert "transfer of 1001 USDC exceeds the per-transaction limit 1000 USDC" in \
        judged[1001 * U].reason
    unlimited = policy.evaluate(token_tx(erc20(APPROVE, PAYEE, MAX_UINT256), to=token),
                                now=NOW, ledger=history)
    assert (unlimited.outcome, unlimited.rule) == ("deny", "calldata")  # approve not listed


class _EmptyHistory:
    """A PolicyHistory with nothing in it."""

    def spent_since(self, sender: bytes, since: float, token: bytes | None = None) -> int:
        return 0

    def pending(self, request_id: bytes) -> None:
        return None


@pytest.mark.parametrize(("edit", "message"), [
    (("version = 1", "version = 1\nverison = 1"), "top level: unknown key 'verison'"),
    (('per_24h = "3 ether"', 'per_24h = "3 ether"\nper_day = "1 ether"'),
     "limits: unknown key 'per_day'"),
    (('label = "treasury"', 'label = "treasury"\nlable = "x"'),
     "destinations.allow[0]: unknown key 'lable'"),
    (('primary_types = ["TaskResult"]', 'primary_types = ["TaskResult"]\nsalt = "0x00"'),
     "messages.typed_data[0]: unknown key 'salt'"),
    (("[cosign]", "[cosign]\nm = 2"), "cosign: unknown key 'm'"),
    (("[fees]", "[fee]\nx = 1\n[fees]"), "top level: unknown key 'fee'"),
])
def test_unknown_keys_are_refused(edit: tuple[str, str], message: str) -> None:
    with pytest.raises(MalformedRequestError) as raised:
        policy_from(edits=(edit,))
    assert message in str(raised.value)
    assert str(raised.value).startswith("policy test.toml: ")


@pytest.mark.parametrize(("edit", "message"), [
    (('per_transaction = "1 ether"', "per_transaction = 1.5"), "is a float"),
    (('per_transaction = "1 ether"', 'per_transaction = "1.5"'), "is not '<decimal> <unit>'"),
    (('per_transaction = "1 ether"', 'per_transaction = "1 eth"'), "is not '<decimal> <unit>'"),
    (('per_transaction = "1 ether"', 'per_transaction = "-1 ether"'), "is not '<decimal>"),
    (('per_transaction = "1 ether"', 'per_transaction = "1e18 wei"'), "is not '<decimal>"),
    (('per_transaction = "1 ether"', 'per_transaction = "1  ether"'), "is not '<decimal>"),
    (('per_transaction = "1 ether"', 'per_transaction = "01 ether"'), "is not '<decimal>"),
    (('per_transaction = "1 ether"', 'per_transaction = "0.5 wei"'), "not a whole number"),
    (('per_transaction = "1 ether"', 'per_transaction = "0.0000000001 gwei"'),
     "not a whole number"),
    (('per_transaction = "1 ether"', "per_transaction = -1"), "outside 0..2^256-1"),
    (('per_transaction = "1 ether"', "per_transaction = true"), "is not an amount"),
    (('per_transaction = "1 ether"', f'per_transaction = "{2**256} wei"'), "outside"),
    (('per_transaction = "1 ether"', ""), "limits.per_transaction: is required"),
    (("chain_id = 31337", ""), "chain_id: is required"),
    (("chain_id = 31337", 'chain_id = "31337"'), "chain_id: must be int"),
    (("chain_id = 31337", "chain_id = 0"), "chain_id: must be positive"),
    (("version = 1", "version = 2"), "this wallet reads version 1"),
    (("max_gas = 500000", "max_gas = true"), "max_gas: must be int"),
    (('delay = "1h"', 'delay = "1 h"'), "is not '<integer><unit>'"),
    (('delay = "1h"', 'delay = "10m"'), "is longer than the delay 10m"),
    (('cancel_window = "30m"', 'cancel_window = "2h"'), "is longer than the delay 1h"),
    (("required = 2", "required = 4"), "is 4 but only 3 operators"),
    (("required = 2", "required = 0"), "must be positive"),
    (("allow_create = false", 'allow_create = "no"'), "must be bool"),
    (('selectors = ["transfer(address,uint256)"]', 'selectors = ["transfer(address, uint256)"]'),
     "is neither a selector"),
    (('selectors = ["transfer(address,uint256)"]',
      'selectors = ["transfer(address,uint256)", "0xA9059CBB"]'), "is listed twice"),
    (('selectors = ["transfer(address,uint256)"]', 'selectors = "0xa9059cbb"'),
     "must be a list of strings"),
    (('address = "0x1111111111111111111111111111111111111111"',
      'address = "0x1111"'), "is not an address"),
    (('address = "0x2222222222222222222222222222222222222222"',
      'address = "0x1111111111111111111111111111111111111111"'), "is listed twice"),
    # a valid EIP-55 checksum with one letter's case flipped
    (('address = "0x1111111111111111111111111111111111111111"',
      'address = "0x70997970c51812dc3A010C7d01b50e0d17dc79C8"'), "fails its EIP-55 checksum"),
    (('primary_types = ["TaskResult"]', "primary_types = []"), "primary_types: is empty"),
    (("version = 1", "version = 1 +"), "not valid TOML"),
])
def test_bad_values_are_refused(edit: tuple[str, str], message: str) -> None:
    with pytest.raises(MalformedRequestError) as raised:
        policy_from(edits=(edit,))
    assert message in str(raised.value)


MINIMAL = ('version = 1\nchain_id = 1\n[limits]\nper_transaction = 0\nper_24h = 0\n'
           '[fees]\nmax_total_fee = "0.01 ether"\n')


def test_only_required_sections_are_needed() -> None:
    minimal = parse_policy(MINIMAL.encode())
    assert minimal.destinations == {} and minimal.delegates == frozenset()
    assert minimal.timelock is None and minimal.cosign is None
    assert not minimal.messages.allow_personal and minimal.messages.typed_data == ()
    assert len(minimal.sha256) == 64


@pytest.mark.parametrize(("text", "message"), [
    (MINIMAL.replace("[limits]", "limits = 1\n[x]"), "limits: must be a table"),
    (MINIMAL + "[[delegation]]\nallow_delegates = []\n", "delegation: must be a table"),
    (MINIMAL + "[delegation]\n", "delegation.allow_delegates: is required"),
    (MINIMAL + "[[destinations]]\n", "destinations: must be a table"),
    (MINIMAL + "[destinations]\nallow = 1\n", "must be an array of tables"),
    (MINIMAL + "[cosign]\nthreshold = 0\nrequired = 1\noperators = []\n",
     "cosign.operators: lists no operator"),
    (MINIMAL.replace("[fees]", "[fees]\nmax_gas = 0"), "fees.max_gas: must be positive"),
    (MINIMAL.replace('max_total_fee = "0.01 ether"', ""), "fees.max_total_fee: is required"),
    (b"\xff", "not valid TOML"),
])
def test_bad_structure_is_refused(text: str | bytes, message: str) -> None:
    with pytest.raises(MalformedRequestError, match=re.escape(message)):
        parse_policy(text if isinstance(text, bytes) else text.encode())


# --------------------------------------------------------------------------- grammar

@pytest.mark.parametrize(("text", "wei"), [
    ("0 wei", 0), ("21000 wei", 21000), ("20 gwei", 20 * GWEI), ("1.5 gwei", 1_500_000_000),
    ("1 ether", ETHER), ("1.5 ether", 3 * ETHER // 2), ("0.000000000000000001 ether", 1),
    ("1.50 ether", 3 * ETHER // 2), (7, 7), (MAX_UINT256, MAX_UINT256),
])
def test_amount_grammar(text: object, wei: int) -> None:
    assert parse_amount(text) == wei


@given(st.integers(min_value=0, max_value=MAX_UINT256))
def test_format_wei_round_trips(wei: int) -> None:
    shown = format_wei(wei)
    assert parse_amount(shown) == wei
    assert shown.endswith((" wei", " gwei", " ether"))


def test_format_wei_picks_a_readable_unit() -> None:
    assert format_wei(ETHER * 3 // 2) == "1.5 ether"
    assert format_wei(10**15) == "0.001 ether"
    assert format_wei(20 * GWEI) == "20 gwei"
    assert format_wei(10**6) == "0.001 gwei"
    assert format_wei(999_999) == "999999 wei"


def test_duration_grammar() -> None:
    assert [parse_duration(v) for v in (90, "90s", "30m", "6h", "2d", "0s")] == [
        90, 90, 1800, 21600, 172800, 0]
    assert [format_duration(v) for v in (21600, 90, 1800, 0, 1.5)] == [
        "6h", "90s", "30m", "0s", "1.5s"]
    for bad in ("6 h", "1.5h", "h", "-1s", True, 1.5):
        with pytest.raises(MalformedRequestError):
            parse_duration(bad)
    with pytest.raises(MalformedRequestError):
        parse_duration(-1)


def test_selectors_from_signatures_and_hex() -> None:
    assert parse_selector("transfer(address,uint256)") == (TRANSFER,
                                                           "transfer(address,uint256)")
    assert parse_selector("0xA9059CBB") == (TRANSFER, "0xa9059cbb")


# --------------------------------------------------------------------------- requests

@pytest.mark.parametrize(("changes", "message"), [
    ({"to": b"\x11" * 19}, "to must be 20 bytes"),
    ({"value": -1}, "value must be an integer"),
    ({"value": True}, "value must be an integer"),
    ({"gas_price": GWEI}, "needs max_fee_per_gas and max_priority_fee_per_gas and no gas_price"),
    ({"max_fee_per_gas": None}, "needs max_fee_per_gas"),
    ({"tx_type": 4}, "needs a non-empty authorization list"),
    ({"authorization_list": [auth()]}, "only an EIP-7702 (type 4) transaction"),
    ({"tx_type": 4, "to": None, "authorization_list": [auth()]}, "cannot create a contract"),
    ({"chain_id": None}, "a type 2 transaction must carry a chain id"),
    ({"data": "0x"}, "data must be bytes"),
    ({"digest": b"\x00" * 31}, "digest must be 32 bytes"),
])
def test_malformed_requests_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(MalformedRequestError, match=re.escape(message)):
        tx(**changes)


def test_request_id_binds_every_field() -> None:
    base = tx()
    assert base.request_id == tx().request_id
    for changes in ({"nonce": 8}, {"value": base.value + 1}, {"data": b"\x00"},
                    {"digest": b"\x01" * 32}, {"max_fee_per_gas": 51 * GWEI}):
        assert tx(**changes).request_id != base.request_id, changes


def test_typed_data_request_reads_the_domain() -> None:
    request = typed()
    assert request.domain is not None
    assert request.domain.verifying_contract == REGISTRY
    assert (request.domain.name, request.domain.chain_id, request.primary_type) == (
        "orbital", 31337, "TaskResult")
    assert request.digest is not None and len(request.digest) == 32
    assert typed(chainId="0x7a69").domain == request.domain  # hex chain id, same domain
    with pytest.raises(MalformedRequestError):
        SigningRequest.typed_data(sender=SENDER, document={"types": {}, "domain": {}})


def test_typed_data_domain_fields_must_all_be_signed() -> None:
    """The policy reads the domain object; the digest must commit to every field it read,
    or a document could show the policy an allowed verifyingContract that is not signed.
    eth-account refuses a domain field missing from ``types.EIP712Domain``."""
    document = {
        "types": {"EIP712Domain": [{"name": "name", "type": "string"},
                                   {"name": "chainId", "type": "uint256"}],
                  "TaskResult": [{"name": "x", "type": "uint256"}]},
        "primaryType": "TaskResult", "message": {"x": 1},
        "domain": {"name": "orbital", "chainId": 31337,
                   "verifyingContract": "0x" + REGISTRY.hex()}}
    with pytest.raises(MalformedRequestError, match="do not match"):
        SigningRequest.typed_data(sender=SENDER, document=document)


# --------------------------------------------------------------------------- history

def test_rolling_24h_window_survives_a_restart(tmp_path: Path) -> None:
    policy = policy_from(edits=(("[timelock]\nthreshold = \"0.5 ether\"",
                                 "[timelock]\nthreshold = \"100 ether\""),
                                ("threshold = \"0.8 ether\"", "threshold = \"100 ether\""),
                                ('per_transaction = "1 ether"', 'per_transaction = "3 ether"')))
    path = tmp_path / "ledger.sqlite"
    with PolicyLedger(path) as ledger:
        first = tx(value=2 * ETHER)
        assert policy.evaluate(first, now=NOW, ledger=ledger).allowed
        ledger.record_signed(first, NOW)
    with PolicyLedger(path) as ledger:  # the wallet restarted
        assert ledger.spent_since(SENDER, NOW - 1) == 2 * ETHER + FEE
        second = tx(value=ETHER - 2 * FEE + 1, nonce=8)
        decision = policy.evaluate(second, now=NOW + 23 * HOUR, ledger=ledger)
        assert (decision.outcome, decision.rule) == ("deny", "per_24h")
        assert policy.evaluate(tx(value=ETHER - 2 * FEE, nonce=8), now=NOW + 23 * HOUR,
                               ledger=ledger).allowed
        # the first spend leaves the window exactly 24 h after it was signed
        assert policy.evaluate(second, now=NOW + 24 * HOUR, ledger=ledger).allowed
        # another sender has its own window
        other = tx(value=3 * ETHER - FEE, sender=bytes(20))
        assert policy.evaluate(other, now=NOW, ledger=ledger).allowed


def test_spends_are_summed_beyond_64_bits(ledger: PolicyLedger) -> None:
    for nonce in range(3):
        ledger.record_signed(tx(value=10 * ETHER, nonce=nonce, **FREE), NOW)  # 10^19 > 2^63
    assert ledger.spent_since(SENDER, NOW - 1) == 30 * ETHER


def test_time_lock_delays_then_allows_once(ledger: PolicyLedger) -> None:
    policy = policy_from()
    request = tx(value=ETHER * 6 // 10)
    first = policy.evaluate(request, now=NOW, ledger=ledger)
    assert first.outcome == "delay" and first.not_before == NOW + HOUR
    pending = ledger.queue(first)
    assert (pending.created, pending.not_before, pending.cancel_until) == (
        NOW, NOW + HOUR, NOW + HOUR / 2)
    assert ledger.pending_requests() == [pending]

    # asking again later neither restarts nor extends the lock
    again = policy.evaluate(request, now=NOW + 600, ledger=ledger)
    assert again.outcome == "delay" and again.not_before == NOW + HOUR
    assert ledger.queue(again) == pending

    assert policy.evaluate(request, now=NOW + HOUR - 0.001, ledger=ledger).outcome == "delay"
    allowed = policy.evaluate(request, now=NOW + HOUR, ledger=ledger)
    assert allowed.allowed and "time-lock elapsed" in allowed.reason
    ledger.record_signed(request, NOW + HOUR)
    assert ledger.pending_requests() == []
    reused = policy.evaluate(request, now=NOW + 2 * HOUR, ledger=ledger)
    assert (reused.outcome, reused.rule) == ("deny", "timelock")
    assert "already signed" in reused.reason

    # the lock is bound to the exact request: another nonce starts its own
    assert policy.evaluate(tx(value=ETHER * 6 // 10, nonce=8), now=NOW + 2 * HOUR,
                           ledger=ledger).outcome == "delay"


def test_time_lock_cancel_window(ledger: PolicyLedger) -> None:
    policy = policy_from()
    request = tx(value=ETHER * 6 // 10)
    ledger.queue(policy.evaluate(request, now=NOW, ledger=ledger))
    cancelled = ledger.cancel(request.request_id, NOW + 29 * 60, reason="operator 1 said no")
    assert cancelled.cancelled_at == NOW + 29 * 60 and not cancelled.open
    assert ledger.cancel(request.request_id, NOW + 31 * 60) == cancelled  # harmless twice
    decision = policy.evaluate(request, now=NOW + 2 * HOUR, ledger=ledger)
    assert (decision.outcome, decision.rule) == ("deny", "timelock")
    assert "cancelled" in decision.reason and "operator 1 said no" in decision.reason

    late = tx(value=ETHER * 6 // 10, nonce=9)
    ledger.queue(policy.evaluate(late, now=NOW, ledger=ledger))
    with pytest.raises(PolicyDeniedError, match=r"cancel window .* closed"):
        ledger.cancel(late.request_id, NOW + 30 * 60)  # the window is [created, +30m)
    ledger.record_signed(late, NOW + HOUR)
    with pytest.raises(PolicyDeniedError, match="already signed"):
        ledger.cancel(late.request_id, NOW + HOUR)
    with pytest.raises(MalformedRequestError, match="no pending request"):
        ledger.cancel(b"\x00" * 32, NOW)
    with pytest.raises(ValueError, match="only a delay decision"):
        ledger.queue(policy.evaluate(tx(), now=NOW, ledger=ledger))


def test_pending_requests_survive_a_restart(tmp_path: Path) -> None:
    policy = policy_from()
    request = tx(value=ETHER * 6 // 10)
    with PolicyLedger(tmp_path / "l.sqlite") as ledger:
        ledger.queue(policy.evaluate(request, now=NOW, ledger=ledger))
    with PolicyLedger(tmp_path / "l.sqlite") as ledger:
        assert policy.evaluate(request, now=NOW + HOUR, ledger=ledger).allowed


# --------------------------------------------------------------------------- ERC-20 tokens

def test_token_24h_window_across_signed_transfers_and_a_restart(tmp_path: Path) -> None:
    """Every signed token call adds up per sender and token in the ledger file, approvals
    included, across a restart; ether, other tokens and other senders keep their own."""
    policy = policy_from()
    path = tmp_path / "ledger.sqlite"
    signed = [transfer(900 * U, nonce=1), token_tx(erc20(APPROVE, PAYEE, 400 * U), nonce=2),
              token_tx(erc20(TRANSFER_FROM, STRANGER, PAYEE, 450 * U), nonce=3)]
    with PolicyLedger(path) as ledger:
        for i, request in enumerate(signed):
            decision = policy.evaluate(request, now=NOW + i, ledger=ledger,
                                       approvals=TWO_OPS)
            if decision.outcome == "delay":  # 900 USDC: past the token's time-lock first
                ledger.queue(decision)
                decision = policy.evaluate(request, now=NOW + i + HOUR, ledger=ledger,
                                           approvals=TWO_OPS)
            assert decision.allowed, decision.reason
            ledger.record_signed(request, NOW + i)
        assert ledger.spent_since(SENDER, NOW - 1, token=USDC) == 1750 * U
    with PolicyLedger(path) as ledger:  # the wallet restarted
        assert ledger.spent_since(SENDER, NOW - 1, token=USDC) == 1750 * U
        assert ledger.spent_since(SENDER, NOW - 1) == 3 * TOKEN_FEE  # their fees only
        for i in range(3):
            request = transfer(450 * U, nonce=10 + i)
            assert policy.evaluate(request, now=NOW + 10, ledger=ledger).allowed
            ledger.record_signed(request, NOW + 10)
    with PolicyLedger(path) as ledger:  # and again: 3100 USDC signed
        assert ledger.spent_since(SENDER, NOW - 1, token=USDC) == 3100 * U
        for i in range(4):
            request = transfer(450 * U, nonce=20 + i)
            assert policy.evaluate(request, now=NOW + 20, ledger=ledger).allowed
            ledger.record_signed(request, NOW + 20)
        over = transfer(100 * U + 1, nonce=30)  # 4900 + 100.000001 > 5000
        decision = policy.evaluate(over, now=NOW + HOUR, ledger=ledger)
        assert (decision.outcome, decision.rule) == ("deny", "per_24h"), decision.reason
        assert "4900 USDC signed in the last 24 h = 5000.000001 USDC" in decision.reason
        assert policy.evaluate(transfer(100 * U, nonce=30), now=NOW + HOUR,
                               ledger=ledger).allowed
        # the first transfer leaves the window exactly 24 h after it was signed
        assert policy.evaluate(over, now=NOW + 24 * HOUR, ledger=ledger).allowed
        # ether, the other token and another sender are untouched
        assert policy.evaluate(tx(value=ETHER // 10), now=NOW + HOUR, ledger=ledger).allowed
        assert policy.evaluate(token_tx(erc20(TRANSFER, PAYEE, 1000), to=OTHER_USDC),
                               now=NOW + HOUR, ledger=ledger).allowed
        assert policy.evaluate(transfer(400 * U, sender=bytes(20)), now=NOW + HOUR,
                               ledger=ledger).allowed


def test_the_ledger_records_amounts_beyond_64_bits_and_skips_non_token_calldata(
        ledger: PolicyLedger) -> None:
    ledger.record_signed(transfer(MAX_UINT256, nonce=1), NOW)
    ledger.record_signed(transfer(MAX_UINT256, nonce=2), NOW)
    assert ledger.spent_since(SENDER, NOW - 1, token=USDC) == 2 * MAX_UINT256
    ledger.record_signed(token_tx(erc20(TRANSFER, DIRTY, U), to=TREASURY, nonce=3), NOW)
    ledger.record_signed(token_tx(bytes.fromhex("deadbeef") + word(5), nonce=4), NOW)
    assert ledger.spent_since(SENDER, NOW - 1, token=TREASURY) == 0
    assert ledger.spent_since(SENDER, NOW - 1, token=USDC) == 2 * MAX_UINT256


OLD_LEDGER_SCHEMA = """
CREATE TABLE spends (
    id INTEGER PRIMARY KEY,
    request_id BLOB NOT NULL,
    sender BLOB NOT NULL,
    value TEXT NOT NULL,
    signed_at REAL NOT NULL
);
CREATE INDEX spends_by_sender ON spends (sender, signed_at);
CREATE TABLE pending (
    request_id BLOB PRIMARY KEY,
    created REAL NOT NULL,
    not_before REAL NOT NULL,
    cancel_until REAL NOT NULL,
    summary TEXT NOT NULL,
    cancelled_at REAL,
    cancel_reason TEXT NOT NULL DEFAULT '',
    signed_at REAL
);
"""
"""The ledger schema before token amounts were recorded."""


def test_a_ledger_file_of_the_old_schema_opens_and_keeps_its_history(tmp_path: Path) -> None:
    path = tmp_path / "old-ledger.sqlite"
    policy = policy_from()
    locked = tx(value=ETHER * 6 // 10)
    with sqlite3.connect(path) as conn:
        conn.executescript(OLD_LEDGER_SCHEMA)
        conn.execute("INSERT INTO spends (request_id, sender, value, signed_at) "
                     "VALUES (?, ?, ?, ?)", (b"\x01" * 32, SENDER, str(2 * ETHER), NOW - HOUR))
        conn.execute("INSERT INTO pending (request_id, created, not_before, cancel_until, "
                     "summary) VALUES (?, ?, ?, ?, ?)",
                     (locked.request_id, NOW - 2 * HOUR, NOW - HOUR, NOW - 1.5 * HOUR, "old"))
    conn.close()
    with PolicyLedger(path) as ledger:
        assert ledger.spent_since(SENDER, NOW - 2 * HOUR) == 2 * ETHER
        assert ledger.spent_since(SENDER, NOW - 2 * HOUR, token=USDC) == 0
        pending = ledger.pending(locked.request_id)
        assert pending is not None and pending.summary == "old"
        assert policy.evaluate(locked, now=NOW, ledger=ledger).allowed  # its lock elapsed
        decision = policy.evaluate(tx(value=ETHER + 1, nonce=9), now=NOW, ledger=ledger)
        assert decision.rule == "per_transaction"
        assert (policy.evaluate(tx(value=ETHER // 2 - 1, nonce=9), now=NOW,
                                ledger=ledger).allowed)
        ledger.record_signed(transfer(300 * U), NOW)
    with PolicyLedger(path) as ledger:  # upgraded in place, once
        assert ledger.spent_since(SENDER, NOW - 2 * HOUR, token=USDC) == 300 * U
        assert ledger.spent_since(SENDER, NOW - 2 * HOUR) == 2 * ETHER + TOKEN_FEE
    with sqlite3.connect(path) as conn:
        tables = {name for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
    conn.close()
    assert tables == {"spends", "pending", "token_spends"}


@pytest.mark.parametrize(("data", "expected"), [
    (erc20(TRANSFER, PAYEE, 7), ("transfer(address,uint256)", {"to": PAYEE}, 7)),
    (erc20(TRANSFER_FROM, SENDER, PAYEE, MAX_UINT256),
     ("transferFrom(address,address,uint256)", {"from": SENDER, "to": PAYEE}, MAX_UINT256)),
    (erc20(APPROVE, PAYEE, 0), ("approve(address,uint256)", {"spender": PAYEE}, 0)),
    (erc20(INCREASE_ALLOWANCE, PAYEE, 5),
     ("increaseAllowance(address,uint256)", {"spender": PAYEE}, 5)),
    (bytes.fromhex("deadbeef") + word(1), None),  # not a token function
    (b"", None),
    (TRANSFER[:3], None),
])
def test_decode_token_call(data: bytes, expected: tuple[str, dict[str, bytes], int] | None
                           ) -> None:
    call = decode_token_call(data)
    if expected is None:
        assert call is None
        return
    assert call is not None
    assert (call.function.signature, dict(call.arguments), call.amount) == expected
    assert call.function.selector == data[:4]


@pytest.mark.parametrize(("data", "message"), [
    (TRANSFER, "transfer(address,uint256): 0 bytes of arguments, not 64 (2 words of 32"),
    (erc20(TRANSFER, PAYEE, 1)[:-1], "63 bytes of arguments, not 64"),
    (erc20(TRANSFER, PAYEE, 1) + b"\x00", "65 bytes of arguments, not 64"),
    (erc20(TRANSFER_FROM, PAYEE, 1), "transferFrom(address,address,uint256): 64 bytes of "
     "arguments, not 96"),
    (erc20(TRANSFER, b"\x80" + bytes(11) + PAYEE, 1), "argument 1 is not an address"),
    (erc20(TRANSFER, bytes(11) + b"\x01" + PAYEE, 1), "argument 1 is not an address"),
    (erc20(APPROVE, word(2**160), 1), "argument 1 is not an address"),
])
def test_malformed_token_calls_raise_a_typed_one_line_error(data: bytes, message: str) -> None:
    with pytest.raises(TokenCallError) as raised:
        decode_token_call(data)
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert isinstance(raised.value, MalformedRequestError)


def test_the_audited_payload_carries_the_decoded_token_call() -> None:
    policy = policy_from()
    request = token_tx(erc20(TRANSFER_FROM, STRANGER, PAYEE, 1500 * U))
    payload = request.to_payload(policy)
    assert payload["token_call"] == {
        "function": "transferFrom(address,address,uint256)", "amount": str(1500 * U),
        "from": "0x" + STRANGER.hex(), "to": "0x" + PAYEE.hex(), "symbol": "USDC",
        "decimals": 6}
    assert {k: v for k, v in payload.items() if k != "token_call"} == request.to_payload()
    assert "token_call" not in request.to_payload()  # request_id hashes this: unchanged
    bad = token_tx(erc20(TRANSFER, DIRTY, U))
    assert "argument 1 is not an address" in bad.to_payload(policy)["token_call"]["error"]
    # no token section: nothing decoded
    assert "token_call" not in token_tx(erc20(TRANSFER, PAYEE, U), to=TOKEN).to_payload(policy)
    assert "token_call" not in tx().to_payload(policy)
    assert request.describe(policy) == (
        "transferFrom of 1500 USDC from 0x9999999999999999999999999999999999999999 to "
        f"0x7777777777777777777777777777777777777777 on {USDC_SHOWN} with value 0 wei")
    assert token_tx(erc20(APPROVE, PAYEE, MAX_UINT256)).describe(policy).startswith(
        "allowance of unlimited USDC (2^256-1 base units) for 0x7777")


def test_token_limits_parse_in_the_token_unit() -> None:
    usdc = policy_from().destinations[USDC].token
    assert usdc is not None
    assert (usdc.symbol, usdc.decimals, usdc.per_transaction, usdc.per_24h,
            usdc.timelock_threshold, usdc.cosign_threshold) == (
        "USDC", 6, 1000 * U, 5000 * U, 500 * U, 800 * U)
    other = policy_from().destinations[OTHER_USDC].token
    assert other is not None and (other.per_transaction, other.timelock_threshold) == (
        1000, None)
    assert policy_from().destinations[TOKEN].token is None
    assert parse_token_amount("0.000001 USDC", "USDC", 6) == 1
    assert parse_token_amount("1.50 USDC", "USDC", 6) == 1_500_000
    assert parse_token_amount(42, "USDC", 6) == 42
    assert format_token_amount(1_500_000, "USDC", 6) == "1.5 USDC"
    assert format_token_amount(0, "X", 0) == "0 X"


@given(st.integers(min_value=0, max_value=MAX_UINT256 - 1), st.integers(0, 77))
def test_token_amounts_round_trip(amount: int, decimals: int) -> None:
    assert parse_token_amount(format_token_amount(amount, "TKN", decimals), "TKN",
                              decimals) == amount


@pytest.mark.parametrize(("edit", "message"), [
    (('per_transaction = "1000 USDC"', "per_transaction = 1000.0"),
     "destinations.allow[2].token.per_transaction: 1000.0 is a float"),
    (('per_transaction = "1000 USDC"', 'per_transaction = "1000 USDT"'),
     "is not '<decimal> <unit>' with unit USDC"),
    (('per_transaction = "1000 USDC"', 'per_transaction = "1000 ether"'),
     "is not '<decimal> <unit>' with unit USDC"),
    (('per_transaction = "1000 USDC"', 'per_transaction = "1000"'), "is not '<decimal>"),
    (('per_transaction = "1000 USDC"', 'per_transaction = "1e3 USDC"'), "is not '<decimal>"),
    (('per_transaction = "1000 USDC"', 'per_transaction = "-1 USDC"'), "is not '<decimal>"),
    (('per_transaction = "1000 USDC"', 'per_transaction = "0.0000001 USDC"'),
     "is not a whole number of USDC base units (6 decimals)"),
    (('per_transaction = "1000 USDC"', "per_transaction = -1"), "outside 0..2^256-1"),
    (('per_transaction = "1000 USDC", ', ""), "token.per_transaction: is required"),
    (('per_24h = "5000 USDC", ', ""), "token.per_24h: is required"),
    (('symbol = "USDC", ', ""), "token.symbol: is required"),
    (('decimals = 6, ', ""), "token.decimals: is required"),
    (("decimals = 6", "decimals = 256"), "token.decimals: is 256, not in 0..255"),
    (("decimals = 6", "decimals = -1"), "not in 0..255"),
    (("decimals = 6", 'decimals = "6"'), "token.decimals: must be int"),
    (('symbol = "USDC"', 'symbol = "ether"'), "is not a token symbol"),
    (('symbol = "USDC"', 'symbol = "US DC"'), "is not a token symbol"),
    (("decimals = 6,", "decimals = 6, limit = 1,"), "token: unknown key 'limit'"),
    ((TOKEN_LINE, "token = 5"), "destinations.allow[2].token: must be a table"),
    (("symbol = \"OTH\"", "symbol = \"OTH\"\nper_tx = 1"),
     "destinations.allow[3].token: unknown key 'per_tx'"),
    (("per_24h = 5000\n", "per_24h = 5000.5\n"), "is a float"),
])
def test_bad_token_sections_are_refused(edit: tuple[str, str], message: str) -> None:
    with pytest.raises(MalformedRequestError) as raised:
        policy_from(edits=(edit,))
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_token_gates_need_their_sections() -> None:
    no_timelock = ('[timelock]\nthreshold = "0.5 ether"\ndelay = "1h"\ncancel_window = "30m"',
                   "")
    with pytest.raises(MalformedRequestError, match=re.escape(
            "destinations.allow[2].token.timelock_threshold: needs a [timelock] section")):
        policy_from(edits=(no_timelock,))
    text = BASE_POLICY.replace("[cosign]\nthreshold", "[unused]\nthreshold")
    text = text.split("[unused]")[0] + "[delegation]" + text.split("[delegation]")[1]
    with pytest.raises(MalformedRequestError, match=re.escape(
            "destinations.allow[2].token.cosign_threshold: needs a [cosign] section")):
        policy_from(text)
    # without the thresholds, the token never starts the gates
    relaxed = policy_from(text.replace(', cosign_threshold = "800 USDC"', ""))
    assert relaxed.cosign is None
    assert relaxed.evaluate(transfer(400 * U), now=NOW, ledger=_EmptyHistory()).allowed


# --------------------------------------------------------------------------- co-signatures

@pytest.fixture
def past_lock(ledger: PolicyLedger) -> tuple[Policy, SigningRequest, PolicyLedger]:
    policy = policy_from()
    request = tx(value=ETHER * 9 // 10)
    ledger.queue(policy.evaluate(request, now=NOW - 2 * HOUR, ledger=ledger))
    return policy, request, ledger


@pytest.mark.parametrize(("approvals", "outcome", "counted"), [
    ([], "needs_approvals", 0),
    ([OP1], "needs_approvals", 1),
    ([OP1, OP1, OP1], "needs_approvals", 1),  # duplicates count once
    ([OP1, STRANGER, TREASURY], "needs_approvals", 1),  # non-operators do not count
    ([OP1, OP3], "allow", 2),
    ([OP1, OP2, OP3], "allow", 3),
])
def test_cosign_m_of_n(past_lock: tuple[Policy, SigningRequest, PolicyLedger],
                       approvals: list[bytes], outcome: str, counted: int) -> None:
    policy, request, ledger = past_lock
    decision = policy.evaluate(request, now=NOW, ledger=ledger, approvals=approvals)
    assert decision.outcome == outcome
    assert len(decision.approvals) == counted
    assert decision.approvals_missing == max(0, 2 - counted)
    assert f"approvals from {counted} of 3 operators, 2 required" in decision.reason
    if STRANGER in approvals:
        assert "2 approval(s) from non-operators ignored" in decision.reason


def test_malformed_approval_is_refused(past_lock: tuple[Policy, SigningRequest,
                                                        PolicyLedger]) -> None:
    policy, request, ledger = past_lock
    with pytest.raises(MalformedRequestError, match="approval must be 20 bytes"):
        policy.evaluate(request, now=NOW, ledger=ledger, approvals=[OP1[:19]])


def test_every_delegation_in_a_7702_list_is_checked(ledger: PolicyLedger) -> None:
    request = tx(tx_type=4, authorization_list=[auth(), auth(STRANGER), auth()])
    decision = policy_from().evaluate(request, now=NOW, ledger=ledger)
    assert (decision.outcome, decision.rule) == ("deny", "delegation")
    assert "0x9999999999999999999999999999999999999999" in decision.reason
    no_section = policy_from(edits=((f'[delegation]\nallow_delegates = ["0x{DELEGATE.hex()}"]',
                                     ""),))
    decision = no_section.evaluate(tx(tx_type=4, authorization_list=[auth()]), now=NOW,
                                   ledger=ledger)
    assert (decision.outcome, decision.rule) == ("deny", "delegation")


# --------------------------------------------------------------------------- signing path

def guarded_sign(policy: Policy, ledger: PolicyLedger, audit: AuditLog, signer: Any,
                 request: SigningRequest, now: float,
                 approvals: frozenset[bytes] = frozenset()) -> tuple[Decision,
                                                                     Signature | None]:
    """The on-board signing path as the wallet must wire it: judge, audit the decision,
    sign only an allowed request, audit the signature, record the spend, then release."""
    assert request.digest is not None
    with ledger.signing_lock:
        decision = policy.evaluate(request, now=now, ledger=ledger, approvals=approvals)
        audit.append("policy_decision", {"request": request.to_payload(),
                                         "decision": decision.to_payload()})
        if decision.outcome == "delay":
            ledger.queue(decision)
        if not decision.allowed:
            return decision, None
        signature = signer.sign_digest(request.digest)
        audit.append("signed", {"request_id": request.request_id, "digest": request.digest,
                                "signature": signature.to_bytes()})
        ledger.record_signed(request, now)
    return decision, signature


def _kinds(path: Path) -> list[tuple[str, bytes]]:
    with sqlite3.connect(path) as conn:  # a separate connection: what is on disk
        return [(kind, bytes(payload)) for kind, payload in
                conn.execute("SELECT kind, payload FROM entries ORDER BY seq")]


def test_a_denied_request_is_audited_and_never_signed(tmp_path: Path,
                                                      ledger: PolicyLedger) -> None:
    signer = SoftwareSigner()
    path = tmp_path / "audit.sqlite"
    request = tx(to=STRANGER, digest=b"\x42" * 32)
    with AuditLog(path, signer) as audit:
        decision, signature = guarded_sign(policy_from(), ledger, audit, signer, request, NOW)
    assert decision.outcome == "deny" and signature is None
    assert request.digest not in signer.signed  # the key never saw it
    entries = _kinds(path)
    assert [kind for kind, _ in entries] == ["policy_decision"]
    assert b'"outcome":"deny"' in entries[0][1]
    assert b'"rule":"destination"' in entries[0][1]
    assert ledger.spent_since(SENDER, 0) == 0
    assert verify(path, expected_signer=signer.address).seq == 1


def test_an_allowed_request_is_audited_before_its_signature_is_released(
        tmp_path: Path, ledger: PolicyLedger) -> None:
    path = tmp_path / "audit.sqlite"
    request = tx(digest=b"\x43" * 32)
    seen_at_signing: list[list[str]] = []

    class WatchingSigner(SoftwareSigner):
        def sign_digest(self, digest: bytes) -> Signature:
            if digest == request.digest:
                seen_at_signing.append([kind for kind, _ in _kinds(path)])
            return super().sign_digest(digest)

    signer = WatchingSigner()
    with AuditLog(path, signer) as audit:
        decision, signature = guarded_sign(policy_from(), ledger, audit, signer, request, NOW)
        assert decision.allowed and signature is not None
        # before the key was used the decision was on disk; before the release, the signature
        assert seen_at_signing == [["policy_decision"]]
        entries = _kinds(path)
        assert [kind for kind, _ in entries] == ["policy_decision", "signed"]
        assert signature.to_bytes().hex().encode() in entries[1][1]
    assert ledger.spent_since(SENDER, NOW - 1) == request.value + FEE


def test_a_delayed_request_is_audited_queued_and_not_signed(tmp_path: Path,
                                                            ledger: PolicyLedger) -> None:
    signer = SoftwareSigner()
    request = tx(value=ETHER * 6 // 10, digest=b"\x44" * 32)
    with AuditLog(tmp_path / "audit.sqlite", signer) as audit:
        decision, signature = guarded_sign(policy_from(), ledger, audit, signer, request, NOW)
        assert decision.outcome == "delay" and signature is None
        assert request.digest not in signer.signed
        later, signature = guarded_sign(policy_from(), ledger, audit, signer, request,
                                        NOW + HOUR)
        assert later.allowed and signature is not None
        assert [e.kind for e in audit.entries()] == ["policy_decision", "policy_decision",
                                                     "signed"]


def test_onboard_signer_counts_token_amounts_end_to_end(tmp_path: Path) -> None:
    """OnboardSigner (software key): token transfers within the limits are signed, audited
    with their decoded call and recorded; the 24 h token limit then refuses the next one
    across a restart of the ledger; malformed calldata and an unlimited approve never reach
    the key."""
    policy = policy_from()
    signer = SoftwareSigner("erc20 end to end")
    clock = [NOW]

    def request(data: bytes, nonce: int) -> TransactionRequest:
        return TransactionRequest(tx_type=2, chain_id=31337, nonce=nonce, gas=60_000, to=USDC,
                                  data=data, max_fee_per_gas=50 * GWEI,
                                  max_priority_fee_per_gas=GWEI)

    audit_path = tmp_path / "audit.sqlite"
    with AuditLog(audit_path, SoftwareSigner("audit key")) as audit:
        for nonce in range(10):  # 10 x 499 USDC: under every gate, 4990 USDC in 24 h
            with PolicyLedger(tmp_path / "ledger.sqlite") as ledger:  # restarted each time
                onboard = OnboardSigner(signer, policy, ledger, audit, clock=lambda: clock[0])
                signed = onboard.sign_transaction(request(erc20(TRANSFER, PAYEE, 499 * U),
                                                          nonce))
                assert signed.sender == signer.address
            clock[0] += 60
        with PolicyLedger(tmp_path / "ledger.sqlite") as ledger:
            onboard = OnboardSigner(signer, policy, ledger, audit, clock=lambda: clock[0])
            assert ledger.spent_since(signer.address, NOW - 1, token=USDC) == 4990 * U
            with pytest.raises(PolicyDeniedError) as raised:
                onboard.sign_transaction(request(erc20(TRANSFER, PAYEE, 11 * U), 10))
            assert raised.value.rule == "per_24h"
            assert "transfer of 11 USDC + 4990 USDC signed in the last 24 h" in str(raised.value)
            with pytest.raises(PolicyDeniedError) as raised:
                onboard.sign_transaction(request(erc20(TRANSFER, DIRTY, U), 10))
            assert raised.value.rule == "calldata"
            with pytest.raises(PolicyDeniedError) as raised:
                onboard.sign_transaction(request(erc20(APPROVE, PAYEE, MAX_UINT256), 10))
            assert raised.value.rule == "per_transaction"
            assert "unlimited USDC" in str(raised.value)
            # a day later the window has room again
            clock[0] = NOW + 24 * HOUR + 60
            onboard.sign_transaction(request(erc20(TRANSFER, PAYEE, 11 * U), 10))
        entries = audit.entries()
    assert len(signer.signed) == 11
    kinds = [entry.kind for entry in entries]
    assert kinds.count("signed") == 11 and kinds.count("policy_decision") == 14
    first = json.loads(entries[0].payload)
    assert first["request"]["token_call"] == {
        "function": "transfer(address,uint256)", "amount": str(499 * U),
        "to": "0x" + PAYEE.hex(), "symbol": "USDC", "decimals": 6}
    assert first["decision"]["outcome"] == "allow"
    assert "transfer of 499 USDC to" in first["decision"]["reason"]
    malformed = [json.loads(e.payload) for e in entries if e.kind == "policy_decision"][11]
    assert "not an address" in malformed["request"]["token_call"]["error"]
    assert malformed["decision"]["rule"] == "calldata"
