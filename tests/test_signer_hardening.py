"""Issue #16, the signer core: attacks by someone who can write the satellite's files (or
run a second process), each a regression test through the real parts (processes, files,
the CLI).

Threat model: the signer and the HSM are trusted; every file is not; operators are
trusted only as m-of-n."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from wallet.config import WalletConfig, save_config
from wallet.keys.keystore import create_keystore
from wallet.policy import pin_policy

ROOT = Path(__file__).resolve().parents[1]
KEY = bytes.fromhex("5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a")
PAYEE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
ETHER = 10**18
POLICY = f"""
version = 1
chain_id = 31337
[[destinations.allow]]
address = "{PAYEE}"
[limits]
per_transaction = "1 ether"
per_24h = "1 ether"
[fees]
max_total_fee = "0.01 ether"
[messages]
allow_personal = true
"""


def orbital(env: dict[str, str], *args: str,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A keystore wallet (fast KDF) with POLICY pinned at initialisation."""
    home = tmp_path / "home"
    (home / "keystores").mkdir(parents=True)
    address = create_keystore(home / "keystores" / "k.json", "pw", private_key=KEY,
                              kdf="pbkdf2", iterations=2)
    (home / "keystores" / "k.json").rename(home / "keystores" / f"0x{address.hex()}.json")
    (home / "policy.toml").write_text(POLICY)
    save_config(WalletConfig(home, chain_id=31337, satellite="sat-a",
                             policy_sha256=pin_policy(home / "policy.toml")))
    return home


@pytest.fixture
def env(home: Path) -> dict[str, str]:
    return {**os.environ, "ORBITAL_HOME": str(home), "ORBITAL_KEYSTORE_PASSWORD": "pw",
            "PYTHONPATH": str(ROOT)}


# --------------------------------------------------------------------------- item 3

_RACER = textwrap.dedent("""
    import argparse, json, sys, time
    from contextlib import ExitStack
    from pathlib import Path
    from node.cli.wallet_run import _onboard
    from wallet.config import load_config
    from wallet.errors import PolicyDeniedError
    from wallet.transactions import request_from_json

    home, go, first_nonce = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    config = load_config(home)
    signed = denied = 0
    with ExitStack() as stack:
        onboard = _onboard(config, argparse.Namespace(password_file=None), stack)
        while not go.exists():
            time.sleep(0.001)
        for nonce in range(first_nonce, first_nonce + 70):
            request = request_from_json({"type": 2, "chainId": 31337, "nonce": nonce,
                                         "gas": 21000, "to": "PAYEE",
                                         "value": 10**16, "maxFeePerGas": 10**9,
                                         "maxPriorityFeePerGas": 0})
            try:
                onboard.sign_transaction(request)
                signed += 1
            except PolicyDeniedError:
                denied += 1
    print(json.dumps({"signed": signed, "denied": denied}))
""").replace("PAYEE", PAYEE)


