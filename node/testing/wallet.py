"""A real keystore wallet for tests: the plugin's ``keystore_wallet``.

The wallet home is what ``orbital wallet`` makes: one encrypted keystore (a light KDF: a
test, not flight), ``wallet.toml`` with the chain id and the pinned sha256 of
``policy.toml``, and the password in ``home/password`` (mode 600). Signing goes through
the real on-board path -- ``orbital wallet sign-tx`` as its own process: the seal, the
policy, the audit log, then the key -- so a test sees exactly what the wallet would sign
or refuse.

The default policy lets the key create contracts and send ether to anvil's ten dev
accounts (generous limits, fees capped at 1 ether). :meth:`KeystoreWallet.allow` adds a
destination (and the functions that may be called there) *before the first signature*:
the first open seals the wallet, after which only operator commands change its policy.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.devnet import CHAIN_ID, DEV_PRIVATE_KEYS

FUNDING_WEI = 100 * 10**18


class WalletRefusedError(RuntimeError):
    """``orbital wallet sign-tx`` refused (policy denied, sealed wallet, bad request); the
    message is its error line and ``exit_code`` its exit code (3: policy denied)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Destination:
    """An allowed ``to``: plain transfers, or calls of ``selectors`` (signatures such as
    ``"set(uint256)"`` or 4-byte hex)."""

    address: str
    selectors: tuple[str, ...] = ()
    label: str = "test"

    def toml(self) -> str:
        lines = ["[[destinations.allow]]", f'address = "{self.address.lower()}"',
                 f"label = {json.dumps(self.label)}"]
        if self.selectors:
            lines.append(f"selectors = {json.dumps(list(self.selectors))}")
        return "\n".join(lines) + "\n"


def dev_addresses() -> list[str]:
    """anvil's dev accounts (``node.devnet.DEV_PRIVATE_KEYS``), lower-case hex."""
    from eth_account import Account

    return [Account.from_key(key).address.lower() for key in DEV_PRIVATE_KEYS]


