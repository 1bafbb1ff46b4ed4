"""The wallet part of ``orbital demo``: a keystore key signs within policy, the chain
core checks what it signed, a request over the limit is refused and audited, and an
edited byte of the audit log is caught. Everything lives in a temporary directory."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from node.chain.transactions import decode_transaction
from wallet import audit as audit_log
from wallet.audit import AuditLog
from wallet.errors import AuditError, PolicyDeniedError
from wallet.keys.keystore import KeystoreSigner, create_keystore
from wallet.onboard import OnboardSigner
from wallet.policy import PolicyLedger, load_policy, pin_policy
from wallet.transactions import TransactionRequest, request_from_json

TREASURY = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
POLICY = f"""
version = 1
chain_id = 31337
[[destinations.allow]]
address = "{TREASURY}"
label = "ground treasury"
[limits]
per_transaction = "1 ether"
per_24h = "3 ether"
[fees]
max_fee_per_gas = "50 gwei"
max_total_fee = "0.01 ether"
"""


def run_wallet_demo(directory: Path, say: Callable[[str], None]) -> bool:
    """Run the wallet steps in ``directory``; return whether every outcome was right."""
    address = create_keystore(directory / "key.json", "demo password")
    signer = KeystoreSigner(directory / "key.json", "demo password")
    (directory / "policy.toml").write_text(POLICY)
    pin = pin_policy(directory / "policy.toml")
    policy = load_policy(directory / "policy.toml", pin)
    say(f"[5/6] wallet: keystore key 0x{address.hex()}, policy pinned (sha256 {pin[:12]}..)")

    def transfer(value: int, nonce: int) -> TransactionRequest:
        return request_from_json({"chainId": 31337, "nonce": nonce, "gas": 21000,
                                  "to": TREASURY, "value": value,
                                  "maxFeePerGas": "20000000000",
                                  "maxPriorityFeePerGas": "1000000000"})

    audit_path = directory / "audit.sqlite"
    with PolicyLedger(directory / "ledger.sqlite") as ledger, \
            AuditLog(audit_path, signer) as audit:
        onboard = OnboardSigner(signer, policy, ledger, audit)
        signed = onboard.sign_transaction(transfer(10**17, 0))
        decoded = decode_transaction(signed.raw)
        checked = decoded.hash == signed.hash and decoded.sender == address
        say(f"      0.1 ether within policy: signed 0x{signed.hash.hex()[:16]}.., sender "
            f"recovered by the chain core: {'ok' if checked else 'MISMATCH'}")
        try:
            onboard.sign_transaction(transfer(2 * 10**18, 1))
            say("      2 ether: SIGNED (this is a bug)")
            denied = False
        except PolicyDeniedError as exc:
            say(f"      2 ether: refused: {exc}")
            denied = True
    head = audit_log.verify(audit_path, expected_signer=address)
    say(f"      audit log: {head.seq} entries verified, head {str(head)[:24]}..")
    _edit_one_byte(audit_path)
    try:
        audit_log.verify(audit_path, expected_signer=address)
        say("      one byte of the audit database edited: NOT DETECTED (this is a bug)")
        caught = False
    except AuditError as exc:
        say(f"      one byte of the audit database edited: detected: {exc}")
        caught = True
    signer.close()
    return checked and denied and caught


def _edit_one_byte(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    at = data.index(b'"outcome":"deny"') + len(b'"outcome":"')
    data[at] = ord("a")
    path.write_bytes(bytes(data))
