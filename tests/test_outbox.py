"""The outbox (node/outbox/, issue #15 point 1): offline admission checks worded as geth's
pool, fee-bump replacement, pending nonce, states, flush against a scripted upstream, and
durability under kill -9."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import coincurve
import pytest

from node.chain.transactions import (
    ACCESS_LIST,
    BLOB,
    FEE_MARKET,
    LEGACY,
    SCHEMAS,
    SECP256K1_N,
    SET_CODE,
    Transaction,
)
from node.outbox import Outbox, OutboxRefused, admit, flush
from node.outbox.store import InvalidTransition, UnknownEntry, bump_ok
from node.rpc.upstream_api import AlwaysReachable, Answer

CHAIN = 31337
KEY = coincurve.PrivateKey(bytes.fromhex(
    "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"))
TO = bytes.fromhex("70997970c51812dc3a010c7d01b50e0d17dc79c8")
GWEI = 10**9


def sign_tx(key: coincurve.PrivateKey, tx_type: int = FEE_MARKET, *, chain_id: int | None = CHAIN,
            high_s: bool = False, **fields: Any) -> bytes:
    """A signed raw transaction of ``tx_type`` (defaults: nonce 0, 21000 gas, 1 gwei fees,
    a transfer to :data:`TO`), signed by ``key``."""
    defaults: dict[str, Any] = {
        "chainId": chain_id, "nonce": 0, "gasPrice": GWEI, "maxPriorityFeePerGas": GWEI,
        "maxFeePerGas": 2 * GWEI, "gas": 21_000, "to": TO, "value": 1, "input": b"",
        "accessList": (), "authorizationList": (), "maxFeePerBlobGas": 1,
        "blobVersionedHashes": (b"\x01" + b"\0" * 31,),
        "v": 27 if chain_id is None else chain_id * 2 + 35, "yParity": 0, "r": 1, "s": 1}
    defaults.update(fields)
    names = [name for name, _ in SCHEMAS[tx_type]]
    unsigned = Transaction(tx_type, tuple(defaults[n] for n in names))
    sig = key.sign_recoverable(unsigned.signing_hash(), hasher=None)
    r, s, parity = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), sig[64]
    if high_s:
        s, parity = SECP256K1_N - s, parity ^ 1
    if tx_type == LEGACY:
        v = 27 + parity if chain_id is None else chain_id * 2 + 35 + parity
        tail = (v, r, s)
    else:
        tail = (parity, r, s)
    return Transaction(tx_type, unsigned.values[:-3] + tail).encoded


def refused(raw: bytes, **kw: Any) -> str:
    with pytest.raises(OutboxRefused) as info:
        admit(raw, chain_id=kw.pop("chain_id", CHAIN), verified_nonce=kw.pop("verified_nonce", 0),
              **kw)
    return str(info.value)


# -- checks ----------------------------------------------------------------------------------

@pytest.mark.parametrize("tx_type", [LEGACY, ACCESS_LIST, FEE_MARKET])
def test_admit_accepts_each_envelope_and_recovers_sender(tx_type: int) -> None:
    raw = sign_tx(KEY, tx_type, nonce=3)
    a = admit(raw, chain_id=CHAIN, verified_nonce=3)
    assert a.sender.hex() == "f39fd6e51aad88f6f4ce6ab8827279cfffb92266"
    assert (a.nonce, a.chain_id, a.intrinsic_gas) == (3, CHAIN, 21_000)


def test_admit_set_code_costs_per_authorization() -> None:
    auth = (CHAIN, TO, 0, 0, 1, 1)
    raw = sign_tx(KEY, SET_CODE, authorizationList=(auth, auth), gas=21_000 + 50_000)
    assert admit(raw, chain_id=CHAIN, verified_nonce=0).intrinsic_gas == 71_000
    low = sign_tx(KEY, SET_CODE, authorizationList=(auth, auth), gas=70_999)
    assert refused(low).startswith("intrinsic gas too low: gas 70999, minimum needed 71000")
    assert refused(sign_tx(KEY, SET_CODE)) == "EIP-7702 transaction with empty auth list"


def test_wrong_chain_refused() -> None:
    assert refused(sign_tx(KEY, chain_id=1)).startswith(
        "invalid chain id for signer: transaction for chain 1, this node serves chain 31337")
    assert "chain 1" in refused(sign_tx(KEY, LEGACY, chain_id=1))


def test_pre_eip155_refused_unless_allowed() -> None:
    raw = sign_tx(KEY, LEGACY, chain_id=None)
    assert refused(raw).startswith("only replay-protected (EIP-155) transactions allowed")
    assert admit(raw, chain_id=CHAIN, verified_nonce=0, allow_unprotected=True).chain_id is None


@pytest.mark.parametrize("tx_type", [LEGACY, FEE_MARKET])
def test_high_s_refused(tx_type: int) -> None:
    assert refused(sign_tx(KEY, tx_type, high_s=True)).startswith(
        "invalid transaction v, r, s values: s is in the upper half")
    assert "upper half" in refused(sign_tx(KEY, LEGACY, chain_id=None, high_s=True),
                                   allow_unprotected=True)


def test_bad_signature_and_garbage() -> None:
    tx = Transaction(FEE_MARKET, (CHAIN, 0, 1, 2, 21_000, TO, 0, b"", (), 0, 0, 1))
    assert refused(tx.encoded).startswith("invalid sender: signature r or s out of range")
    assert refused(b"\x02\xc0").startswith("invalid transaction: ")
    assert refused(b"").startswith("invalid transaction: empty transaction")


def test_size_limit() -> None:
    data = b"\x01" * (128 * 1024)
    assert refused(sign_tx(KEY, input=data, gas=30_000_000)).startswith(
        "oversized data: transaction size")
    ok = sign_tx(KEY, input=b"\x01" * 100_000, gas=30_000_000)
    assert len(ok) <= 128 * 1024
    admit(ok, chain_id=CHAIN, verified_nonce=0)


def test_blob_refused() -> None:
    assert refused(sign_tx(KEY, BLOB)).startswith("transaction type not supported: blob")


def test_intrinsic_gas_calldata_eip2028() -> None:
    data = b"\0" * 10 + b"\x01" * 10  # 10*4 + 10*16 = 200 (floor: 21000 + 10*50 = 21500)
    access = ((TO, ()),)  # 2400, so that the intrinsic gas is above the EIP-7623 floor
    assert admit(sign_tx(KEY, input=data, accessList=access, gas=23_600), chain_id=CHAIN,
                 verified_nonce=0).intrinsic_gas == 23_600
    assert refused(sign_tx(KEY, input=data, accessList=access, gas=23_599)) == (
        "intrinsic gas too low: gas 23599, minimum needed 23600")
    assert refused(sign_tx(KEY, gas=20_999)).startswith("intrinsic gas too low")


def test_intrinsic_gas_creation_eip3860_and_limit() -> None:
    code = b"\x60" * 33  # 33*16 = 528, 2 words * 2 = 4
    need = 53_000 + 528 + 4
    assert admit(sign_tx(KEY, to=b"", input=code, gas=need), chain_id=CHAIN,
                 verified_nonce=0).intrinsic_gas == need
    assert refused(sign_tx(KEY, to=b"", input=code, gas=need - 1)).startswith(
        "intrinsic gas too low")
    assert refused(sign_tx(KEY, to=b"", input=b"\x60" * 49_153, gas=30_000_000)).startswith(
        "max initcode size exceeded: code size 49153, limit 49152")


def test_intrinsic_gas_access_list_eip2930() -> None:
    access = ((TO, (b"\0" * 32, b"\1" * 32)), (b"\2" * 20, ()))
    need = 21_000 + 2 * 2_400 + 2 * 1_900
    for tx_type in (ACCESS_LIST, FEE_MARKET):
        assert admit(sign_tx(KEY, tx_type, accessList=access, gas=need), chain_id=CHAIN,
                     verified_nonce=0).intrinsic_gas == need
        assert refused(sign_tx(KEY, tx_type, accessList=access, gas=need - 1)).startswith(
            "intrinsic gas too low")


def test_calldata_floor_eip7623() -> None:
    data = b"\x01" * 1000  # intrinsic 21000 + 16000; floor 21000 + 10*4000 = 61000
    assert admit(sign_tx(KEY, input=data, gas=61_000), chain_id=CHAIN,
                 verified_nonce=0).intrinsic_gas == 61_000
    assert refused(sign_tx(KEY, input=data, gas=60_999)) == (
        "insufficient gas for floor data gas cost: gas 60999, minimum needed 61000 (EIP-7623)")


def test_nonce_below_verified_refused() -> None:
    message = refused(sign_tx(KEY, nonce=4), verified_nonce=5)
    assert message.startswith("nonce too low: address 0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
                              ", tx: 4 state: 5")
    admit(sign_tx(KEY, nonce=9), chain_id=CHAIN, verified_nonce=5)  # a gap is allowed


def test_tip_above_fee_cap_refused() -> None:
    assert refused(sign_tx(KEY, maxPriorityFeePerGas=3, maxFeePerGas=2)).startswith(
        "max priority fee per gas higher than max fee per gas")


def test_unknown_kind_refused() -> None:
    assert refused(sign_tx(KEY), kind="audit").startswith("unknown outbox entry kind")


# -- store -----------------------------------------------------------------------------------

@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    clock = iter(range(1, 10**6))
    box = Outbox(tmp_path / "outbox.sqlite", clock=lambda: float(next(clock)))
    yield box
    box.close()


def put(box: Outbox, verified: int = 0, key: coincurve.PrivateKey = KEY, **fields: Any):
    return box.add(admit(sign_tx(key, **fields), chain_id=CHAIN, verified_nonce=verified))


def test_add_is_idempotent_and_queued(outbox: Outbox) -> None:
    first = put(outbox)
    assert first.state == "queued" and first.kind == "transaction"
    assert put(outbox) == first
    assert outbox.entries() == [first] and outbox.get(first.hash) == first
    raw = sign_tx(KEY, nonce=1)
    cert = outbox.add(admit(raw, chain_id=CHAIN, verified_nonce=0, kind="certificate"))
    assert cert.kind == "certificate"
    assert outbox.counts()["queued"] == 2


def test_replacement_needs_ten_percent_on_both_caps(outbox: Outbox) -> None:
    old = put(outbox, maxFeePerGas=100_000, maxPriorityFeePerGas=10_000)
    with pytest.raises(OutboxRefused, match=r"^replacement transaction underpriced"):
        put(outbox, maxFeePerGas=109_990, maxPriorityFeePerGas=10_999)  # 9.99 %
    with pytest.raises(OutboxRefused, match=r"^replacement transaction underpriced"):
        put(outbox, maxFeePerGas=200_000, maxPriorityFeePerGas=10_999)  # tip only 9.99 %
    new = put(outbox, maxFeePerGas=110_000, maxPriorityFeePerGas=11_000)  # exactly 10 %
    assert new.state == "queued"
    dropped = outbox.get(old.hash)
    assert dropped is not None and dropped.state == "dropped"
    assert dropped.reason == f"replaced by 0x{new.hash.hex()}"
    assert [e.hash for e in outbox.to_send()] == [new.hash]


def test_legacy_replacement_by_gas_price(outbox: Outbox) -> None:
    outbox.add(admit(sign_tx(KEY, LEGACY, gasPrice=1000), chain_id=CHAIN, verified_nonce=0))
    with pytest.raises(OutboxRefused, match="underpriced"):
        outbox.add(admit(sign_tx(KEY, LEGACY, gasPrice=1099), chain_id=CHAIN, verified_nonce=0))
    outbox.add(admit(sign_tx(KEY, LEGACY, gasPrice=1100), chain_id=CHAIN, verified_nonce=0))
    assert bump_ok(10**30, 10**30, 11 * 10**29, 11 * 10**29)  # u256-sized fees
    assert not bump_ok(10**30, 10**30, 11 * 10**29 - 1, 11 * 10**29)


def test_included_nonce_cannot_be_replaced(outbox: Outbox) -> None:
    e = put(outbox)
    outbox.mark_included(e.hash, 7, b"\7" * 32)
    with pytest.raises(OutboxRefused, match=r"^nonce too low"):
        put(outbox, maxFeePerGas=10 * GWEI, maxPriorityFeePerGas=5 * GWEI)


def test_pending_nonce_with_gaps(outbox: Outbox) -> None:
    sender = put(outbox, verified=5, nonce=5).sender
    put(outbox, verified=5, nonce=6)
    put(outbox, verified=5, nonce=8)  # gap at 7
    assert outbox.pending_nonce(sender, 5) == 7
    assert outbox.pending_nonce(sender, 4) == 4  # nothing queued at 4
    assert outbox.pending_nonce(b"\0" * 20, 3) == 3
    assert [e.nonce for e in outbox.to_send()] == [5, 6]
    put(outbox, verified=5, nonce=7)
    assert outbox.pending_nonce(sender, 5) == 9
    assert [e.nonce for e in outbox.to_send()] == [5, 6, 7, 8]


def test_to_send_orders_by_nonce_per_sender(outbox: Outbox) -> None:
    other = coincurve.PrivateKey(b"\x11" * 32)
    for n in (2, 0, 1):
        put(outbox, nonce=n)
    put(outbox, key=other, nonce=1)  # not contiguous from 0: held back
    assert [e.nonce for e in outbox.to_send()] == [0, 1, 2]
    put(outbox, key=other, nonce=0)
    order = [(e.sender, e.nonce) for e in outbox.to_send()]
    mine, theirs = order[0][0], order[3][0]
    assert order == [(mine, 0), (mine, 1), (mine, 2), (theirs, 0), (theirs, 1)]


def test_state_transitions(outbox: Outbox) -> None:
    a, b, c, d = (put(outbox, nonce=n) for n in range(4))
    assert outbox.mark_sent(a.hash).state == "sent"
    assert outbox.mark_sent(a.hash).attempts == 2
    refused_ = outbox.mark_sent(b.hash, error="insufficient funds")
    assert (refused_.state, refused_.last_error, refused_.attempts) == (
        "queued", "insufficient funds", 1)
    inc = outbox.mark_included(a.hash, 10, b"\xaa" * 32)
    assert (inc.state, inc.block_number, inc.block_hash) == ("included", 10, b"\xaa" * 32)
    assert outbox.mark_final(9) == []
    assert [e.state for e in outbox.mark_final(10)] == ["final"]
    with pytest.raises(InvalidTransition, match="it is final"):
        outbox.mark_sent(a.hash)
    assert outbox.drop(c.hash).reason == "dropped by operator"
    assert outbox.mark_dropped(d.hash, "nonce taken").state == "dropped"
    assert [e.hash for e in outbox.to_send()] == [b.hash]
    outbox.mark_sent(b.hash)
    outbox.mark_included(b.hash, 11, b"\xbb" * 32)
    assert outbox.mark_reorged(b.hash).state == "sent"
    with pytest.raises(UnknownEntry, match=r"^no outbox entry 0x00"):
        outbox.drop(b"\0" * 32)


def test_settle_and_expire(outbox: Outbox) -> None:
    a = put(outbox, nonce=0)
    b = put(outbox, nonce=1)
    outbox.mark_sent(b.hash)
    c = put(outbox, nonce=2)
    (settled,) = outbox.settle(a.sender, 1)  # nonce 0 taken elsewhere
    assert settled.hash == a.hash and settled.reason.startswith("nonce taken")
    expired = outbox.expire(older_than=10**9)
    assert [e.hash for e in expired] == [c.hash]  # sent b may still be mined
    assert outbox.get(b.hash).state == "sent"
    # an expired transaction can be submitted again
    assert put(outbox, nonce=2).state == "queued"


def test_included_drops_rival_holding_nonce(outbox: Outbox) -> None:
    old = put(outbox, maxFeePerGas=100, maxPriorityFeePerGas=10)
    outbox.mark_sent(old.hash)
    new = put(outbox, maxFeePerGas=110, maxPriorityFeePerGas=11)
    outbox.mark_included(old.hash, 3, b"\3" * 32)  # the replaced one was mined after all
    assert outbox.get(new.hash).reason == f"nonce taken by 0x{old.hash.hex()}"
    assert outbox.get(old.hash).state == "included"


def test_reopen_resumes(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    with Outbox(path) as box:
        e = put(box)
        box.mark_sent(e.hash)
    with Outbox(path) as box:
        assert box.get(e.hash).state == "sent"
        assert box.to_send()[0].hash == e.hash


def test_a_broadcast_answered_after_the_operator_dropped_the_entry(outbox: Outbox) -> None:
    """Another process (``orbital node outbox drop``) drops an entry between to_send() and
    the upstream's answer: the batch is still recorded, the drop stands, and the
    acknowledgement is kept (the upstream holds it: its receipt is still asked for)."""
    _a, b, c = (put(outbox, nonce=n) for n in range(3))
    batch = outbox.to_send()
    with Outbox(outbox_path(outbox)) as other:
        other.drop(c.hash)
    marked = outbox.mark_sent_many([(e.hash, None) for e in batch])
    assert [e.state for e in marked] == ["sent", "sent", "dropped"]
    dropped = outbox.get(c.hash)
    assert dropped.reason == "dropped by operator" and dropped.sent_at is not None
    assert outbox.mark_sent(c.hash, error="nonce too low").last_error == "nonce too low"
    with pytest.raises(UnknownEntry):
        outbox.mark_sent_many([(b.hash, None), (b"\5" * 32, None)])
    assert outbox.get(b.hash).attempts == 1  # the failed batch was rolled back whole


def outbox_path(box: Outbox) -> str:
    return box._db.execute("PRAGMA database_list").fetchone()[2]


def test_queued_form_is_the_decoded_transaction_with_null_block_fields(outbox: Outbox) -> None:
    from node.outbox.render import queued_transaction_json

    e = put(outbox, nonce=3, maxFeePerGas=7 * GWEI, maxPriorityFeePerGas=2 * GWEI,
            input=b"\1\2", accessList=((TO, (b"\0" * 32,)),), gas=30_000)
    got = queued_transaction_json(e)
    assert {k: got[k] for k in ("blockHash", "blockNumber", "blockTimestamp",
                                "transactionIndex")} == dict.fromkeys(
        ("blockHash", "blockNumber", "blockTimestamp", "transactionIndex"))
    assert got["hash"] == "0x" + e.hash.hex() and got["from"] == "0x" + e.sender.hex()
    assert (got["nonce"], got["gas"], got["input"], got["type"], got["chainId"]) == (
        "0x3", hex(30_000), "0x0102", "0x2", hex(CHAIN))
    assert (got["maxFeePerGas"], got["maxPriorityFeePerGas"], got["gasPrice"]) == (
        hex(7 * GWEI), hex(2 * GWEI), hex(7 * GWEI))  # geth: the fee cap until mined
    assert got["accessList"] == [{"address": "0x" + TO.hex(), "storageKeys": ["0x" + "00" * 32]}]
    assert got["v"] == got["yParity"] and got["to"] == "0x" + TO.hex()
    legacy = outbox.add(admit(sign_tx(KEY, LEGACY, nonce=4), chain_id=CHAIN, verified_nonce=0))
    got = queued_transaction_json(legacy)
    assert got["gasPrice"] == hex(GWEI) and "maxFeePerGas" not in got and "yParity" not in got
    assert got["chainId"] == hex(CHAIN) and int(got["v"], 16) in (CHAIN * 2 + 35, CHAIN * 2 + 36)


async def test_reconcile_settles_reorgs_finalizes_and_expires(outbox: Outbox) -> None:
    from node.chain.anchor import BlockId
    from node.outbox.reconcile import expire_old, finalize, reorged, settle_nonces

    other = coincurve.PrivateKey(b"\x11" * 32)
    a, b, c = (put(outbox, nonce=n) for n in range(3))
    x = put(outbox, key=other, nonce=0)
    canonical = {5: b"\5" * 32, 6: b"\6" * 32}
    mined = {a.hash: {"blockNumber": "0x5", "blockHash": "0x" + "05" * 32}}

    async def receipts(h: bytes) -> dict[str, Any] | None:
        return mined.get(h)

    async def nonce(sender: bytes) -> int | None:
        return 2 if sender == a.sender else None  # the other sender: no proof now

    included, dropped = await settle_nonces(outbox, nonce, receipts)
    assert [e.hash for e in included] == [a.hash]  # mined: found by its receipt
    assert [(e.hash, e.reason) for e in dropped] == [
        (b.hash, "nonce taken by another transaction (verified nonce 2)")]
    assert outbox.get(c.hash).state == "queued" and outbox.get(x.hash).state == "queued"
    assert {e.hash for e in outbox.to_send()} == {c.hash, x.hash}  # c: from verified nonce 2

    outbox.mark_sent(c.hash)
    outbox.mark_included(c.hash, 6, b"\x66" * 32)  # a block a reorg then replaced
    assert finalize(outbox, BlockId(6, canonical[6]), canonical.get) == [
        outbox.get(a.hash)] and outbox.get(a.hash).state == "final"
    assert [e.hash for e in reorged(outbox, canonical.get)] == [c.hash]
    assert outbox.get(c.hash).state == "sent" and outbox.get(c.hash).block_hash is None
    assert c.hash in [e.hash for e in outbox.to_send()]  # broadcast again
    outbox.mark_included(c.hash, 7, b"\7" * 32)
    assert reorged(outbox, canonical.get) == []  # no canonical header at 7: cannot tell
    assert finalize(outbox, BlockId(6, canonical[6]), canonical.get) == []
    assert finalize(outbox, None, canonical.get) == []
    assert outbox.get(c.hash).state == "included"

    late = put(outbox, key=other, nonce=1)
    now = outbox.get(late.hash).queued_at
    assert expire_old(outbox, now, 100) == []
    assert {e.hash for e in expire_old(outbox, now + 0.5, 0.1)} == {x.hash, late.hash}
    assert outbox.get(x.hash).state == "expired"


# -- flush against a scripted upstream ---------------------------------------------------------

class ScriptedUpstream(AlwaysReachable):
    """Answers eth_sendRawTransaction from ``errors`` (hash -> message) or with the hash."""

    def __init__(self, errors: dict[str, str] | None = None) -> None:
        self.errors = errors or {}
        self.sent: list[str] = []

    async def call(self, method: str, params: Sequence[Any]) -> Answer:
        return (await self.batch([(method, params)]))[0]

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Answer]:
        out = []
        for _method, (raw,) in calls:
            self.sent.append(raw)
            message = self.errors.get(raw)
            out.append(Answer(None, "scripted", {"code": -32000, "message": message})
                       if message else Answer("0x", "scripted"))
        return out

    def penalize(self, answer: Answer, what: str) -> None:
        pass


async def test_flush_marks_sent_then_included_by_receipts(outbox: Outbox) -> None:
    entries = [put(outbox, nonce=n) for n in range(5)]
    mined: dict[bytes, dict[str, Any]] = {}

    async def receipts(h: bytes) -> dict[str, Any] | None:
        return mined.get(h)

    up = ScriptedUpstream({"0x" + entries[4].raw.hex(): "insufficient funds for gas * price"})
    report = await flush(outbox, up, budget_seconds=5, receipts=receipts, batch_size=2)
    assert report.complete and report.batches == 3
    assert len(report.sent) == 4 and report.included == []
    assert report.failed == {entries[4].hash: "insufficient funds for gas * price"}
    assert (report.remaining, report.awaiting) == (1, 4)
    mined.update({e.hash: {"blockNumber": "0x5", "blockHash": "0x" + "ab" * 32}
                  for e in entries[:2]})
    report = await flush(outbox, up, budget_seconds=5, receipts=receipts)
    assert set(report.included) == {entries[0].hash, entries[1].hash}
    assert outbox.get(entries[0].hash).block_number == 5


async def test_flush_rebroadcasts_once_per_contact_not_once_per_refresh(outbox: Outbox
                                                                         ) -> None:
    """With ``resend_before`` (when the contact began), what was acknowledged in this
    contact is not sent again at the next refresh; at the next contact it is."""
    a, b = put(outbox, nonce=0), put(outbox, nonce=1)
    up = ScriptedUpstream()

    async def none(h: bytes) -> None:
        return None

    first_contact = outbox.get(a.hash).queued_at
    await flush(outbox, up, budget_seconds=5, receipts=none, resend_before=first_contact)
    assert up.sent == ["0x" + a.raw.hex(), "0x" + b.raw.hex()]
    c = put(outbox, nonce=2)  # queued later in the same contact
    await flush(outbox, up, budget_seconds=5, receipts=none, resend_before=first_contact)
    assert up.sent[2:] == ["0x" + c.raw.hex()]  # a and b were not sent again
    next_contact = outbox.get(c.hash).sent_at + 1  # type: ignore[operator]
    await flush(outbox, up, budget_seconds=5, receipts=none, resend_before=next_contact)
    assert up.sent[3:] == ["0x" + e.raw.hex() for e in (a, b, c)]  # rebroadcast, in order
    await flush(outbox, up, budget_seconds=5, receipts=none)  # no contact known: every flush
    assert len(up.sent) == 9


async def test_flush_nonce_too_low_asks_receipt_and_already_known_is_ack(outbox: Outbox) -> None:
    a, b = put(outbox, nonce=0), put(outbox, nonce=1)
    up = ScriptedUpstream({"0x" + a.raw.hex(): "nonce too low",
                           "0x" + b.raw.hex(): "already known"})

    async def receipts(h: bytes) -> dict[str, Any] | None:
        return {"blockNumber": 1, "blockHash": b"\1" * 32} if h == a.hash else None

    report = await flush(outbox, up, budget_seconds=5, receipts=receipts)
    assert report.included == [a.hash] and report.sent == [b.hash]
    assert outbox.get(a.hash).state == "included" and outbox.get(b.hash).state == "sent"


async def test_flush_budget_too_short_resumes(outbox: Outbox) -> None:
    for n in range(6):
        put(outbox, nonce=n)

    class Slow(ScriptedUpstream):
        async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Answer]:
            await asyncio.sleep(0.05)  # the link's latency, not synchronisation
            return await super().batch(calls)

    async def none(h: bytes) -> None:
        return None

    up = Slow()
    report = await flush(outbox, up, budget_seconds=0.12, receipts=none, batch_size=2)
    assert not report.complete and report.error.startswith("budget")
    assert 0 < len(report.sent) < 6
    report = await flush(outbox, up, budget_seconds=5, receipts=none, batch_size=2)
    assert report.complete and outbox.counts()["sent"] == 6


# -- durability under kill -9 ------------------------------------------------------------------

CHILD = textwrap.dedent("""
    import sys
    from node.outbox import Outbox, admit
    box = Outbox(sys.argv[1])
    for line in open(sys.argv[2]):
        raw = bytes.fromhex(line.strip())
        entry = box.add(admit(raw, chain_id=31337, verified_nonce=0))
        sys.stdout.write(entry.hash.hex() + "\\n")
        sys.stdout.flush()