@dataclass
class KeystoreWallet:
    """A wallet home with one keystore key (see the module docstring)."""

    home: Path
    address: str
    """The key's address, EIP-55 checksummed (as web3.py wants it)."""
    password: str
    chain_id: int = CHAIN_ID
    destinations: list[Destination] = field(default_factory=list)

    @classmethod
    def create(cls, home: Path, chain_id: int = CHAIN_ID) -> KeystoreWallet:
        """Make the wallet home (key, password file, default policy pinned)."""
        from wallet.keys.keystore import create_keystore

        keystores = home / "keystores"
        keystores.mkdir(parents=True)
        password = os.urandom(16).hex()
        temporary = keystores / "new.json.tmp"
        address = create_keystore(temporary, password, kdf="pbkdf2", iterations=1000)
        temporary.rename(keystores / f"0x{address.hex()}.json")
        secret = home / "password"
        secret.write_text(password + "\n")
        secret.chmod(0o600)
        from eth_utils import to_checksum_address

        wallet = cls(home, to_checksum_address(address), password, chain_id,
                     [Destination(a, label=f"anvil dev account {i}")
                      for i, a in enumerate(dev_addresses())])
        wallet._pin()
        return wallet

    @property
    def password_file(self) -> Path:
        return self.home / "password"

    @property
    def sealed(self) -> bool:
        """Whether the wallet was opened (sealed): its policy is then fixed."""
        return (self.home / "wallet.seal").exists() or (self.home / "audit.sqlite").exists()

    def policy(self) -> str:
        """The policy's TOML text (what ``policy.toml`` holds)."""
        return (f"version = 1\nchain_id = {self.chain_id}\n\n[destinations]\n"
                "allow_create = true\n\n"
                + "\n".join(d.toml() for d in self.destinations)
                + '\n[limits]\nper_transaction = "1000 ether"\nper_24h = "10000 ether"\n\n'
                '[fees]\nmax_total_fee = "1 ether"\n')

    def allow(self, address: str, *selectors: str, label: str = "test") -> None:
        """Let the wallet send to ``address``: calls of ``selectors`` (e.g.
        ``"set(uint256)"``), or plain transfers when none are given. Only before the first
        signature (the first open seals the policy)."""
        if self.sealed:
            raise RuntimeError(f"keystore_wallet.allow({address}): the wallet in {self.home} "
                               "is sealed (it signed already); allow destinations first")
        self.destinations.append(Destination(address, tuple(selectors), label))
        self._pin()

    def _pin(self) -> None:
        from wallet.config import WalletConfig, save_config
        from wallet.policy import pin_policy

        policy = self.home / "policy.toml"
        policy.write_text(self.policy())
        save_config(WalletConfig(self.home, chain_id=self.chain_id,
                                 policy_sha256=pin_policy(policy)))

    def fund(self, anvil: Any, wei: int = FUNDING_WEI) -> None:
        """Give the key ``wei`` on ``anvil`` (``anvil_setBalance``)."""
        anvil.rpc("anvil_setBalance", self.address, hex(wei))

    def sign_transaction(self, tx: Mapping[str, Any]) -> bytes:
        """The raw signed transaction for ``tx`` (web3.py's field names: ``to``, ``value``,
        ``data``, ``nonce``, ``gas``, ``chainId``, ``maxFeePerGas`` and
        ``maxPriorityFeePerGas``, or ``gasPrice``; ``from`` is ignored), signed by
        ``orbital wallet sign-tx``: policy-checked, audited, then signed. A refusal raises
        :class:`WalletRefusedError` with the wallet's reason."""
        report = self._sign(tx)
        return bytes.fromhex(report["raw"].removeprefix("0x"))

    def _sign(self, tx: Mapping[str, Any]) -> dict[str, Any]:
        command = [sys.executable, "-m", "node.cli.main", "wallet", "--home", str(self.home),
                   "sign-tx", *_sign_tx_args(tx, self.chain_id), "--password-file",
                   str(self.password_file), "--json"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines() or [f"exit code {done.returncode}"]
            raise WalletRefusedError(f"orbital wallet sign-tx: {lines[-1]}", done.returncode)
        return json.loads(done.stdout)

    def audit_kinds(self) -> list[str]:
        """The kinds of the audit log's entries, oldest first (``wallet_sealed``,
        ``policy_decision``, ``signed``, ...)."""
        import sqlite3

        with contextlib.closing(sqlite3.connect(self.home / "audit.sqlite")) as db:
            return [row[0] for row in db.execute("SELECT kind FROM entries ORDER BY seq")]


_FIELDS = {"to": "--to", "value": "--value", "data": "--data", "input": "--data",
           "nonce": "--nonce", "gas": "--gas", "chainId": "--chain-id",
           "maxFeePerGas": "--max-fee", "maxPriorityFeePerGas": "--priority-fee",
           "gasPrice": "--gas-price", "type": "--type"}


def _sign_tx_args(tx: Mapping[str, Any], chain_id: int) -> list[str]:
    """``orbital wallet sign-tx`` options for a web3.py-style transaction dict."""
    unknown = sorted(set(tx) - set(_FIELDS) - {"from"})
    if unknown:
        raise ValueError(f"keystore_wallet.sign_transaction: field(s) {', '.join(unknown)} "
                         f"are not supported; use {', '.join(sorted(_FIELDS))}")
    values = dict(tx)
    values.setdefault("chainId", chain_id)
    if "type" not in values:
        values["type"] = 0 if "gasPrice" in values else 2
    args: list[str] = []
    for name, value in values.items():
        if name == "from" or value is None:
            continue
        if isinstance(value, bytes | bytearray):
            value = "0x" + bytes(value).hex()
        elif name == "type":
            value = int(value, 16) if isinstance(value, str) else int(value)
        elif isinstance(value, str) and name not in ("to", "data", "input"):
            value = int(value, 16) if value.startswith("0x") else int(value)
        args += [_FIELDS[name], str(value)]
    return args
