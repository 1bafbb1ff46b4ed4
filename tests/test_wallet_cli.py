"""The wallet from the command line, as an operator uses it: a SoftHSM2 token and a key
made by ``orbital wallet``, an EIP-1559 transfer within policy signed in the HSM and
mined on anvil, a transfer over the limit denied with its reason and an audit entry,
one byte of the audit database edited and caught. Every command is a real process."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from node.devnet import Anvil
from node.testing.softhsm import SO_PIN, USER_PIN, require_softhsm, write_conf

pytestmark = [pytest.mark.devnet, pytest.mark.hsm, pytest.mark.slow]

TREASURY = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
GWEI = 10**9
ETHER = 10**18

POLICY = f"""
version = 1
chain_id = 31337

[destinations]
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


def orbital(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def wallet_env(tmp_path: Path) -> dict[str, str]:
    require_softhsm()
    conf = write_conf(tmp_path / "tokens")
    return {**os.environ, "ORBITAL_HOME": str(tmp_path / "home"), "SOFTHSM2_CONF": str(conf),
            "ORBITAL_STATE_DIR": str(tmp_path / "state"),  # the PIN count, outside the home
            "ORBITAL_HSM_SO_PIN": SO_PIN, "ORBITAL_HSM_PIN": USER_PIN,
            "PYTHONPATH": str(Path(__file__).resolve().parents[1])}


def test_hsm_wallet_signs_within_policy_denies_over_limit_and_audit_catches_an_edit(
        anvil: Anvil, wallet_env: dict[str, str], tmp_path: Path) -> None:
    done = orbital(wallet_env, "wallet", "init-token", "--label", "sat-1")
    assert done.returncode == 0, done.stderr
    done = orbital(wallet_env, "wallet", "new", "--json")
    assert done.returncode == 0, done.stderr
    address = json.loads(done.stdout)["address"]
    listed = orbital(wallet_env, "wallet", "list")
    assert listed.stdout.split() == [address]

    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    done = orbital(wallet_env, "wallet", "policy", "pin", str(policy))
    assert done.returncode == 0, done.stderr
    anvil.rpc("anvil_setBalance", address, hex(10 * ETHER))

    sign = ["wallet", "sign-tx", "--to", TREASURY, "--nonce", "0", "--gas", "21000",
            "--max-fee", str(20 * GWEI), "--priority-fee", str(GWEI), "--chain-id", "31337"]
    done = orbital(wallet_env, *sign, "--value", str(ETHER // 10), "--send", anvil.url,
                   "--json")
    assert done.returncode == 0, done.stderr
    sent = json.loads(done.stdout)
    receipt = anvil.receipt(sent["sent"])
    assert receipt["status"] == "0x1" and receipt["from"] == address
    assert receipt["type"] == "0x2" and sent["hash"] == sent["sent"]

    denied = orbital(wallet_env, *sign, "--value", str(2 * ETHER))
    assert denied.returncode == 3
    assert denied.stderr.count("\n") == 1
    assert "per_transaction" in denied.stderr and "2 ether" in denied.stderr

    audit_db = Path(wallet_env["ORBITAL_HOME"]) / "audit.sqlite"
    with sqlite3.connect(audit_db) as db:
        kinds = [row[0] for row in db.execute("SELECT kind FROM entries ORDER BY seq")]
        denial = db.execute("SELECT payload FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
    assert kinds == ["wallet_sealed", "policy_decision", "signed", "policy_decision"]
    assert b'"outcome":"deny"' in bytes(denial[0])

    ok = orbital(wallet_env, "wallet", "audit", "verify", "--signer", address)
    assert ok.returncode == 0, ok.stderr
    assert orbital(wallet_env, "wallet", "address").stdout.strip() == address
    ok = orbital(wallet_env, "wallet", "audit", "verify")  # the signer defaults to the key
    assert ok.returncode == 0, ok.stderr
    _flip_one_byte(audit_db, b'"outcome":"deny"')
    bad = orbital(wallet_env, "wallet", "audit", "verify", "--signer", address)
    assert bad.returncode == 8
    assert "Traceback" not in bad.stderr and bad.stderr.count("\n") == 1


def _flip_one_byte(path: Path, marker: bytes) -> None:
    """Change one byte of the database file itself, inside ``marker``."""
    data = bytearray(path.read_bytes())
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and marker in wal.read_bytes():  # not yet checkpointed: force it
        with sqlite3.connect(path) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        data = bytearray(path.read_bytes())
    at = data.index(marker) + len(b'"outcome":"')
    data[at] = ord("a")  # "deny" -> "aeny"
    path.write_bytes(bytes(data))


def test_wrong_pin_lockout_and_malformed_input_have_their_own_exit_codes(
        wallet_env: dict[str, str]) -> None:
    assert orbital(wallet_env, "wallet", "init-token", "--label", "sat-2").returncode == 0
    home = Path(wallet_env["ORBITAL_HOME"])
    config = (home / "wallet.toml").read_text().replace("max_pin_attempts = 5",
                                                        "max_pin_attempts = 2")
    (home / "wallet.toml").write_text(config)
    wrong = {**wallet_env, "ORBITAL_HSM_PIN": "not-the-pin"}
    first = orbital(wrong, "wallet", "list")
    assert first.returncode == 4 and "1 attempt" in first.stderr
    assert first.stderr.count("\n") == 1
    second = orbital(wrong, "wallet", "list")
    assert second.returncode == 5
    locked = orbital(wallet_env, "wallet", "list")  # the right PIN, after the lockout
    assert locked.returncode == 5 and "locked" in locked.stderr
    malformed = orbital(wallet_env, "wallet", "sign-tx", "--to", "0x1234", "--nonce", "0",
                        "--gas", "21000", "--max-fee", "1", "--chain-id", "31337")
    assert malformed.returncode == 2 and "20 bytes" in malformed.stderr
    assert "Traceback" not in first.stderr + second.stderr + locked.stderr + malformed.stderr