def test_two_processes_racing_cannot_together_exceed_the_24h_limit(
        home: Path, env: dict[str, str], tmp_path: Path) -> None:
    """Two real processes, each opened on the same wallet, sign 0.01 ether transfers as
    fast as they can from the same instant under a 1 ether 24 h limit: together exactly as
    many as fit (99: each also spends its 21,000 gas x 1 gwei fee) are signed (with only a
    thread lock, both judged against the same spent total near the limit and together
    signed more)."""
    script = tmp_path / "racer.py"
    script.write_text(_RACER)
    go = tmp_path / "go"
    racers = [subprocess.Popen([sys.executable, str(script), str(home), str(go), str(first)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True) for first in (0, 1000)]
    time.sleep(4)  # both have opened the wallet and wait for the start
    go.write_text("go")
    results = []
    for racer in racers:
        out, err = racer.communicate(timeout=120)
        assert racer.returncode == 0, err
        results.append(json.loads(out))
    fits = 10**18 // (10**16 + 21_000 * 10**9)  # value + the fee each counts (item 4): 99
    assert sum(r["signed"] for r in results) == fits, results
    assert sum(r["denied"] for r in results) == 140 - fits, results


# --------------------------------------------------------------------------- item 6

OPERATOR_KEY = bytes.fromhex("7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6")


def _wallet(tmp_path: Path, name: str, private_key: bytes, **config: object) -> dict[str, str]:
    """A keystore wallet at tmp_path/name (policy POLICY, one operator, threshold 1)."""
    home = tmp_path / name
    (home / "keystores").mkdir(parents=True)
    address = create_keystore(home / "keystores" / "k.json", "pw", private_key=private_key,
                              kdf="pbkdf2", iterations=2)
    (home / "keystores" / "k.json").rename(home / "keystores" / f"0x{address.hex()}.json")
    (home / "policy.toml").write_text(POLICY)
    operator = _operator(tmp_path)[1]
    save_config(WalletConfig(home, chain_id=31337, operators=(operator,), threshold=1,
                             policy_sha256=pin_policy(home / "policy.toml"),
                             **config))  # type: ignore[arg-type]
    return {**os.environ, "ORBITAL_HOME": str(home), "ORBITAL_KEYSTORE_PASSWORD": "pw",
            "PYTHONPATH": str(ROOT)}


def _operator(tmp_path: Path) -> tuple[Path, bytes]:
    path = tmp_path / "operator.json"
    if not path.exists():
        create_keystore(path, "pw", private_key=OPERATOR_KEY, kdf="pbkdf2", iterations=2)
    from wallet.keys.keystore import keystore_address
    address = keystore_address(path)
    assert address is not None
    return path, address


def _envelope(tmp_path: Path, env: dict[str, str], satellite: str, nonce: int, kind: str,
              payload: dict[str, object], name: str = "envelope.json") -> Path:
    payload_file = tmp_path / f"{name}.payload.json"
    payload_file.write_text(json.dumps(payload))
    envelope = tmp_path / name
    done = orbital(env, "ground", "command", "--kind", kind, "--payload", str(payload_file),
                   "--nonce", str(nonce), "--satellite", satellite, "--chain-id", "31337",
                   "--keystore", str(_operator(tmp_path)[0]), "--out", str(envelope))
    assert done.returncode == 0, done.stderr
    return envelope


TRANSFER = {"type": 2, "chainId": 31337, "nonce": 0, "gas": 21000, "to": PAYEE,
            "value": str(ETHER // 10), "maxFeePerGas": "1000000000",
            "maxPriorityFeePerGas": "0"}
OTHER_KEY = bytes.fromhex("59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d")


def test_a_command_for_one_satellite_is_refused_on_another(tmp_path: Path) -> None:
    """Two satellites whose wallet.toml names no satellite: each is known by its signing
    address, so a command for one is refused on the other (with the old default name
    `genesis-1` both accepted the same envelope), and a command for `genesis-1` on
    neither."""
    env_a = _wallet(tmp_path, "a", KEY)
    env_b = _wallet(tmp_path, "b", OTHER_KEY)
    address_a = orbital(env_a, "wallet", "address").stdout.strip()
    assert address_a == "0x" + address_a[2:].lower()
    for_a = _envelope(tmp_path, env_a, address_a, 1, "sign_transaction", TRANSFER, "a.json")
    refused = orbital(env_b, "wallet", "run-command", str(for_a))
    assert refused.returncode == 9, refused.stderr
    assert "is not this satellite's" in refused.stderr
    done = orbital(env_a, "wallet", "run-command", str(for_a), "--json")
    assert done.returncode == 0, done.stderr
    old_default = _envelope(tmp_path, env_a, "genesis-1", 2, "sign_transaction", TRANSFER,
                            "g.json")
    for env in (env_a, env_b):
        refused = orbital(env, "wallet", "run-command", str(old_default))
        assert refused.returncode == 9 and "satellite" in refused.stderr, refused.stderr
    assert "satellite =" not in (tmp_path / "a" / "wallet.toml").read_text()


# --------------------------------------------------------------------------- item 8

def test_a_clock_behind_the_last_audited_entry_stops_signing(tmp_path: Path) -> None:
    """The clock seam (OnboardSigner's clock, which dates its audit entries): set back one
    minute after a signature, nothing is judged, audited or signed -- also after the wallet
    is reopened -- until the clock reads the last entry's time again. (Before, the clock
    set back by 24 h re-opened the rolling window.)"""
    from wallet.audit import AuditLog, ClockBehindError
    from wallet.onboard import OnboardSigner
    from wallet.policy import PolicyLedger, parse_policy
    from wallet.transactions import request_from_json

    from signers import SoftwareSigner

    policy = parse_policy(POLICY.encode())
    key = SoftwareSigner("clock test")
    clock = [1_900_000_000.0]

    def transfer(nonce: int) -> object:
        return request_from_json({**TRANSFER, "nonce": nonce, "value": str(ETHER * 9 // 10)})

    def onboard(ledger: PolicyLedger, audit: AuditLog) -> OnboardSigner:
        return OnboardSigner(key, policy, ledger, audit, clock=lambda: clock[0])

    with PolicyLedger(tmp_path / "ledger.sqlite") as ledger, \
            AuditLog(tmp_path / "audit.sqlite", key) as audit:
        onboard(ledger, audit).sign_transaction(transfer(0))  # the whole 24 h limit
        entries, signatures = len(audit.entries()), len(key.signed)
        clock[0] -= 24 * 3600 + 60  # a day back: the old code signed another ether
        with pytest.raises(ClockBehindError, match="behind the audit log's last entry"):
            onboard(ledger, audit).sign_transaction(transfer(1))
        assert len(audit.entries()) == entries and len(key.signed) == signatures
    with PolicyLedger(tmp_path / "ledger.sqlite") as ledger, \
            AuditLog(tmp_path / "audit.sqlite", key) as audit:
        with pytest.raises(ClockBehindError):
            onboard(ledger, audit).sign_personal_message(b"hello")
        clock[0] += 24 * 3600 + 60  # right again: the limit still holds
        with pytest.raises(Exception, match="24 h limit"):
            onboard(ledger, audit).sign_transaction(transfer(1))
        onboard(ledger, audit).sign_personal_message(b"hello")


# --------------------------------------------------------------------------- item 7

TIMELOCK_POLICY = POLICY + """
[timelock]
threshold = "0.5 ether"
delay = "30s"
cancel_window = "30s"
"""


def test_operators_cancel_a_time_lock_and_it_never_signs(tmp_path: Path) -> None:
    """Through the CLI: a 0.6 ether transfer is time-locked; `pending list` shows it;
    `pending cancel ID --out` proposes the cancel_request payload, one operator (m = 1)
    signs it with `ground command`, `pending cancel --envelope` applies it; once the delay
    has passed the same transfer is still refused, and the audit log records the cancel.
    (Before, no command could cancel a time-lock: it signed once the delay passed.)"""
    env = _wallet(tmp_path, "a", KEY, satellite="sat-a")
    (tmp_path / "a" / "policy.toml").write_text(TIMELOCK_POLICY)
    assert orbital(env, "wallet", "policy", "pin", str(tmp_path / "a" / "policy.toml")
                   ).returncode == 0
    transfer = ["wallet", "sign-tx", "--to", PAYEE, "--value", str(6 * ETHER // 10),
                "--nonce", "0", "--gas", "21000", "--max-fee", "1000000000"]
    locked = orbital(env, *transfer)
    assert locked.returncode == 3 and "time-locked" in locked.stderr, locked.stderr
    started = time.time()
    listed = json.loads(orbital(env, "wallet", "pending", "list", "--json").stdout)["pending"]
    assert [p["state"] for p in listed] == ["open"]
    request_id = listed[0]["requestId"]

    proposal = tmp_path / "cancel.json"
    done = orbital(env, "wallet", "pending", "cancel", request_id, "--reason", "not ours",
                   "--out", str(proposal))
    assert done.returncode == 0, done.stderr
    assert json.loads(proposal.read_text()) == {"requestId": request_id, "reason": "not ours"}
    envelope = tmp_path / "cancel-envelope.json"
    done = orbital(env, "ground", "command", "--kind", "cancel_request", "--payload",
                   str(proposal), "--nonce", "1", "--satellite", "sat-a", "--chain-id",
                   "31337", "--keystore", str(_operator(tmp_path)[0]), "--out", str(envelope))
    assert done.returncode == 0, done.stderr
    done = orbital(env, "wallet", "pending", "cancel", "--envelope", str(envelope), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["cancelled"] == request_id
    replay = orbital(env, "wallet", "pending", "cancel", "--envelope", str(envelope))
    assert replay.returncode == 9, replay.stderr

    time.sleep(max(0.0, started + 31 - time.time()))
    again = orbital(env, *transfer)
    assert again.returncode == 3 and "cancelled" in again.stderr, again.stderr
    assert orbital(env, "wallet", "pending", "list").stdout.strip() == \
        "(no time-locked requests)"
    closed = json.loads(orbital(env, "wallet", "pending", "list", "--all", "--json").stdout)
    assert [(p["state"], p["cancelReason"]) for p in closed["pending"]] == [
        ("cancelled", "not ours")]
    kinds = [e["kind"] for e in json.loads(orbital(env, "wallet", "audit", "export").stdout)
             ["entries"]]
    assert "timelock_cancelled" in kinds and kinds.count("signed") == 0
    assert orbital(env, "wallet", "audit", "verify").returncode == 0


# --------------------------------------------------------------------------- item 5

def test_a_cut_audit_tail_is_detected_and_stops_signing(env: dict[str, str],
                                                        home: Path) -> None:
    """Through the CLI: every signing result carries the audit head; cutting the last
    entries off audit.sqlite (a shorter log that still chains and verifies) is caught by
    `audit verify` and stops signing (before, both went on), because the head is also kept
    signed outside the file; deleting that head file is caught too; the ground's copy
    catches a cut as `--known-head`."""
    import sqlite3

    heads = []
    for text in ("one", "two", "three"):
        done = orbital(env, "wallet", "sign-message", text, "--json")
        assert done.returncode == 0, done.stderr
        heads.append(json.loads(done.stdout)["auditHead"])
    text_mode = orbital(env, "wallet", "sign-message", "four")
    assert text_mode.returncode == 0 and "audit head 9:0x" in text_mode.stderr  # 1: sealed
    verified = json.loads(orbital(env, "wallet", "audit", "verify", "--json").stdout)
    assert verified["head"] == verified["anchoredHead"] == text_mode.stderr.split()[-1]

    saved = home / "audit.sqlite.bak"
    db = sqlite3.connect(home / "audit.sqlite")
    db.execute(f"VACUUM INTO '{saved}'")
    db.execute("DELETE FROM entries WHERE seq > 5")  # entries 6..9: messages three and four
    db.commit()
    db.close()
    cut = orbital(env, "wallet", "audit", "verify")
    assert cut.returncode == 8 and "truncated" in cut.stderr, cut.stderr
    refused = orbital(env, "wallet", "sign-message", "five")
    assert refused.returncode == 8 and "truncated" in refused.stderr, refused.stderr
    ground = orbital(env, "wallet", "audit", "verify", "--known-head", heads[2])
    assert ground.returncode == 8 and "truncated" in ground.stderr

    (home / "audit.head").unlink()  # hide the anchor as well: still refused
    refused = orbital(env, "wallet", "sign-message", "five")
    assert refused.returncode == 8 and "anchored head" in refused.stderr, refused.stderr
    assert orbital(env, "wallet", "audit", "verify").returncode == 8


# --------------------------------------------------------------------------- item 11

TASK_POLICY = POLICY + """
[[messages.typed_data]]
name = "orbital"
version = "1"
chain_id = 31337
verifying_contract = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
primary_types = ["TaskResult"]
"""


def _task_result(output: str) -> dict[str, object]:
    return {
        "types": {"EIP712Domain": [{"name": "name", "type": "string"},
                                   {"name": "version", "type": "string"},
                                   {"name": "chainId", "type": "uint256"},
                                   {"name": "verifyingContract", "type": "address"}],
                  "TaskResult": [{"name": "taskId", "type": "bytes32"},
                                 {"name": "modelHash", "type": "bytes32"},
                                 {"name": "inputHash", "type": "bytes32"},
                                 {"name": "outputHash", "type": "bytes32"},
                                 {"name": "epoch", "type": "uint64"}]},
        "primaryType": "TaskResult",
        "domain": {"name": "orbital", "version": "1", "chainId": 31337,
                   "verifyingContract": "0x5FbDB2315678afecb367f032d93F642f64180aa3"},
        "message": {"taskId": "0x" + "ab" * 32, "modelHash": "0x" + "01" * 32,
                    "inputHash": "0x" + "02" * 32, "outputHash": "0x" + output * 32,
                    "epoch": 7}}


def test_sign_typed_refuses_a_second_task_result_for_a_task(env: dict[str, str],
                                                            home: Path, tmp_path: Path) -> None:
    """Through the CLI, each call a new process (a restart): a TaskResult is signed, the same
    one again is signed again, a different output for the same task is refused (rule
    one_result_per_task) -- before, every process signed whatever it was given."""
    (home / "policy.toml").write_text(TASK_POLICY)
    assert orbital(env, "wallet", "policy", "pin", str(home / "policy.toml")).returncode == 0
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    first.write_text(json.dumps(_task_result("03")))
    second.write_text(json.dumps(_task_result("04")))
    done = orbital(env, "wallet", "sign-typed", str(first))
    assert done.returncode == 0, done.stderr
    assert orbital(env, "wallet", "sign-typed", str(first)).returncode == 0
    refused = orbital(env, "wallet", "sign-typed", str(second))
    assert refused.returncode == 3 and "one_result_per_task" in refused.stderr, refused.stderr


def test_a_restarted_cosigner_signs_no_second_result(tmp_path: Path) -> None:
    """The co-signer's one-result-per-task survives a restart: a new Cosigner over the same
    wallet (its memory empty) is refused a different result by the audit log."""
    from contracts import eip712
    from node.attest.cosigner import Cosigner
    from wallet.audit import AuditLog
    from wallet.onboard import OnboardSigner
    from wallet.policy import PolicyLedger, parse_policy

    from signers import SoftwareSigner

    policy = parse_policy(TASK_POLICY.replace('"orbital"', '"OrbitalTaskAttestations"').encode())
    key = SoftwareSigner("cosigner restart")
    contract = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    result = eip712.TaskResult(b"\xab" * 32, b"\x01" * 32, b"\x02" * 32, b"\x03" * 32, 7)
    other = eip712.TaskResult(b"\xab" * 32, b"\x01" * 32, b"\x02" * 32, b"\x04" * 32, 7)
    for attempt in (result, other):
        with PolicyLedger(tmp_path / "ledger.sqlite") as ledger, \
                AuditLog(tmp_path / "audit.sqlite", key) as audit:
            cosigner = Cosigner(OnboardSigner(key, policy, ledger, audit), model=None,  # type: ignore[arg-type]
                                chain_id=31337, contract=contract)
            if attempt is result:
                cosigner._sign(attempt)
            else:
                with pytest.raises(Exception, match="one_result_per_task"):
                    cosigner._sign(attempt)
