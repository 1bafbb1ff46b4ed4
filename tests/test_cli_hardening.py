"""Issue #16, items 10 and 12, through the ``orbital`` command line: the HSM PIN count
cannot be reset from the wallet home, options are never abbreviated, no usage error repeats
a secret, bad input is one line and exit 2 (never an internal error), amounts take units as
``cast`` does, a refused queue entry does not hold back the rest, and ``ground cosign``
shows what it signs and asks first."""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from eth_account import Account
from eth_utils import keccak

from node.cli import argtypes
from node.cli.main import build_parser, main
from node.testing.softhsm import USER_PIN, SoftHsm
from wallet.keys import pkcs11 as hsm
from wallet.keys.keystore import create_keystore

REPO = Path(__file__).resolve().parents[1]
SECRET_PIN = "7318-secret-pin-6642"
SECRET_KEY = "0x" + "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
PASSWORD = "operator password"
TREASURY = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def orbital(env: dict[str, str], *args: str,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node.cli.main", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120, input=stdin)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``orbital argv`` in this process: exit code, stdout, stderr."""
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def home_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A keystore wallet home and a state directory of the test's own, in this process's
    environment too (for in-process runs)."""
    env = {"ORBITAL_HOME": str(tmp_path / "home"), "ORBITAL_STATE_DIR": str(tmp_path / "state"),
           "ORBITAL_KEYSTORE_PASSWORD": PASSWORD}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ORBITAL_HSM_PIN", raising=False)
    return {**os.environ, **env, "PYTHONPATH": str(REPO)}


# -- item 10: wrong PINs counted outside the wallet home -------------------------------------

@pytest.mark.hsm
def test_pin_lockout_survives_a_new_home_and_deleting_the_home(
        softhsm: SoftHsm, tmp_path: Path) -> None:
    label = softhsm.take()
    state = tmp_path / "state"

    def home(name: str, max_attempts: int = 5) -> Path:
        path = tmp_path / name
        path.mkdir()
        (path / "wallet.toml").write_text(
            f'backend = "pkcs11"\n[pkcs11]\ntoken = "{label}"\n'
            f"max_pin_attempts = {max_attempts}\n")
        return path

    base = {**os.environ, "ORBITAL_STATE_DIR": str(state), "PYTHONPATH": str(REPO)}
    wrong = {**base, "ORBITAL_HSM_PIN": "not-the-pin"}
    right = {**base, "ORBITAL_HSM_PIN": USER_PIN}
    first = home("first", max_attempts=1000)  # the home cannot raise the limit either
    for left in (4, 3, 2, 1):
        done = orbital(wrong, "wallet", "--home", str(first), "list")
        assert done.returncode == 4 and f"{left} attempt" in done.stderr, done.stderr
    done = orbital(wrong, "wallet", "--home", str(first), "list")
    assert done.returncode == 5 and "locked" in done.stderr
    assert not any(first.glob("pin-attempts*"))  # nothing about PINs in the home
    # A fresh home, then the first home deleted: the token stays locked, even to the PIN.
    fresh = home("fresh")
    done = orbital(right, "wallet", "--home", str(fresh), "list")
    assert done.returncode == 5 and "nothing was tried" in done.stderr, done.stderr
    shutil.rmtree(first)
    done = orbital(right, "wallet", "--home", str(fresh), "list")
    assert done.returncode == 5
    # The state directory may not be put inside the home.
    inside = {**right, "ORBITAL_STATE_DIR": str(fresh / "state")}
    done = orbital(inside, "wallet", "--home", str(fresh), "list")
    assert done.returncode == 2 and "inside the wallet home" in done.stderr
    # Only the security officer's unlock (or a re-initialisation) resets it.
    from wallet.keys.pin import PinAttempts

    hsm.unlock_token(label, "so-pin-4321", attempts=PinAttempts.in_state_dir(state))
    done = orbital(right, "wallet", "--home", str(fresh), "list")
    assert done.returncode == 0, done.stderr


# -- item 10: no abbreviations, no secrets in messages --------------------------------------

def test_no_parser_of_orbital_accepts_abbreviations() -> None:
    parsers = list(argtypes.all_parsers(build_parser()))
    assert len(parsers) > 40
    assert all(p.allow_abbrev is False for p in parsers), [
        p.prog for p in parsers if p.allow_abbrev]


@pytest.mark.parametrize("argv", [
    ["wallet", "list", "--pin", SECRET_PIN],  # once meant --pin-file SECRET_PIN
    ["wallet", "list", f"--pin={SECRET_PIN}"],
    ["wallet", "sign-message", "hi", "--pin", SECRET_PIN],
    ["wallet", "new", "--password", SECRET_PIN],  # once meant --password-file
    ["wallet", "list", "--private-key", SECRET_KEY],
    ["wallet", "list", SECRET_PIN],
    ["wallet", SECRET_PIN],
    ["wallet", SECRET_KEY],
    ["ground", "cosign", "e.json", "--keystore", "k", "--password", SECRET_PIN],
    ["wallet", "audit", "verify", "--signer", SECRET_KEY],
    ["wallet", "audit", "verify-export", "x.json", "--signer", SECRET_KEY],
    ["wallet", "sign-tx", "--nonce", "0", "--gas", "1", "--value", SECRET_KEY],
])
def test_usage_errors_never_repeat_a_secret(capsys: pytest.CaptureFixture[str],
                                            home_env: dict[str, str], argv: list[str]) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    secret = SECRET_KEY if SECRET_KEY in argv else SECRET_PIN
    assert secret not in err + out and secret.removeprefix("0x") not in err + out
    assert "Traceback" not in err


def test_a_pin_given_as_the_pin_file_is_not_repeated(
        capsys: pytest.CaptureFixture[str], home_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "wallet.toml").write_text('backend = "pkcs11"\n')
    for option in ("--pin-file", "--password-file"):
        code, out, err = run(capsys, "wallet", "list", option, SECRET_PIN)
        assert code == 2 and SECRET_PIN not in err + out, err
        assert err.count("\n") == 1
    code, _, err = run(capsys, "wallet", "init-token", "--so-pin-file", SECRET_PIN)
    assert code == 2 and SECRET_PIN not in err
    # A PIN file that is not text: the decoder's message would quote its bytes.
    pin_file = tmp_path / "pin"
    pin_file.write_bytes(b"\xff\xfe" + SECRET_PIN.encode())
    pin_file.chmod(0o600)
    code, _, err = run(capsys, "wallet", "list", "--pin-file", str(pin_file))
    assert code == 2 and "not UTF-8" in err and "0xff" not in err


@pytest.mark.hsm
def test_a_wrong_pin_or_password_is_not_repeated(
        softhsm: SoftHsm, tmp_path: Path) -> None:
    label = softhsm.take()
    home = tmp_path / "home"
    home.mkdir()
    (home / "wallet.toml").write_text(f'backend = "pkcs11"\n[pkcs11]\ntoken = "{label}"\n')
    env = {**os.environ, "ORBITAL_HOME": str(home), "ORBITAL_STATE_DIR": str(tmp_path / "s"),
           "ORBITAL_HSM_PIN": SECRET_PIN, "PYTHONPATH": str(REPO)}
    done = orbital(env, "wallet", "list")
    assert done.returncode == 4 and SECRET_PIN not in done.stderr + done.stdout
    keystore = tmp_path / "op.json"
    create_keystore(keystore, PASSWORD, kdf="pbkdf2", iterations=2)
    envelope = tmp_path / "e.json"
    envelope.write_text("{}")
    env["ORBITAL_KEYSTORE_PASSWORD"] = SECRET_PIN
    done = orbital(env, "ground", "command", "--payload", str(envelope), "--nonce", "1",
                   "--satellite", "s", "--chain-id", "1", "--keystore", str(keystore),
                   "--out", str(tmp_path / "out.json"))
    assert done.returncode == 4 and SECRET_PIN not in done.stderr + done.stdout


# -- item 12: bad input is one line, exit 2 ------------------------------------------------

@pytest.mark.parametrize("argv, says", [
    (["wallet", "audit", "verify", "--signer", "zz"], "--signer"),
    (["wallet", "audit", "verify-export", "x.json", "--signer", "zz"], "--signer"),
    (["wallet", "sign-message", "--hex", "zz"], "--hex"),
    (["wallet", "sign-message", "--hex", "0x1"], "--hex"),
    (["wallet", "sign-tx", "--nonce", "0", "--gas", "1", "--value", "1.5wei"], "wei"),
    (["wallet", "sign-tx", "--nonce", "0", "--gas", "1", "--max-fee=-1gwei"], "amount"),
    (["wallet", "sign-tx", "--nonce", "0", "--gas", "1", "--send", "zz"], "http"),
    (["wallet", "queue", "send", "--rpc", "zz"], "http"),
    (["wallet", "--home", "/etc/passwd", "new"], "Not a directory"),
])
def test_bad_input_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str],
                                          home_env: dict[str, str], argv: list[str],
                                          says: str) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2, err
    assert says in err and "internal error" not in err and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 or (lines[0].startswith("usage:") and "error:" in lines[-1])


def test_bad_input_through_a_real_process_has_no_traceback(home_env: dict[str, str]) -> None:
    for argv in (["wallet", "audit", "verify", "--signer", "zz"],
                 ["wallet", "sign-message", "--hex", "zz"]):
        done = orbital(home_env, *argv)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr and "internal error" not in done.stderr


# -- item 12: amounts with units ------------------------------------------------------------

@pytest.mark.parametrize("text, wei", [
    ("0", 0), ("21000", 21000), ("0x5208", 21000), ("1ether", 10**18),
    ("1.5ether", 15 * 10**17), ("20gwei", 20 * 10**9), ("20 gwei", 20 * 10**9),
    ("100wei", 100), ("0.000000001ether", 10**9), ("1ETHER", 10**18),
    ("1.10gwei", 1_100_000_000),
])
def test_amounts_take_units_as_cast_does(text: str, wei: int) -> None:
    assert argtypes.wei(text) == wei


@pytest.mark.parametrize("text", ["", "1.5wei", "1e18", "-1", "1 eth", "ether", "0.1.2gwei",
                                  "1_000", str(2**256), "nan"])
def test_amounts_that_are_not_exact_wei_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        argtypes.wei(text)


def test_sign_tx_takes_amounts_with_units() -> None:
    args = build_parser().parse_args(
        ["wallet", "sign-tx", "--nonce", "0", "--gas", "21000", "--value", "1.5ether",
         "--max-fee", "20gwei", "--priority-fee", "1gwei", "--to", TREASURY])
    assert (args.value, args.max_fee, args.priority_fee) == (15 * 10**17, 20 * 10**9, 10**9)
    args = build_parser().parse_args(["wallet", "sign-tx", "--nonce", "0", "--gas", "1",
                                      "--type", "0", "--gas-price", "3gwei"])
    assert args.gas_price == 3 * 10**9 and args.value == 0


# -- item 12: one refused queue entry does not block the rest -------------------------------

class _Rpc(BaseHTTPRequestHandler):
    refuse: ClassVar[set[str]] = set()
    seen: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["content-length"])))
        tx_hash = "0x" + keccak(hexstr=request["params"][0]).hex()
        self.seen.append(tx_hash)
        if tx_hash in self.refuse:
            answer = {"jsonrpc": "2.0", "id": 1,
                      "error": {"code": -32000, "message": "replacement transaction underpriced"}}
        else:
            answer = {"jsonrpc": "2.0", "id": 1, "result": tx_hash}
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def rpc() -> Iterator[tuple[str, type[_Rpc]]]:
    handler = type("Rpc", (_Rpc,), {"refuse": set(), "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_queue_send_records_a_refused_entry_and_still_sends_the_rest(
        capsys: pytest.CaptureFixture[str], home_env: dict[str, str], tmp_path: Path,
        rpc: tuple[str, type[_Rpc]]) -> None:
    from node.outbox.checks import admit
    from node.outbox.store import Outbox

    url, handler = rpc
    home = tmp_path / "home"
    home.mkdir()
    senders = [Account.create(), Account.create()]
    hashes = []
    with Outbox(home / "outbox.sqlite") as outbox:
        for sender in senders:
            for nonce in (0, 1):
                signed = sender.sign_transaction({
                    "type": 2, "chainId": 31337, "nonce": nonce, "gas": 21000, "to": TREASURY,
                    "value": 1, "maxFeePerGas": 2 * 10**9, "maxPriorityFeePerGas": 10**9})
                outbox.add(admit(bytes(signed.raw_transaction), chain_id=31337,
                                 verified_nonce=0))
                hashes.append("0x" + bytes(signed.hash).hex())
    stuck = min(hashes[:2] + hashes[2:], key=lambda h: h)  # any one of them
    handler.refuse.add(stuck)
    code, out, err = run(capsys, "wallet", "queue", "send", "--rpc", url)
    assert code == 7, err
    assert sorted(handler.seen) == sorted(hashes)  # every entry was offered
    assert f"refused {stuck}" in out and "underpriced" in err and err.count("\n") == 1
    with Outbox(home / "outbox.sqlite") as outbox:
        states = {"0x" + e.hash.hex(): e for e in outbox.entries()}
    assert states[stuck].state == "queued" and "underpriced" in states[stuck].last_error
    assert all(states[h].state == "sent" for h in hashes if h != stuck)
    # The next pass offers only the stuck one; accepted now, it goes out too.
    handler.refuse.clear()
    handler.seen.clear()
    code, out, err = run(capsys, "wallet", "queue", "send", "--rpc", url)
    assert code == 0, err
    assert handler.seen == [stuck]


def test_queue_send_stops_when_the_rpc_cannot_be_reached(
        capsys: pytest.CaptureFixture[str], home_env: dict[str, str], tmp_path: Path) -> None:
    from node.outbox.checks import admit
    from node.outbox.store import Outbox

    home = tmp_path / "home"
    home.mkdir()
    sender = Account.create()
    with Outbox(home / "outbox.sqlite") as outbox:
        signed = sender.sign_transaction({
            "type": 2, "chainId": 31337, "nonce": 0, "gas": 21000, "to": TREASURY, "value": 1,
            "maxFeePerGas": 2 * 10**9, "maxPriorityFeePerGas": 10**9})
        outbox.add(admit(bytes(signed.raw_transaction), chain_id=31337, verified_nonce=0))
    code, _, err = run(capsys, "wallet", "queue", "send", "--rpc", "http://127.0.0.1:9")
    assert code == 7 and "could not reach" in err and err.count("\n") == 1


# -- item 12: ground cosign shows what it signs and asks -----------------------------------

@pytest.fixture
def envelope(tmp_path: Path, home_env: dict[str, str],
             capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path]:
    """An envelope signed by a first operator, and a second operator's keystore."""
    first, second = tmp_path / "alice.json", tmp_path / "bob.json"
    create_keystore(first, PASSWORD, kdf="pbkdf2", iterations=2)
    create_keystore(second, PASSWORD, kdf="pbkdf2", iterations=2)
    payload = tmp_path / "tx.json"
    payload.write_text(json.dumps({
        "type": 2, "chainId": 31337, "nonce": 4, "gas": 21000, "to": TREASURY,
        "value": str(15 * 10**17), "maxFeePerGas": "20000000000",
        "maxPriorityFeePerGas": "1000000000", "data": "0xa9059cbb" + "00" * 64}))
    out = tmp_path / "envelope.json"
    code, _, err = run(capsys, "ground", "command", "--payload", str(payload), "--nonce", "7",
                       "--satellite", "sat-1", "--chain-id", "31337", "--keystore", str(first),
                       "--out", str(out))
    assert code == 0, err
    return out, second


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_cosign_without_a_terminal_or_yes_signs_nothing(
        envelope: tuple[Path, Path], home_env: dict[str, str]) -> None:
    path, keystore = envelope
    before = path.read_bytes()
    done = orbital(home_env, "ground", "cosign", str(path), "--keystore", str(keystore))
    assert done.returncode == 2 and "--yes" in done.stderr and done.stderr.count("\n") == 1
    assert path.read_bytes() == before
    assert "1.5 ether" in done.stdout  # it still showed what it would have signed
    done = orbital(home_env, "ground", "cosign", str(path), "--keystore", str(keystore),
                   "--yes", "--satellite", "sat-1")
    assert done.returncode == 0, done.stderr
    assert len(json.loads(path.read_text())["signatures"]) == 2


def test_cosign_shows_the_decoded_transaction_and_asks(
        envelope: tuple[Path, Path], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    path, keystore = envelope
    before = path.read_bytes()
    monkeypatch.setattr(sys, "stdin", _Terminal("n\n"))
    code, out, err = run(capsys, "ground", "cosign", str(path), "--keystore", str(keystore))
    assert code == 1 and "declined" in err and "[y/N]" in err
    assert path.read_bytes() == before
    for shown in ("sign_transaction, nonce 7", "chain      31337", TREASURY, "1.5 ether",
                  "20 gwei per gas", "at most 420000 gwei (gas", "68 bytes, selector 0xa9059cbb",
                  "nonce      4", "signed by"):
        assert shown in out, (shown, out)
    monkeypatch.setattr(sys, "stdin", _Terminal("y\n"))
    code, out, err = run(capsys, "ground", "cosign", str(path), "--keystore", str(keystore),
                         "--satellite", "sat-1")
    assert code == 0, err
    assert "sat-1 (0x" in out
    assert len(json.loads(path.read_text())["signatures"]) == 2


def test_cosign_refuses_a_command_for_another_satellite(
        envelope: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    path, keystore = envelope
    code, _, err = run(capsys, "ground", "cosign", str(path), "--keystore", str(keystore),
                       "--yes", "--satellite", "sat-2")
    assert code == 2 and "not for satellite 'sat-2'" in err
    assert len(json.loads(path.read_text())["signatures"]) == 1


@pytest.mark.parametrize("verb", ["verify-command", "verify-head"])
def test_ground_operator_lists_do_not_repeat_key_material(
        capsys: pytest.CaptureFixture[str], home_env: dict[str, str], verb: str) -> None:
    extra = ["--satellite", "s"] if verb == "verify-command" else []
    code, _, err = run(capsys, "ground", verb, "x.json", "--operators", SECRET_KEY,
                       "--threshold", "1", "--chain-id", "1", *extra)
    assert code == 2 and "is not an address" in err
    assert SECRET_KEY.removeprefix("0x") not in err
