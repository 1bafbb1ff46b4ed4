"""EIP-7702: the whole type-4 transaction is judged before any of its authorizations is
signed (issue #16, item 9).

Before, ``OnboardSigner.sign_transaction`` signed each authorization as a request of its
own (which passes the ``delegation`` rule alone) and only then judged the transaction: a
transaction the policy refused -- unlisted destination, value over a limit, time-locked,
short of co-signatures -- still left a signed authorization in the audit log, a delegation
of the wallet's account that anyone reading the log can put in a transaction of their own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from eth_account import Account

from wallet.audit import AuditLog
from wallet.errors import PolicyDeniedError
from wallet.onboard import OnboardSigner, transaction_signing_request
from wallet.policy import Policy, PolicyLedger, load_policy, pin_policy
from wallet.transactions import (
    JUDGEMENT_TAG,
    Authorization,
    TransactionRequest,
    judgement_digest,
    signing_digest,
)

from signers import SoftwareSigner

GWEI = 10**9
ETHER = 10**18
NOW = 1_750_000_000.0
EXAMPLE = Path(__file__).parent.parent / "configs" / "policy.example.toml"
TREASURY = bytes.fromhex("70997970C51812dc3A010C7d01b50e0d17dc79C8")
DELEGATE = bytes.fromhex("9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0")  # allow_delegates
STRANGER = bytes.fromhex("99" * 20)

def set_code(to: bytes = TREASURY, value: int = ETHER // 100, nonce: int = 0,
             delegate: bytes = DELEGATE) -> TransactionRequest:
    """A type-4 transaction whose one authorization (unsigned) the wallet's key signs."""
    return TransactionRequest(tx_type=4, chain_id=31337, nonce=nonce, gas=100_000, to=to,
                              value=value, max_fee_per_gas=20 * GWEI,
                              max_priority_fee_per_gas=GWEI,
                              authorizations=(Authorization(31337, delegate, nonce + 1),))


@pytest.fixture
def example() -> Policy:
    return load_policy(EXAMPLE, pin_policy(EXAMPLE))


@pytest.fixture
def wallet(example: Policy, tmp_path: Path) -> Iterator[tuple[OnboardSigner, SoftwareSigner,
                                                              AuditLog]]:
    signer = SoftwareSigner("7702 authority")
    with PolicyLedger(tmp_path / "ledger.sqlite") as ledger, \
            AuditLog(tmp_path / "audit.sqlite", SoftwareSigner("audit key")) as audit:
        yield OnboardSigner(signer, example, ledger, audit, clock=lambda: NOW), signer, audit


@pytest.mark.parametrize(("request_", "rule"), [
    (set_code(to=STRANGER), "destination"),  # unlisted destination
    (set_code(value=2 * ETHER), "per_transaction"),  # over the limit
    (set_code(value=ETHER // 2), "timelock"),  # time-locked (delay)
    (set_code(value=ETHER // 4), "cosign"),  # needs co-signatures
    (set_code(delegate=STRANGER), "delegation"),  # the delegation itself
], ids=["destination", "per_transaction", "timelock", "cosign", "delegation"])
def test_a_refused_type4_transaction_yields_no_authorization_signature(
        wallet: tuple[OnboardSigner, SoftwareSigner, AuditLog],
        request_: TransactionRequest, rule: str) -> None:
    onboard, signer, audit = wallet
    with pytest.raises(PolicyDeniedError) as raised:
        onboard.sign_transaction(request_)
    assert raised.value.rule == rule
    assert signer.signed == []  # the key signed nothing: no authorization, no transaction
    entries = audit.entries()
    assert [e.kind for e in entries] == ["policy_decision"]  # one judgement, of the whole
    judged = json.loads(entries[0].payload)["request"]
    assert judged["kind"] == "transaction" and judged["tx_type"] == 4
    assert judged["authorization_list"] == [{"chain_id": 31337,
                                             "address": "0x" + request_.authorizations[0]
                                             .address.hex(), "nonce": 1}]
    assert judged["digest"] == "0x" + judgement_digest(request_).hex()


def test_an_allowed_type4_transaction_is_judged_once_then_signed_whole(
        wallet: tuple[OnboardSigner, SoftwareSigner, AuditLog]) -> None:
    onboard, signer, audit = wallet
    signed = onboard.sign_transaction(set_code())
    assert signed.sender == signer.address
    auth = signed.request.authorizations[0]
    assert auth.signature is not None
    assert Account.recover_transaction(signed.raw).lower() == "0x" + signer.address.hex()
    # the authorization recovers to the key too (EIP-7702 authority)
    assert signer.signed == [auth.digest(), signing_digest(signed.request)]
    kinds = [e.kind for e in audit.entries()]
    assert kinds == ["policy_decision", "signed"]
    entry = json.loads(audit.entries()[1].payload)
    assert entry["digest"] == "0x" + signing_digest(signed.request).hex()
    assert entry["authorizations"][0]["r"] == hex(auth.signature.r)


def test_a_time_locked_type4_transaction_matures_under_the_same_request_id(
        example: Policy, tmp_path: Path) -> None:
    """The judged request is named before any signature exists, so asking again after the
    delay finds the queued entry (the signing digest would name it anew every time an HSM's
    randomised ECDSA signs the authorization)."""
    signer = SoftwareSigner("7702 authority")
    clock = [NOW]
    request = set_code(value=ETHER // 2)  # >= the time-lock threshold (0.5 ether)
    with PolicyLedger(tmp_path / "ledger.sqlite") as ledger, \
            AuditLog(tmp_path / "audit.sqlite", SoftwareSigner("audit key")) as audit:
        onboard = OnboardSigner(signer, example, ledger, audit, clock=lambda: clock[0])
        with pytest.raises(PolicyDeniedError) as raised:
            onboard.sign_transaction(request)
        assert raised.value.rule == "timelock" and signer.signed == []
        clock[0] = NOW + 6 * 3600
        operators = example.cosign.operators if example.cosign else frozenset()
        signed = onboard.sign_transaction(request, approvals=frozenset(operators))
        assert signed.request.authorizations[0].signature is not None
        assert [p.signed_at for p in ledger.pending_requests(include_closed=True)] == [clock[0]]


def test_the_judgement_digest_binds_the_transaction_before_its_authorizations_are_signed(
) -> None:
    request = set_code()
    digest = judgement_digest(request)
    assert digest == judgement_digest(set_code())  # the same request, the same name
    for changed in (set_code(value=1), set_code(nonce=5), set_code(delegate=STRANGER),
                    replace(request, access_list=((STRANGER, ()),)),
                    replace(request, max_fee_per_gas=21 * GWEI)):
        assert judgement_digest(changed) != digest
    # never a digest a signature is made over: domain-tagged, unlike the signing digest
    signer = SoftwareSigner("7702 authority")
    auth = request.authorizations[0]
    done = replace(request, authorizations=(replace(auth, signature=signer.sign_digest(
        auth.digest())),))
    assert judgement_digest(done) == signing_digest(done) != digest
    assert JUDGEMENT_TAG.startswith(b"orbital-7702-judgement")
    # the policy sees every authorization tuple of the whole transaction
    whole = transaction_signing_request(request, signer.address, digest)
    assert [(a.chain_id, a.address, a.nonce) for a in whole.authorization_list] == [
        (31337, DELEGATE, 1)]
