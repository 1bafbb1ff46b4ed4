"""Fees count toward the ether limits (issue #16, item 4).

A transaction's fee -- gas limit x ``max_fee_per_gas``, or x ``gas_price`` for types 0 and
1 -- leaves the account like its value. Before, the ether limits saw the value alone, so
400 zero-value transactions, each at the example policy's ``max_total_fee`` of 0.05 ether,
carried 20 ether of fees past a 5 ether daily limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from wallet.audit import AuditLog
from wallet.errors import PolicyDeniedError
from wallet.onboard import OnboardSigner, transaction_signing_request
from wallet.policy import Policy, PolicyLedger, SigningRequest, load_policy, pin_policy
from wallet.transactions import TransactionRequest

from signers import SoftwareSigner

GWEI = 10**9
ETHER = 10**18
NOW = 1_750_000_000.0
EXAMPLE = Path(__file__).parent.parent / "configs" / "policy.example.toml"
TREASURY = bytes.fromhex("70997970C51812dc3A010C7d01b50e0d17dc79C8")  # plain transfers
MAX_GAS = 250_000  # x 200 gwei = 0.05 ether: the example's max_total_fee
MAX_FEE = MAX_GAS * 200 * GWEI


@pytest.fixture
def example() -> Policy:
    return load_policy(EXAMPLE, pin_policy(EXAMPLE))


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[PolicyLedger]:
    with PolicyLedger(tmp_path / "ledger.sqlite") as opened:
        yield opened


def request(value: int, nonce: int = 0, tx_type: int = 2) -> TransactionRequest:
    """A transfer to the example's treasury at the example's fee caps."""
    if tx_type in (0, 1):
        return TransactionRequest(tx_type=tx_type, chain_id=31337, nonce=nonce, gas=MAX_GAS,
                                  to=TREASURY, value=value, gas_price=200 * GWEI)
    return TransactionRequest(tx_type=tx_type, chain_id=31337, nonce=nonce, gas=MAX_GAS,
                              to=TREASURY, value=value, max_fee_per_gas=200 * GWEI,
                              max_priority_fee_per_gas=GWEI)


def test_400_zero_value_transactions_no_longer_carry_20_ether_of_fees(
        example: Policy, tmp_path: Path) -> None:
    """Through the on-board signer: the fees of signed transactions fill the 5 ether
    window after 100 of them; the other 300 are refused naming the fee and never signed."""
    assert example.limits.per_24h == 5 * ETHER and example.fees.max_total_fee == MAX_FEE
    signer = SoftwareSigner("fee spender")
    clock = [NOW]
    signed, refused = [], []
    with PolicyLedger(tmp_path / "ledger.sqlite") as ledger, \
            AuditLog(tmp_path / "audit.sqlite", SoftwareSigner("audit key")) as audit:
        onboard = OnboardSigner(signer, example, ledger, audit, clock=lambda: clock[0])
        for nonce in range(400):
            clock[0] = NOW + nonce  # all inside one 24 h window
            try:
                signed.append(onboard.sign_transaction(request(0, nonce)))
            except PolicyDeniedError as exc:
                refused.append(exc)
        assert ledger.spent_since(signer.address, NOW - 1) == 100 * MAX_FEE == 5 * ETHER
    assert len(signed) == 100 and len(refused) == 300
    assert len(signer.signed) == 100  # the key never saw a refused one
    assert sum(s.request.max_fee for s in signed) <= example.limits.per_24h
    first = refused[0]
    assert first.rule == "per_24h"
    assert str(first) == ("policy denied (per_24h): value 0 wei + fee 0.05 ether (gas 250000 "
                          "x 200 gwei) + 5 ether signed in the last 24 h = 5.05 ether exceeds "
                          "the 24 h limit 5 ether")


def test_value_that_fits_but_not_with_its_fee_is_refused_naming_the_fee(
        example: Policy, tmp_path: Path) -> None:
    signer = SoftwareSigner("fee spender")
    with PolicyLedger(tmp_path / "ledger.sqlite") as ledger, \
            AuditLog(tmp_path / "audit.sqlite", SoftwareSigner("audit key")) as audit:
        onboard = OnboardSigner(signer, example, ledger, audit, clock=lambda: NOW)
        with pytest.raises(PolicyDeniedError) as raised:
            onboard.sign_transaction(request(ETHER - MAX_FEE + 1))  # the value alone fits
        assert ledger.spent_since(signer.address, 0) == 0
    assert raised.value.rule == "per_transaction"
    message = str(raised.value)
    assert message == ("policy denied (per_transaction): value 0.950000000000000001 ether "
                       "+ fee 0.05 ether (gas 250000 x 200 gwei) = 1.000000000000000001 "
                       "ether exceeds the per-transaction limit 1 ether")
    assert "\n" not in message
    assert signer.signed == []


@pytest.mark.parametrize("tx_type", [0, 1, 2])
def test_the_fee_is_gas_times_max_fee_or_gas_price(example: Policy, ledger: PolicyLedger,
                                                   tx_type: int) -> None:
    """Legacy and EIP-2930 pay gas_price, EIP-1559 at most max_fee_per_gas: either way
    value + gas x price is judged and recorded."""

    def judged(value: int) -> SigningRequest:
        return transaction_signing_request(request(value, tx_type=tx_type), bytes(20), None)

    at_limit = judged(ETHER - MAX_FEE)
    assert at_limit.max_fee == MAX_FEE and at_limit.ether_spent == ETHER
    decision = example.evaluate(judged(ETHER - MAX_FEE + 1), now=NOW, ledger=ledger)
    assert (decision.outcome, decision.rule) == ("deny", "per_transaction")
    assert "fee 0.05 ether (gas 250000 x 200 gwei)" in decision.reason
    small = judged(ETHER // 100)  # under both gates
    assert example.evaluate(small, now=NOW, ledger=ledger).allowed
    ledger.record_signed(small, NOW)
    assert ledger.spent_since(bytes(20), NOW - 1) == ETHER // 100 + MAX_FEE


def test_messages_and_authorizations_spend_nothing() -> None:
    message = SigningRequest.personal_message(sender=bytes(20), message=b"hi")
    assert (message.max_fee, message.ether_spent) == (0, 0)
