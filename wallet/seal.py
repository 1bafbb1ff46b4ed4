"""The wallet's seal: what the signer obeys, authenticated by a key inside the signer
(issue #16 item 1).

``wallet.toml`` names the operators and their threshold, the chain and satellite commands
are bound to, and the sha256 of the policy; ``policy.toml`` holds the rules. Both are files,
and every file may be written by someone who is not an operator. So the security-relevant
fields (:func:`sealed_fields`) are sealed in ``HOME/wallet.seal``::

    {"version": 1, "fields": {...}, "auth": "hmac-sha256" | "signature", "mac": "0x..."}

authenticated over ``rlp([b"orbital-wallet-seal/1", address, canonical JSON of fields])``
by

* a PKCS#11 wallet: HMAC-SHA256 by a secret key generated in the token
  (:meth:`wallet.keys.pkcs11.Pkcs11Signer.seal_mac`; never leaves it);
* a keystore wallet: a signature by the wallet's signing key over the tagged EIP-191
  digest (:func:`wallet.anchor.tagged_digest`, the audit head's construction with its own
  tag).

Opening the signer (:func:`check_seal`) refuses (:class:`SealError`, exit 8) a
``wallet.toml`` whose sealed fields differ from the seal, a seal that does not
authenticate, a seal that is not the last one the audit log records (an older one put
back), and a missing seal for a wallet that was sealed (the token holds its seal key, or
the audit log records a seal). The policy file must still hash to the sealed sha256.

Every seal is an audit entry (``wallet_sealed``: the fields, the seal's keccak256, why).
A wallet is sealed once at initialisation: ``orbital wallet init``, or the first open of a
wallet whose audit log is empty. Afterwards only operator commands change the fields
(``set_policy``, ``set_operators``, ``set_chain``, ``set_satellite``: m-of-n envelopes,
:mod:`wallet.commands`), applied by :func:`reseal`. A wallet with entries but no seal
(written before seals existed) is refused until someone with the PIN or password seals it
explicitly with ``orbital wallet init``.

A sealed wallet whose audit log is empty (deleted with its head file: the spending history
with it) is refused too, until ``orbital wallet audit rotate`` starts a new log.

Replaying ``wallet.seal`` together with a copy of the audit log and its head file taken at
the time of that seal is refused for a PKCS#11 wallet (the token keeps the newer audit head:
:class:`wallet.anchor.TokenHead`); a keystore wallet catches it only with the ground's
known head (:mod:`wallet.anchor`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from eth_utils import keccak

from wallet.anchor import check_tagged, sign_tagged
from wallet.audit import AuditLog
from wallet.config import WalletConfig
from wallet.errors import AuditError
from wallet.files import write_atomic
from wallet.keys.signer import Signer

SEAL_FILE = "wallet.seal"
KIND_SEALED = "wallet_sealed"
"""Audit entry of every seal: ``{"fields", "seal", "reason", ...}``."""
_TAG = b"orbital-wallet-seal/1"
_VERSION = 1


class SealError(AuditError):
    """What the signer would load is not what was sealed (exit 8, like a damaged log)."""


def sealed_fields(config: WalletConfig, address: bytes) -> dict[str, Any]:
    """The fields of ``config`` the seal covers, for the key ``address``."""
    return {"address": "0x" + bytes(address).hex(), "chain_id": config.chain_id,
            "satellite": config.satellite, "policy_file": config.policy_file,
            "policy_sha256": config.policy_sha256,
            "operators": ["0x" + a.hex() for a in config.operators],
            "threshold": config.threshold}


def _body(fields: Mapping[str, Any]) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def seal_digest(fields: Mapping[str, Any]) -> str:
    """keccak256 of the sealed fields' canonical JSON (what audit entries name)."""
    return "0x" + keccak(_body(fields)).hex()


def _is_token(signer: Signer) -> bool:
    return hasattr(signer, "seal_mac")


def _mac(signer: Signer, fields: Mapping[str, Any], create: bool) -> tuple[str, bytes]:
    if _is_token(signer):
        data = _TAG + bytes(signer.address) + _body(fields)
        return "hmac-sha256", signer.seal_mac(data, create=create)  # type: ignore[attr-defined]
    return "signature", sign_tagged(signer, _TAG, _body(fields))


def _check_mac(signer: Signer, fields: Mapping[str, Any], auth: str, mac: bytes,
               where: str) -> None:
    import hmac

    if _is_token(signer):
        if auth != "hmac-sha256":
            raise SealError(f"{where}: not sealed by this wallet's token ({auth!r})")
        if not signer.has_seal_key():  # type: ignore[attr-defined]
            raise SealError(f"{where}: the token holds no seal key for this wallet: the seal "
                            "was made elsewhere")
        expected = _mac(signer, fields, False)[1]
        if not hmac.compare_digest(expected, mac):
            raise SealError(f"{where}: its MAC does not verify with the token's seal key: "
                            "the seal or wallet.toml was edited")
        return
    if auth != "signature":
        raise SealError(f"{where}: not sealed by this wallet's key ({auth!r})")
    check_tagged(bytes(signer.address), mac, _TAG, _body(fields), subject="wallet seal",
                 where=where)


