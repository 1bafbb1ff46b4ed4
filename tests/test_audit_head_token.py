"""Issue #16 item 5: the audit log's head kept inside the HSM (a private token data object
of the signing key, written after every entry), so copies of the wallet's own files cannot
roll it back. Each attack is one that the signed head file alone let through (a copy of
``audit.head`` taken earlier is still a validly signed head). Every command is a real
process on a SoftHSM2 token."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_wallet_cli import POLICY, orbital, wallet_env  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.hsm, pytest.mark.slow]


def _ok(env: dict[str, str], *argv: str) -> str:
    done = orbital(env, *argv)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _refused(env: dict[str, str], *argv: str) -> str:
    done = orbital(env, *argv)
    stderr = done.stderr.strip()
    assert done.returncode == 8, (done.returncode, stderr)
    assert len(stderr.splitlines()) == 1 and "Traceback" not in stderr, stderr
    return stderr


def _hsm_wallet(env: dict[str, str], tmp_path: Path) -> Path:
    """A sealed PKCS#11 wallet with two audited signatures; returns its home."""
    _ok(env, "wallet", "init-token", "--label", "sat-1")
    _ok(env, "wallet", "new")
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY + "\n[messages]\nallow_personal = true\n")
    _ok(env, "wallet", "policy", "pin", str(policy))
    _ok(env, "wallet", "sign-message", "first")
    return Path(env["ORBITAL_HOME"])


def _entries(env: dict[str, str]) -> list[dict[str, str]]:
    return json.loads(_ok(env, "wallet", "audit", "export"))["entries"]


def test_an_older_copy_of_the_log_and_its_head_put_back_is_refused(
        wallet_env: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    """Copy every file of the wallet at entry N, sign on, put the copies back: the copy is a
    consistent older wallet (log, signed head, seal, settings), but the token remembers the
    newer head, so signing and `audit verify` refuse it; `audit rotate` starts a new log
    whose first entry records the token's head, and signing resumes."""
    home = _hsm_wallet(wallet_env, tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(home, copy)
    _ok(wallet_env, "wallet", "sign-message", "second")
    newest = json.loads(_ok(wallet_env, "wallet", "audit", "verify", "--json"))
    assert newest["anchor"] == "token" and newest["anchoredHead"] == newest["head"]

    shutil.rmtree(home)
    shutil.copytree(copy, home)  # the attacker's rollback: every file as it was at entry N
    said = _refused(wallet_env, "wallet", "sign-message", "third")
    assert "truncated" in said, said
    said = _refused(wallet_env, "wallet", "audit", "verify")
    assert "truncated" in said, said

    _ok(wallet_env, "wallet", "audit", "rotate", "--reason", "rolled back on board")
    first = _entries(wallet_env)[0]
    payload = json.loads(bytes.fromhex(first["payload"][2:]))
    assert first["kind"] == "log_rotated"
    assert f"entry {newest['head'].split(':')[0]} {newest['head'].split(':')[1]}" in \
        payload["previous_anchored_head"], payload
    _ok(wallet_env, "wallet", "sign-message", "after the rotation")
    again = json.loads(_ok(wallet_env, "wallet", "audit", "verify", "--json"))
    assert again["anchoredHead"] == again["head"]


def test_deleting_the_log_its_head_and_the_seal_does_not_make_a_new_wallet(
        wallet_env: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    """The audit log, its head file and the seal deleted (a new, empty log would forget the
    spending history): the token still holds the head of the log the signer wrote, so the
    replacement log is refused and the message says what happened. (The seal key in the
    token caught this before too, as a deleted seal; a keystore wallet cannot: README.)"""
    home = _hsm_wallet(wallet_env, tmp_path)
    for name in ("audit.sqlite", "audit.sqlite-wal", "audit.sqlite-shm", "audit.head",
                 "wallet.seal"):
        (home / name).unlink(missing_ok=True)
    said = _refused(wallet_env, "wallet", "sign-message", "as if new")
    assert "replaced or deleted" in said and "token" in said, said
    said = _refused(wallet_env, "wallet", "audit", "verify")
    assert "replaced or deleted" in said, said


def test_the_head_file_alone_is_not_trusted_over_the_token(
        wallet_env: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    """The head file is a copy for reading without the PIN: deleting it changes nothing
    for the signer (the token has the head) and it is written again with the next entry."""
    home = _hsm_wallet(wallet_env, tmp_path)
    (home / "audit.head").unlink()
    _ok(wallet_env, "wallet", "sign-message", "second")
    head = json.loads((home / "audit.head").read_text())
    verified = json.loads(_ok(wallet_env, "wallet", "audit", "verify", "--json"))
    assert verified["head"] == f"{head['seq']}:{head['hash']}"
