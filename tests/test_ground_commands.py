"""Operator commands end to end, every step a real ``orbital`` process: two operators
build and co-sign a "sign this transaction and queue it" envelope on the ground; the
satellite's wallet checks it (2-of-3 operators, time window, nonce), signs within policy
(the operators' signatures are the co-signatures its policy asks for above 0.25 ether),
queues it durably, and broadcasts it at the next contact; anvil mines it. A replay of the
same envelope is rejected."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from node.devnet import Anvil
from wallet.config import WalletConfig, save_config
from wallet.keys.keystore import create_keystore

pytestmark = [pytest.mark.devnet, pytest.mark.slow]

TREASURY = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
ETHER = 10**18
PASSWORD = "operator password"


def orbital(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_two_operators_command_a_transfer_that_is_signed_queued_and_mined(
        anvil: Anvil, tmp_path: Path) -> None:
    operators = []
    for name in ("alice", "bob", "carol"):
        path = tmp_path / f"{name}.json"
        operators.append((path, create_keystore(path, PASSWORD, kdf="pbkdf2", iterations=2)))
    home = tmp_path / "satellite"
    env = {**os.environ, "ORBITAL_HOME": str(home), "ORBITAL_KEYSTORE_PASSWORD": PASSWORD,
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = orbital(env, "wallet", "new", "--json")
    assert done.returncode == 0, done.stderr
    satellite = json.loads(done.stdout)["address"]
    save_config(WalletConfig(home, chain_id=31337, satellite="sat-1", threshold=2,
                             operators=tuple(address for _, address in operators)))
    policy = tmp_path / "policy.toml"
    policy.write_text(f"""
version = 1
chain_id = 31337
[[destinations.allow]]
address = "{TREASURY}"
[limits]
per_transaction = "1 ether"
per_24h = "2 ether"
[fees]
max_total_fee = "0.01 ether"
[cosign]
threshold = "0.25 ether"
required = 2
operators = [{", ".join(f'"0x{a.hex()}"' for _, a in operators)}]
""")
    assert orbital(env, "wallet", "policy", "pin", str(policy)).returncode == 0
    anvil.rpc("anvil_setBalance", satellite, hex(5 * ETHER))

    payload = tmp_path / "tx.json"
    payload.write_text(json.dumps({
        "type": 2, "chainId": 31337, "nonce": 0, "gas": 21000, "to": TREASURY,
        "value": str(ETHER // 2), "maxFeePerGas": "20000000000",
        "maxPriorityFeePerGas": "1000000000"}))
    envelope = tmp_path / "envelope.json"
    ground = {**env, "ORBITAL_HOME": str(tmp_path / "ground")}
    done = orbital(ground, "ground", "command", "--payload", str(payload), "--nonce", "1",
                   "--satellite", "sat-1", "--chain-id", "31337", "--keystore",
                   str(operators[0][0]), "--out", str(envelope))
    assert done.returncode == 0, done.stderr
    addresses = ",".join("0x" + a.hex() for _, a in operators)
    check = ["ground", "verify-command", str(envelope), "--operators", addresses,
             "--threshold", "2", "--satellite", "sat-1", "--chain-id", "31337"]
    too_few = orbital(ground, *check)
    assert too_few.returncode == 9 and "threshold" in too_few.stderr
    done = orbital(ground, "ground", "cosign", str(envelope), "--keystore",
                   str(operators[1][0]), "--yes")  # no terminal here: --yes, or nothing
    assert done.returncode == 0, done.stderr
    assert orbital(ground, *check).returncode == 0

    done = orbital(env, "wallet", "run-command", str(envelope), "--json")
    assert done.returncode == 0, done.stderr
    queued = json.loads(done.stdout)["queued"]
    listed = orbital(env, "wallet", "queue", "list")
    assert queued in listed.stdout
    replay = orbital(env, "wallet", "run-command", str(envelope))
    assert replay.returncode == 9
    assert "not greater than the last accepted nonce 1" in replay.stderr

    done = orbital(env, "wallet", "queue", "send", "--rpc", anvil.url)
    assert done.returncode == 0, done.stderr
    receipt = anvil.receipt(queued)
    assert receipt["status"] == "0x1"
    assert receipt["from"] == satellite
    assert orbital(env, "wallet", "queue", "list").stdout.strip() == ""