""")


@pytest.mark.slow
def test_kill_9_during_add_loses_nothing_returned(tmp_path: Path) -> None:
    raws = [sign_tx(KEY, nonce=n) for n in range(400)]
    src = tmp_path / "raws.txt"
    src.write_text("".join(r.hex() + "\n" for r in raws))
    db = tmp_path / "outbox.sqlite"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    acknowledged: set[str] = set()
    for round_ in range(6):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(db), str(src)],
                                 stdout=subprocess.PIPE, env=env, text=True)
        assert child.stdout is not None
        for lines, line in enumerate(child.stdout, 1):  # kill it while it adds
            acknowledged.add(line.strip())
            if lines == 7 + 5 * round_:
                break
        child.send_signal(signal.SIGKILL)
        rest = child.stdout.read()  # lines written before the kill were acknowledged too
        acknowledged.update(h for h in rest.split() if len(h) == 64)
        child.wait()
        check = sqlite3.connect(db)
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        check.close()
        with Outbox(db) as box:
            entries = {e.hash.hex(): e for e in box.entries()}
            assert acknowledged <= set(entries)
            for e in entries.values():  # none half-written
                assert e.state == "queued"
                assert e.raw == raws[e.nonce]
                assert admit(e.raw, chain_id=CHAIN, verified_nonce=0).hash == e.hash


# -- orbital node outbox, locating the file ----------------------------------------------------

def test_outbox_cli_finds_the_file_by_config_data_dir_or_path(tmp_path: Path,
                                                              capsys: Any) -> None:
    from node.cli.main import main

    (tmp_path / "elsewhere").mkdir()
    with Outbox(tmp_path / "elsewhere" / "box.sqlite") as box:
        entry = put(box, nonce=4)
    config = tmp_path / "node.toml"
    config.write_text('[node]\nchain_id = 31337\ndata_dir = "data"\n'
                      '[upstreams]\nurls = ["http://127.0.0.1:1"]\n[trust]\nmode = "quorum"\n'
                      '[outbox]\npath = "elsewhere/box.sqlite"\n')
    for where in (["--config", str(config)], ["--outbox", str(tmp_path / "elsewhere" /
                                                              "box.sqlite")]):
        assert main(["node", "outbox", "list", *where]) == 0
        assert f"0x{entry.hash.hex()}  queued" in capsys.readouterr().out
    assert main(["node", "outbox", "list", "--data-dir", str(tmp_path)]) == 2  # no such file
    assert "no outbox at" in capsys.readouterr().err
    assert not (tmp_path / "outbox.sqlite").exists()  # and none was created
    config.write_text(config.read_text() + "colour = 1\n")
    assert main(["node", "outbox", "list", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "outbox.colour" in err and len(err.splitlines()) == 1
    with pytest.raises(SystemExit):  # exactly one way to locate it
        main(["node", "outbox", "list", "--config", str(config), "--data-dir", str(tmp_path)])


# -- the wallet's queue is an outbox -------------------------------------------------------------

def test_wallet_queue_is_an_outbox_and_imports_a_legacy_queue(tmp_path: Path,
                                                             capsys: Any) -> None:
    """``orbital wallet queue list`` reads HOME/outbox.sqlite; what an older version left
    unsent in HOME/queue.sqlite (wallet/queue.py's table) is admitted into it once."""
    from node.cli.main import main
    from wallet.config import WalletConfig, save_config

    home = tmp_path / "home"
    save_config(WalletConfig(home, chain_id=CHAIN))
    raws = [sign_tx(KEY, nonce=n) for n in range(3)]
    legacy = sqlite3.connect(home / "queue.sqlite")
    legacy.executescript("CREATE TABLE queued (id INTEGER PRIMARY KEY, tx_hash BLOB NOT NULL "
                         "UNIQUE, raw BLOB NOT NULL, queued_at REAL NOT NULL, origin TEXT NOT "
                         "NULL, sent_at REAL);")
    for n, raw in enumerate(raws):
        admitted = admit(raw, chain_id=CHAIN, verified_nonce=0)
        legacy.execute("INSERT INTO queued VALUES (?, ?, ?, 1.0, 'command nonce 1', ?)",
                       (n + 1, admitted.hash, raw, 2.0 if n == 0 else None))  # 0 was sent
    legacy.commit()
    legacy.close()

    assert main(["wallet", "--home", str(home), "queue", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    hashes = ["0x" + admit(r, chain_id=CHAIN, verified_nonce=0).hash.hex() for r in raws]
    assert [line.split()[0] for line in lines] == hashes[1:]
    assert lines[0].endswith("nonce 1")
    assert not (home / "queue.sqlite").exists() and (home / "queue.sqlite.imported").exists()
    assert main(["wallet", "--home", str(home), "queue", "list"]) == 0  # imported once
    assert len(capsys.readouterr().out.splitlines()) == 2
    with Outbox(home / "outbox.sqlite") as box:
        assert box.counts()["queued"] == 2

    (home / "queue.sqlite").write_bytes(b"not sqlite at all, " * 100)
    assert main(["wallet", "--home", str(home), "queue", "list"]) == 2
    assert "not a signed-transaction queue" in capsys.readouterr().err
    (home / "queue.sqlite").unlink()
    wrong_chain = tmp_path / "other"
    save_config(WalletConfig(wrong_chain, chain_id=1))
    legacy = sqlite3.connect(wrong_chain / "queue.sqlite")
    legacy.executescript("CREATE TABLE queued (id INTEGER PRIMARY KEY, tx_hash BLOB, raw BLOB, "
                         "queued_at REAL, origin TEXT, sent_at REAL);")
    legacy.execute("INSERT INTO queued VALUES (1, x'00', ?, 1.0, 'x', NULL)", (raws[0],))
    legacy.commit()
    legacy.close()
    assert main(["wallet", "--home", str(wrong_chain), "queue", "list"]) == 7
    err = capsys.readouterr().err
    assert "outbox refused it: invalid chain id" in err and len(err.splitlines()) == 1
    assert (wrong_chain / "queue.sqlite").exists()  # nothing lost: not renamed