def _sealed_entries(audit: AuditLog) -> list[dict[str, Any]]:
    return [json.loads(e.payload) for e in audit.authenticated_entries()
            if e.kind == KIND_SEALED]


def _write(config: WalletConfig, signer: Signer, audit: AuditLog, fields: dict[str, Any],
           reason: str, extra: Mapping[str, Any], create: bool) -> None:
    auth, mac = _mac(signer, fields, create)
    audit.append(KIND_SEALED, {"fields": fields, "seal": seal_digest(fields),
                               "reason": reason, **extra})
    doc = {"version": _VERSION, "fields": fields, "auth": auth, "mac": "0x" + mac.hex()}
    write_atomic(config.path(SEAL_FILE), (json.dumps(doc, indent=1) + "\n").encode(),
                 mode=0o600)


def _read(path: Path) -> tuple[dict[str, Any], str, bytes]:
    try:
        doc = json.loads(path.read_text())
        fields, auth = doc["fields"], doc["auth"]
        mac = bytes.fromhex(doc["mac"].removeprefix("0x"))
        if doc["version"] != _VERSION or not isinstance(fields, dict) \
                or not isinstance(auth, str):
            raise ValueError
    except OSError as exc:
        raise SealError(f"{path}: cannot read: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise SealError(f"{path} is not a wallet seal") from None
    return fields, auth, mac


def is_sealed(config: WalletConfig) -> bool:
    """Whether the home holds a seal file (the CLI then proposes instead of applying)."""
    return config.path(SEAL_FILE).exists()


def check_seal(config: WalletConfig, signer: Signer, audit: AuditLog) -> None:
    """Refuse (:class:`SealError`) what the module docstring says; seal a wallet on its
    first open (empty audit log, no seal yet). Call under the wallet lock."""
    path = config.path(SEAL_FILE)
    fields = sealed_fields(config, signer.address)
    entries = _sealed_entries(audit)
    if not path.exists():
        had_key = _is_token(signer) and signer.has_seal_key()  # type: ignore[attr-defined]
        if had_key or entries:
            how = "its token holds the seal key" if had_key else "the audit log records it"
            raise SealError(f"{path} is missing but this wallet was sealed ({how}): it was "
                            "deleted; put it back (nothing opens without it)")
        if audit.head().seq > 0:
            raise SealError(
                f"{config.path('wallet.toml')} is not sealed and the audit log already has "
                f"{audit.head().seq} entries: check wallet.toml and the policy, then seal them "
                "once with `orbital wallet init` (PIN or password)")
        _write(config, signer, audit, fields, "first open", {}, True)
        return
    stored, auth, mac = _read(path)
    _check_mac(signer, stored, auth, mac, str(path))
    if stored != fields:
        changed = ", ".join(k for k in sorted(set(stored) | set(fields))
                            if stored.get(k) != fields.get(k))
        raise SealError(f"{config.path('wallet.toml')} differs from its seal ({changed}): "
                        "edited outside an operator command; only m-of-n commands change it")
    if entries and entries[-1].get("seal") != seal_digest(stored):
        raise SealError(f"{path} is not the last seal the audit log records "
                        f"({entries[-1].get('seal')}): an older seal was put back")
    if not entries:  # a new log (rotated): record the seal it starts under
        if audit.head().seq == 0:  # sealing writes its entry first: never legitimately
            raise SealError(f"{config.path('audit.sqlite')} is empty but the wallet is "
                            "sealed: the audit log (and its head) was deleted or replaced; "
                            "restore it, or start a new one with `orbital wallet audit "
                            "rotate`")
        audit.append(KIND_SEALED, {"fields": stored, "seal": seal_digest(stored),
                                   "reason": "audit log started under this seal"})


def seal_explicitly(config: WalletConfig, signer: Signer, audit: AuditLog) -> dict[str, Any]:
    """``orbital wallet init``: seal ``config`` as it is now (refused once sealed)."""
    path = config.path(SEAL_FILE)
    if path.exists() or _sealed_entries(audit) or (
            _is_token(signer) and signer.has_seal_key()):  # type: ignore[attr-defined]
        raise SealError(f"{config.home} is sealed already: its settings change only by "
                        "operator commands (set_policy, set_operators, set_chain, "
                        "set_satellite)")
    fields = sealed_fields(config, signer.address)
    _write(config, signer, audit, fields, "init", {}, True)
    return fields


def reseal(config: WalletConfig, signer: Signer, audit: AuditLog, reason: str,
           extra: Mapping[str, Any]) -> None:
    """Seal ``config`` (already checked, e.g. an accepted operator command) and record
    it. Call under the wallet lock, after :func:`check_seal` of the previous one."""
    _write(config, signer, audit, sealed_fields(config, signer.address), reason, extra, False)
