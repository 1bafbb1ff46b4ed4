"""The wallet's home directory and its configuration file, ``wallet.toml``.

The home is ``--home DIR``, else ``$ORBITAL_HOME``, else ``~/.orbital``. It holds::

    wallet.toml          this configuration
    wallet.seal          its security-relevant fields, sealed by a key in the signer
                         (wallet.seal); proposals/: changes waiting for operators
    keystores/           encrypted keystores (Web3 Secret Storage v3), one per address
    policy.toml          the policy rules (whose sha256 is pinned below)
    audit.sqlite         the hash-chained audit log
    ledger.sqlite        what the policy has let through (rolling limits, time-locks)
    outbox.sqlite        signed transactions waiting for a ground contact (node.outbox)
    nonces.sqlite        the last accepted operator-command nonce
    pin-attempts.sqlite  failed HSM logins (the lockout counter)

``wallet.toml`` (every key optional; unknown keys are refused)::

    backend = "keystore"            # or "pkcs11"
    key = "0x..."                   # the address to sign with (default: the only key)
    chain_id = 31337                # the chain operator commands are bound to
    satellite = "genesis-1"         # name whose keccak256 is the command satelliteId; no
                                    # default: unset, it is the signing address as 0x hex
                                    # (lower case), unique to this satellite's key

    [pkcs11]
    module = "/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so"
    token = "orbital"
    max_pin_attempts = 5

    [policy]
    file = "policy.toml"
    sha256 = "..."                  # set by `orbital wallet policy pin` (then a
                                    # set_policy command, once the wallet is sealed)

    [operators]
    addresses = ["0x...", "0x..."]
    threshold = 2
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from wallet.errors import MalformedRequestError
from wallet.files import write_atomic

HOME_ENV = "ORBITAL_HOME"
CONFIG_FILE = "wallet.toml"
DEFAULT_PKCS11_MODULE = "/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so"


@dataclass(frozen=True)
class WalletConfig:
    """A wallet's configuration; paths are resolved against ``home``."""

    home: Path
    backend: str = "keystore"
    key: bytes | None = None
    chain_id: int | None = None
    satellite: str | None = None
    """The name whose keccak256 is this satellite's command ``satelliteId``. There is no
    default name (a shared default let a command for one satellite run on another): unset,
    :func:`satellite_name` derives it from the signing address."""
    pkcs11_module: str = DEFAULT_PKCS11_MODULE
    token: str = "orbital"
    max_pin_attempts: int = 5
    policy_file: str = "policy.toml"
    policy_sha256: str | None = None
    operators: tuple[bytes, ...] = field(default=())
    threshold: int = 1

    def path(self, name: str) -> Path:
        """``name`` inside the home directory."""
        return self.home / name

    @property
    def keystore_dir(self) -> Path:
        return self.home / "keystores"

    def to_toml(self) -> str:
        """The configuration as ``wallet.toml`` text."""
        lines = [f'backend = "{self.backend}"']
        if self.key is not None:
            lines.append(f'key = "0x{self.key.hex()}"')
        if self.chain_id is not None:
            lines.append(f"chain_id = {self.chain_id}")
        if self.satellite is not None:
            lines.append(f'satellite = "{self.satellite}"')
        lines += ["", "[pkcs11]",
                  f'module = "{self.pkcs11_module}"', f'token = "{self.token}"',
                  f"max_pin_attempts = {self.max_pin_attempts}", "", "[policy]",
                  f'file = "{self.policy_file}"']
        if self.policy_sha256 is not None:
            lines.append(f'sha256 = "{self.policy_sha256}"')
        lines += ["", "[operators]",
                  "addresses = [" + ", ".join(f'"0x{a.hex()}"' for a in self.operators) + "]",
                  f"threshold = {self.threshold}"]
        return "\n".join(lines) + "\n"


def satellite_name(config: WalletConfig, address: bytes) -> str:
    """The satellite's name for operator commands: ``satellite`` when configured, else the
    signing ``address`` as lower-case ``0x`` hex (unique to the key, so never shared by two
    satellites the way a default name would be)."""
    if config.satellite is not None:
        return config.satellite
    return "0x" + bytes(address).hex()


def wallet_home(explicit: str | None) -> Path:
    """The home directory: ``explicit``, else ``$ORBITAL_HOME``, else ``~/.orbital``."""
    if explicit:
        return Path(explicit)
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".orbital")


def load_config(home: Path) -> WalletConfig:
    """Read ``home/wallet.toml``; a missing file gives the defaults."""
    path = home / CONFIG_FILE
    if not path.exists():
        return WalletConfig(home)
    try:
        doc = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise MalformedRequestError(f"{path}: not valid TOML: {exc}") from None
    top = _table(doc, path.name, {"backend", "key", "chain_id", "satellite", "pkcs11",
                                  "policy", "operators"})
    pkcs11 = _table(top.get("pkcs11", {}), "[pkcs11]", {"module", "token", "max_pin_attempts"})
    policy = _table(top.get("policy", {}), "[policy]", {"file", "sha256"})
    operators = _table(top.get("operators", {}), "[operators]", {"addresses", "threshold"})
    backend = _typed(top, "backend", str, "keystore")
    if backend not in ("keystore", "pkcs11"):
        raise MalformedRequestError(f"{path}: backend must be keystore or pkcs11, not {backend!r}")
    key = top.get("key")
    config = WalletConfig(
        home=home, backend=backend,
        key=None if key is None else _address(key, "key"),
        chain_id=_typed(top, "chain_id", int, None),
        satellite=_typed(top, "satellite", str, None),
        pkcs11_module=_typed(pkcs11, "module", str, DEFAULT_PKCS11_MODULE),
        token=_typed(pkcs11, "token", str, "orbital"),
        max_pin_attempts=_typed(pkcs11, "max_pin_attempts", int, 5),
        policy_file=_typed(policy, "file", str, "policy.toml"),
        policy_sha256=_typed(policy, "sha256", str, None),
        operators=tuple(_address(a, "operators.addresses")
                        for a in _typed(operators, "addresses", list, [])),
        threshold=_typed(operators, "threshold", int, 1),
    )
    if config.operators and not 1 <= config.threshold <= len(config.operators):
        raise MalformedRequestError(
            f"{path}: operators.threshold {config.threshold} must be 1..{len(config.operators)}")
    return config


def save_config(config: WalletConfig) -> None:
    """Write ``wallet.toml`` atomically and durably (:func:`wallet.files.write_atomic`)."""
    write_atomic(config.home / CONFIG_FILE, config.to_toml().encode())


def updated(config: WalletConfig, **changes: Any) -> WalletConfig:
    """A copy of ``config`` with ``changes``, saved."""
    new = replace(config, **changes)
    save_config(new)
    return new


def _table(value: Any, name: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedRequestError(f"{CONFIG_FILE}: {name} must be a table")
    unknown = set(value) - allowed
    if unknown:
        raise MalformedRequestError(f"{CONFIG_FILE}: unknown key(s) in {name}: "
                                    f"{', '.join(sorted(unknown))}")
    return value


def _typed(table: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    value = table.get(key, default)
    if value is not default and (not isinstance(value, kind) or isinstance(value, bool)):
        raise MalformedRequestError(f"{CONFIG_FILE}: {key} must be a {kind.__name__}")
    return value


def _address(value: Any, name: str) -> bytes:
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        try:
            return bytes.fromhex(value[2:])
        except ValueError:
            pass
    raise MalformedRequestError(f"{CONFIG_FILE}: {name}: {value!r} is not a 0x address")
