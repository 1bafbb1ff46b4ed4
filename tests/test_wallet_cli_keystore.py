"""``orbital wallet`` on the keystore backend (no HSM, no devnet): import a keystore,
sign an EIP-191 message and an EIP-712 document within policy (checked with eth-account),
check a request against the policy, and export an audit range that verifies on its own
against the head the ground already knew."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data

from wallet.keys.keystore import create_keystore

pytestmark = pytest.mark.slow

KEY = bytes.fromhex("5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a")
REGISTRY = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
TYPED = {
    "types": {"EIP712Domain": [{"name": "name", "type": "string"},
                               {"name": "version", "type": "string"},
                               {"name": "chainId", "type": "uint256"},
                               {"name": "verifyingContract", "type": "address"}],
              "TaskResult": [{"name": "taskId", "type": "bytes32"},
                             {"name": "epoch", "type": "uint64"}]},
    "primaryType": "TaskResult",
    "domain": {"name": "orbital", "version": "1", "chainId": 31337,
               "verifyingContract": REGISTRY},
    "message": {"taskId": "0x" + "11" * 32, "epoch": 7},
}
POLICY = f"""
version = 1
chain_id = 31337
[[destinations.allow]]
address = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
[limits]
per_transaction = "1 ether"
per_24h = "3 ether"
[fees]
max_total_fee = "0.01 ether"
[messages]
allow_personal = true
[[messages.typed_data]]
name = "orbital"
version = "1"
chain_id = 31337
verifying_contract = "{REGISTRY}"
primary_types = ["TaskResult"]
"""


def orbital(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "ORBITAL_HOME": str(tmp_path / "home"),
            "ORBITAL_KEYSTORE_PASSWORD": "pw",
            "PYTHONPATH": str(Path(__file__).resolve().parents[1])}


def test_keystore_wallet_signs_messages_checks_policy_and_exports_audit(
        env: dict[str, str], tmp_path: Path) -> None:
    source = tmp_path / "mine.json"
    address = create_keystore(source, "pw", private_key=KEY, kdf="pbkdf2", iterations=2)
    done = orbital(env, "wallet", "import-keystore", str(source), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["address"] == "0x" + address.hex()
    (tmp_path / "policy.toml").write_text(POLICY)
    assert orbital(env, "wallet", "policy", "pin", str(tmp_path / "policy.toml")).returncode == 0

    done = orbital(env, "wallet", "sign-message", "hello orbit", "--json")
    assert done.returncode == 0, done.stderr
    signature = json.loads(done.stdout)["signature"]
    recovered = Account.recover_message(encode_defunct(text="hello orbit"), signature=signature)
    assert recovered.lower() == "0x" + address.hex()

    (tmp_path / "typed.json").write_text(json.dumps(TYPED))
    done = orbital(env, "wallet", "sign-typed", str(tmp_path / "typed.json"))
    assert done.returncode == 0, done.stderr
    recovered = Account.recover_message(encode_typed_data(full_message=TYPED),
                                        signature=done.stdout.strip())
    assert recovered.lower() == "0x" + address.hex()

    foreign = dict(TYPED, domain={**TYPED["domain"], "name": "not-orbital"})
    (tmp_path / "foreign.json").write_text(json.dumps(foreign))
    refused = orbital(env, "wallet", "sign-typed", str(tmp_path / "foreign.json"))
    assert refused.returncode == 3 and refused.stderr.count("\n") == 1

    tx = tmp_path / "tx.json"
    tx.write_text(json.dumps({"chainId": 31337, "nonce": 0, "gas": 21000,
                              "to": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
                              "value": "2000000000000000000", "maxFeePerGas": 10**9,
                              "maxPriorityFeePerGas": 1}))
    check = orbital(env, "wallet", "policy", "check", str(tx))
    assert check.returncode == 3 and check.stdout.startswith("deny: per_transaction")

    first = orbital(env, "wallet", "audit", "verify", "--json")
    assert first.returncode == 0, first.stderr
    known = json.loads(first.stdout)["head"]
    done = orbital(env, "wallet", "sign-message", "second contact")
    assert done.returncode == 0, done.stderr
    seq = int(known.split(":")[0])
    exported = tmp_path / "range.json"
    done = orbital(env, "wallet", "audit", "export", "--from", str(seq + 1),
                   "--out", str(exported))
    assert done.returncode == 0, done.stderr
    signer = "0x" + address.hex()
    ok = orbital(env, "wallet", "audit", "verify-export", str(exported), "--known-head", known,
                 "--signer", signer)
    assert ok.returncode == 0, ok.stderr
    document = json.loads(exported.read_text())
    document["entries"][0]["payload"] = document["entries"][-1]["payload"]
    exported.write_text(json.dumps(document))
    bad = orbital(env, "wallet", "audit", "verify-export", str(exported), "--known-head", known,
                  "--signer", signer)
    assert bad.returncode == 8


def test_a_damaged_audit_log_stops_signing_until_it_is_rotated(
        env: dict[str, str], tmp_path: Path) -> None:
    source = tmp_path / "mine.json"
    create_keystore(source, "pw", private_key=KEY, kdf="pbkdf2", iterations=2)
    assert orbital(env, "wallet", "import-keystore", str(source)).returncode == 0
    (tmp_path / "policy.toml").write_text(POLICY)
    assert orbital(env, "wallet", "policy", "pin", str(tmp_path / "policy.toml")).returncode == 0
    assert orbital(env, "wallet", "sign-message", "before").returncode == 0

    log = Path(env["ORBITAL_HOME"]) / "audit.sqlite"
    with sqlite3.connect(log) as db:  # damage the head entry behind the wallet's back
        db.execute("UPDATE entries SET time_ms = 1 WHERE seq = (SELECT MAX(seq) FROM entries)")
    stopped = orbital(env, "wallet", "sign-message", "during")
    assert stopped.returncode == 8 and "head is damaged" in stopped.stderr

    refused = orbital(env, "wallet", "audit", "rotate")
    assert refused.returncode == 2 and "--reason" in refused.stderr
    done = orbital(env, "wallet", "audit", "rotate", "--reason", "head damaged", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["previousHead"] is None and "damaged" in report["problem"]
    assert all(Path(p).exists() for p in report["archived"])
    assert report["head"].startswith("1:")

    assert orbital(env, "wallet", "sign-message", "after").returncode == 0
    verified = orbital(env, "wallet", "audit", "verify", "--json")
    # 4 entries: the new log records the seal it starts under (wallet_sealed) first
    assert verified.returncode == 0 and json.loads(verified.stdout)["head"].startswith("4:")


OPERATORS = ["0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
             "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
             "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65"]


def test_config_set_and_show(env: dict[str, str]) -> None:
    done = orbital(env, "wallet", "config", "set", "--operators", ",".join(OPERATORS),
                   "--threshold", "2", "--chain-id", "31337", "--satellite", "genesis-7")
    assert done.returncode == 0, done.stderr
    shown = orbital(env, "wallet", "config", "show", "--json")
    report = json.loads(shown.stdout)
    assert report["operators"] == OPERATORS and report["threshold"] == 2
    assert (report["chainId"], report["satellite"]) == (31337, "genesis-7")
    text = orbital(env, "wallet", "config", "show").stdout
    assert "threshold = 2" in text and 'satellite = "genesis-7"' in text

    # only what is given changes; nothing changes when a value is refused
    assert orbital(env, "wallet", "config", "set", "--threshold", "3").returncode == 0
    for argv, message in [
        (["--threshold", "4"], "threshold 4 must be 1..3"),
        (["--operators", OPERATORS[0].replace("C44", "c44")], "fails its EIP-55 checksum"),
        (["--operators", f"{OPERATORS[0]},{OPERATORS[0]}"], "lists an address twice"),
        (["--operators", "0x1234"], "is not an address"),
        (["--satellite", 'a"b'], "without quotes"),
        (["--chain-id", "0"], "want 1..2^64-1"),
        ([], "nothing to change"),
    ]:
        refused = orbital(env, "wallet", "config", "set", *argv)
        assert refused.returncode == 2 and message in refused.stderr, (argv, refused.stderr)
        assert refused.stderr.count("\n") == 1
    report = json.loads(orbital(env, "wallet", "config", "show", "--json").stdout)
    assert report["operators"] == OPERATORS and report["threshold"] == 3
