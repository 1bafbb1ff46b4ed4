"""Issue #16 items 1 and 2: only m-of-n operators change what the signer obeys (the seal),
and spending state that cannot be edited (derived from the signed audit log). Each attack
of the issue is a regression test through the CLI (it failed on the code before).

Threat model: the signer and the HSM are trusted; every file is not; operators are
trusted only as m-of-n."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from test_signer_hardening import (
    ETHER,
    KEY,
    PAYEE,
    POLICY,
    TIMELOCK_POLICY,
    _envelope,
    _wallet,
    orbital,
)

from node.testing.pytest_plugin import SoftHsmToken
from wallet.audit import AuditLog
from wallet.config import WalletConfig, load_config, save_config
from wallet.keys.keystore import create_keystore, keystore_address
from wallet.policy import pin_policy

ATTACKER_KEY = bytes.fromhex("47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a")
LOOSE = POLICY.replace('per_transaction = "1 ether"', 'per_transaction = "100 ether"') \
              .replace('per_24h = "1 ether"', 'per_24h = "100 ether"') \
              .replace('max_total_fee = "0.01 ether"', 'max_total_fee = "1 ether"')


def _transfer(value: int, nonce: int = 0) -> list[str]:
    return ["wallet", "sign-tx", "--to", PAYEE, "--value", str(value), "--nonce", str(nonce),
            "--gas", "21000", "--max-fee", "1000000000"]


def _attacker(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "attacker.json"
    if not path.exists():
        create_keystore(path, "pw", private_key=ATTACKER_KEY, kdf="pbkdf2", iterations=2)
    address = keystore_address(path)
    assert address is not None
    return path, "0x" + address.hex()


def _opened(env: dict[str, str]) -> None:
    """Open the wallet once (its first open seals it)."""
    done = orbital(env, "wallet", "sign-message", "hello")
    assert done.returncode == 0, done.stderr


def _one_line(done: object) -> str:
    stderr = done.stderr.strip()  # type: ignore[attr-defined]
    assert len(stderr.splitlines()) == 1 and "Traceback" not in stderr, stderr
    return stderr


# --------------------------------------------------------------------------- item 1


def test_a_local_policy_re_pin_only_proposes_and_operators_apply_it(tmp_path: Path) -> None:
    """`orbital wallet policy pin loose.toml` on a sealed wallet changes nothing (before, it
    re-pinned and a 50 ether transfer was signed under a 1 ether limit): it writes a
    set_policy proposal; one operator (m = 1) signs it, run-command applies it, audited."""
    env = _wallet(tmp_path, "a", KEY, satellite="sat-a")
    home = tmp_path / "a"
    _opened(env)
    before = (home / "wallet.toml").read_text()
    (tmp_path / "loose.toml").write_text(LOOSE)
    proposal = tmp_path / "set_policy.json"
    done = orbital(env, "wallet", "policy", "pin", str(tmp_path / "loose.toml"),
                   "--out", str(proposal))
    assert done.returncode == 0, done.stderr
    assert "nothing changed" in done.stdout and "ground command --kind set_policy" in done.stdout
    assert (home / "wallet.toml").read_text() == before
    assert json.loads(proposal.read_text()) == {"sha256": pin_policy(tmp_path / "loose.toml")}
    refused = orbital(env, *_transfer(50 * ETHER))
    assert refused.returncode == 3 and "per_transaction" in refused.stderr, refused.stderr

    envelope = _envelope(tmp_path, env, "sat-a", 1, "set_policy",
                         json.loads(proposal.read_text()))
    done = orbital(env, "wallet", "run-command", str(envelope), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["applied"] == "set_policy"
    signed = orbital(env, *_transfer(50 * ETHER, 1))
    assert signed.returncode == 0, signed.stderr
    entries = json.loads(orbital(env, "wallet", "audit", "export").stdout)["entries"]
    sealed = [json.loads(bytes.fromhex(e["payload"][2:])) for e in entries
              if e["kind"] == "wallet_sealed"]
    assert [s["reason"] for s in sealed] == ["first open", "command set_policy"]
    assert sealed[-1]["nonce"] == 1
    assert orbital(env, "wallet", "audit", "verify").returncode == 0


def test_config_set_operators_only_proposes(tmp_path: Path) -> None:
    """`config set --operators ATTACKER --threshold 1` on a sealed wallet changes nothing
    (before, the attacker's own one-signature command then signed a 50 ether transfer); the
    proposal, signed by the real operator, does change the operators."""
    env = _wallet(tmp_path, "a", KEY, satellite="sat-a")
    home = tmp_path / "a"
    _opened(env)
    attacker_keystore, attacker = _attacker(tmp_path)
    before = (home / "wallet.toml").read_text()
    done = orbital(env, "wallet", "config", "set", "--operators", attacker, "--threshold", "1",
                   "--out", str(tmp_path / "ops.json"))
    assert done.returncode == 0 and "nothing changed" in done.stdout, done.stderr
    assert (home / "wallet.toml").read_text() == before
    for argv in (["--chain-id", "1"], ["--satellite", "sat-b"]):
        done = orbital(env, "wallet", "config", "set", *argv)
        assert done.returncode == 0 and "nothing changed" in done.stdout, done.stderr
    assert (home / "wallet.toml").read_text() == before
    refused = orbital(env, "wallet", "config", "set", "--key", attacker)
    assert refused.returncode == 2, refused.stderr

    payload = tmp_path / "steal.json"
    payload.write_text(json.dumps({"type": 2, "chainId": 31337, "nonce": 0, "gas": 21000,
                                   "to": PAYEE, "value": str(50 * ETHER),
                                   "maxFeePerGas": "1000000000",
                                   "maxPriorityFeePerGas": "0"}))
    forged = tmp_path / "forged.json"
    done = orbital(env, "ground", "command", "--payload", str(payload), "--nonce", "1",
                   "--satellite", "sat-a", "--chain-id", "31337", "--keystore",
                   str(attacker_keystore), "--out", str(forged))
    assert done.returncode == 0, done.stderr
    refused = orbital(env, "wallet", "run-command", str(forged))
    assert refused.returncode == 9 and "not a known operator" in refused.stderr, refused.stderr

    # the real operator hands over to a new set (the attacker's key, for the test's sake)
    envelope = _envelope(tmp_path, env, "sat-a", 2, "set_operators",
                         json.loads((tmp_path / "ops.json").read_text()), "ops-env.json")
    done = orbital(env, "wallet", "run-command", str(envelope))
    assert done.returncode == 0, done.stderr
    assert load_config(home).operators == (bytes.fromhex(attacker[2:]),)
    old = _envelope(tmp_path, env, "sat-a", 3, "sign_transaction",
                    json.loads(payload.read_text()) | {"value": "1"}, "old.json")
    refused = orbital(env, "wallet", "run-command", str(old))
    assert refused.returncode == 9 and "not a known operator" in refused.stderr


def test_edited_settings_or_policy_are_refused_at_open(tmp_path: Path) -> None:
    """Writing wallet.toml or policy.toml behind the signer's back (the operators to the
    attacker's key; a loose policy with its sha256; the policy bytes only), putting an
    older seal back or deleting the seal: every open refuses, one line, exit 8."""
    env = _wallet(tmp_path, "a", KEY, satellite="sat-a")
    home = tmp_path / "a"
    _opened(env)
    config = load_config(home)
    toml, policy, seal = ((home / n).read_bytes() for n in ("wallet.toml", "policy.toml",
                                                               "wallet.seal"))
    _, attacker = _attacker(tmp_path)

    def refused(*why: str) -> None:
        done = orbital(env, "wallet", "sign-message", "x")
        assert done.returncode == 8, done.stderr
        line = _one_line(done)
        assert any(w in line for w in why), line
        (home / "wallet.toml").write_bytes(toml)
        (home / "policy.toml").write_bytes(policy)
        (home / "wallet.seal").write_bytes(seal)

    save_config(WalletConfig(home, chain_id=31337, satellite="sat-a", threshold=1,
                             operators=(bytes.fromhex(attacker[2:]),),
                             policy_sha256=config.policy_sha256))
    refused("differs from its seal (operators)")
    (home / "policy.toml").write_text(LOOSE)
    save_config(WalletConfig(home, chain_id=31337, satellite="sat-a",
                             operators=config.operators,
                             policy_sha256=pin_policy(home / "policy.toml")))
    refused("differs from its seal (policy_sha256)")
    (home / "policy.toml").write_text(LOOSE)
    refused("edited outside a set_policy command")
    # the dry run judges with what signing obeys, not with the edited file (before, `policy
    # check` loaded policy.toml unauthenticated and answered "allow" for the loose policy)
    (home / "policy.toml").write_text(LOOSE)
    tx = tmp_path / "tx.json"
    tx.write_text(json.dumps({"chainId": 31337, "nonce": 0, "gas": 21000, "to": PAYEE,
                              "value": str(50 * ETHER), "maxFeePerGas": 10**9,
                              "maxPriorityFeePerGas": 1}))
    done = orbital(env, "wallet", "policy", "check", str(tx))
    assert done.returncode == 8 and "edited outside" in _one_line(done)
    (home / "policy.toml").write_bytes(policy)
    done = orbital(env, "wallet", "policy", "check", str(tx))
    assert done.returncode == 3 and done.stdout.startswith("deny: per_transaction"), done
    doc = json.loads(seal)
    doc["fields"]["operators"] = [attacker]
    (home / "wallet.seal").write_text(json.dumps(doc))
    save_config(WalletConfig(home, chain_id=31337, satellite="sat-a", threshold=1,
                             operators=(bytes.fromhex(attacker[2:]),),
                             policy_sha256=config.policy_sha256))
    refused("wallet seal")
    (home / "wallet.seal").unlink()
    refused("it was deleted")
    assert orbital(env, "wallet", "sign-message", "x").returncode == 0

    # an older seal put back after an operator command changed the settings
    envelope = _envelope(tmp_path, env, "sat-a", 1, "set_satellite", {"satellite": "sat-b"})
    assert orbital(env, "wallet", "run-command", str(envelope)).returncode == 0
    (home / "wallet.seal").write_bytes(seal)
    (home / "wallet.toml").write_bytes(toml)
    done = orbital(env, "wallet", "sign-message", "x")
    assert done.returncode == 8 and "older seal" in _one_line(done)

    # the audit log and its head deleted (the spending history with them): refused
    for name in ("audit.sqlite", "audit.sqlite-wal", "audit.sqlite-shm", "audit.head"):
        (home / name).unlink(missing_ok=True)
    done = orbital(env, "wallet", "sign-message", "x")
    assert done.returncode == 8 and "audit log (and its head) was deleted" in _one_line(done)


def test_a_wallet_from_before_seals_is_sealed_only_explicitly(tmp_path: Path) -> None:
    """Migration: a wallet with audit entries and no seal is refused (saying to run `wallet
    init`); `wallet init` seals it once; a second `wallet init` is refused."""
    env = _wallet(tmp_path, "a", KEY, satellite="sat-a")
    home = tmp_path / "a"
    _opened(env)
    (home / "wallet.seal").unlink()
    with sqlite3.connect(home / "audit.sqlite") as db:  # as an old wallet: no seal entry
        assert db.execute("SELECT kind FROM entries WHERE seq = 1").fetchone()[0] == \
            "wallet_sealed"
    # an old wallet's log: start it again without the seal entry
    for name in ("audit.sqlite", "audit.sqlite-wal", "audit.sqlite-shm", "audit.head"):
        (home / name).unlink(missing_ok=True)
    from wallet.anchor import SignedHeadFile
    from wallet.keys.keystore import KeystoreSigner
    signer = KeystoreSigner(next((home / "keystores").glob("*.json")), "pw")
    with AuditLog(home / "audit.sqlite", signer,
                  anchor=SignedHeadFile(home / "audit.head", signer)) as log:
        log.append("policy_decision", {"request": {}, "decision": {}})
    done = orbital(env, "wallet", "sign-message", "x")
    assert done.returncode == 8 and "orbital wallet init" in _one_line(done)
    done = orbital(env, "wallet", "init")
    assert done.returncode == 0 and "sealed" in done.stdout, done.stderr
    assert orbital(env, "wallet", "sign-message", "x").returncode == 0
    again = orbital(env, "wallet", "init")
    assert again.returncode == 8 and "sealed already" in again.stderr


def test_the_pkcs11_seal_is_an_hmac_by_a_key_generated_in_the_token(
        softhsm_token: SoftHsmToken, pin_attempts: object, tmp_path: Path) -> None:
    """PKCS#11: the seal's MAC is CKM_SHA256_HMAC by a secret generated in the token
    (local, sensitive, never extractable); an edited wallet.toml is refused; deleting the
    seal file is caught because the token still holds the seal key."""
    from pkcs11 import Attribute, ObjectClass

    from node.testing.softhsm import USER_PIN
    from wallet.keys import pkcs11 as hsm
    from wallet.seal import SealError, check_seal

    home = tmp_path / "home"
    home.mkdir()
    with hsm.Pkcs11Token(softhsm_token.label, USER_PIN, attempts=pin_attempts) as token:  # type: ignore[arg-type]
        address = token.generate_key()
        signer = token.signer(address)
        config = WalletConfig(home, backend="pkcs11", token=softhsm_token.label, chain_id=31337,
                              operators=(bytes(20),), threshold=1, policy_sha256="00" * 32)
        with AuditLog(home / "audit.sqlite", signer) as audit:
            check_seal(config, signer, audit)  # first open of an empty wallet: sealed
            doc = json.loads((home / "wallet.seal").read_text())
            assert doc["auth"] == "hmac-sha256" and len(bytes.fromhex(doc["mac"][2:])) == 32
            check_seal(config, signer, audit)  # and it verifies
            session = hsm.find_token(hsm.load_module(), softhsm_token.label).open(user_pin=None)
            try:
                (key,) = session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY})
                assert key[Attribute.LOCAL] and key[Attribute.SENSITIVE]
                assert key[Attribute.NEVER_EXTRACTABLE] and not key[Attribute.EXTRACTABLE]
                assert not key[Attribute.MODIFIABLE] and not key[Attribute.COPYABLE]
            finally:
                session.close()
            with pytest.raises(SealError, match="differs from its seal"):
                check_seal(WalletConfig(home, backend="pkcs11", token=softhsm_token.label,
                                        chain_id=31337, operators=(b"\x01" * 20,),
                                        threshold=1, policy_sha256="00" * 32), signer, audit)
            doc["fields"]["threshold"] = 2
            (home / "wallet.seal").write_text(json.dumps(doc))
            with pytest.raises(SealError, match="does not verify"):
                check_seal(config, signer, audit)
            (home / "wallet.seal").unlink()
            with pytest.raises(SealError, match="token holds the seal key"):
                check_seal(config, signer, audit)
        signer.close()


# --------------------------------------------------------------------------- item 2


def test_deleted_ledger_rows_do_not_reopen_the_24h_window(tmp_path: Path) -> None:
    """Deleting the spending ledger's rows (before: a second 0.6 ether transfer was signed
    under a 1 ether 24 h limit) changes nothing: the window comes from the signed audit
    log. Editing an audited spend in the audit log stops signing (exit 8)."""
    env = _wallet(tmp_path, "a", KEY, satellite="sat-a")
    home = tmp_path / "a"
    assert orbital(env, *_transfer(6 * ETHER // 10)).returncode == 0
    with sqlite3.connect(home / "ledger.sqlite") as db:
        assert db.execute("DELETE FROM spends").rowcount == 1
    refused = orbital(env, *_transfer(6 * ETHER // 10, 1))
    assert refused.returncode == 3 and "per_24h" in refused.stderr, refused.stderr
    with sqlite3.connect(home / "ledger.sqlite") as db:  # a forged small spend: no help
        db.execute("INSERT INTO spends (request_id, sender, value, signed_at) "
                   "VALUES (x'00', x'00', '1', 0)")
    assert orbital(env, *_transfer(6 * ETHER // 10, 1)).returncode == 3
    # ...and the deletion is told to the ground, in the audit log it downlinks
    entries = json.loads(orbital(env, "wallet", "audit", "export").stdout)["entries"]
    told = [json.loads(bytes.fromhex(e["payload"][2:]))["problems"] for e in entries
            if e["kind"] == "ledger_mismatch"]
    assert told and all("spends rows were deleted" in p[0] for p in told), told

    with sqlite3.connect(home / "audit.sqlite") as db:  # hide the spend in the audit log
        row = db.execute("SELECT seq, payload FROM entries WHERE kind = 'policy_decision' "
                         "ORDER BY seq LIMIT 1").fetchone()
        payload = json.loads(row[1])
        payload["request"]["value"] = "1"
        db.execute("UPDATE entries SET payload = ? WHERE seq = ?",
                   (json.dumps(payload, sort_keys=True, separators=(",", ":")), row[0]))
    done = orbital(env, *_transfer(ETHER // 10, 1))
    assert done.returncode == 8 and "edited" in _one_line(done)


def test_forged_or_deleted_time_lock_rows_change_nothing(tmp_path: Path) -> None:
    """A time-locked 0.6 ether transfer (1 h delay and cancel window): forging its ledger
    row as matured (before: signed at once) leaves it time-locked; with the row deleted the
    operators' cancel still applies (before: "no pending request", and it would have been
    signed after the delay); deleting the row again leaves it cancelled."""
    env = _wallet(tmp_path, "a", KEY, satellite="sat-a")
    home = tmp_path / "a"
    (home / "policy.toml").write_text(TIMELOCK_POLICY.replace('"30s"', '"1h"'))
    assert orbital(env, "wallet", "policy", "pin", str(home / "policy.toml")).returncode == 0
    transfer = _transfer(6 * ETHER // 10)
    locked = orbital(env, *transfer)
    assert locked.returncode == 3 and "time-locked" in locked.stderr, locked.stderr
    with sqlite3.connect(home / "ledger.sqlite") as db:
        request_id = bytes(db.execute("SELECT request_id FROM pending").fetchone()[0])
        db.execute("UPDATE pending SET created = 0, not_before = 1")
    still = orbital(env, *transfer)
    assert still.returncode == 3 and "time-locked" in still.stderr, still.stderr
    last = json.loads(orbital(env, "wallet", "audit", "export").stdout)["entries"][-2]
    assert last["kind"] == "ledger_mismatch" and b"not the audited one" in bytes.fromhex(
        last["payload"][2:])
    listed = json.loads(orbital(env, "wallet", "pending", "list", "--json").stdout)["pending"]
    assert [(p["requestId"], p["notBefore"] > 1) for p in listed] == [
        ("0x" + request_id.hex(), True)]  # the audited time-lock, not the forged row

    proposal = tmp_path / "cancel.json"
    assert orbital(env, "wallet", "pending", "cancel", "0x" + request_id.hex(),
                   "--out", str(proposal)).returncode == 0
    with sqlite3.connect(home / "ledger.sqlite") as db:
        db.execute("DELETE FROM pending")
    envelope = _envelope(tmp_path, env, "sat-a", 1, "cancel_request",
                         json.loads(proposal.read_text()))
    done = orbital(env, "wallet", "run-command", str(envelope))
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(home / "ledger.sqlite") as db:
        db.execute("DELETE FROM pending")
    again = orbital(env, *transfer)
    assert again.returncode == 3 and "cancelled" in again.stderr, again.stderr
    closed = json.loads(orbital(env, "wallet", "pending", "list", "--all", "--json").stdout)
    assert [p["state"] for p in closed["pending"]] == ["cancelled"]
