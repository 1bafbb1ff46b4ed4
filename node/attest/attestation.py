"""Signed EIP-712 ``TaskResult`` attestations: making them (through the wallet) and checking
other satellites' (DESIGN.md, data flow 4).

The encodings (domain, struct, digest) are :mod:`contracts.eip712`'s; nothing here redefines
them. :func:`attest` signs through either signing interface of the wallet:

* an ``OnboardSigner`` (anything with ``sign_typed_data(document)``): the full EIP-712 document
  goes through the policy (its ``[[messages.typed_data]]`` rule must list the
  ``OrbitalTaskAttestations`` domain) and the audit log; a refusal raises the wallet's
  ``PolicyDeniedError`` unchanged;
* a raw ``Signer`` (``sign_digest(digest)``): the EIP-712 digest is signed directly (tests,
  ground tools).

Either way the returned signature is checked to recover to the signer before it is wrapped,
so a signer whose digest differs from the contract's is caught here, not on chain.

:func:`verify_attestation` is what a node runs on an attestation from a peer: the checks the
contract makes (65 bytes, v 27/28, low s, recovers to a registered active signer) plus the
node's own (the claimed signer is the one that signed, the model is one it accepts).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import coincurve
from eth_utils import keccak

from contracts import eip712


class AttestationError(Exception):
    """An attestation was refused; ``str(error)`` is a one-line reason."""


class MalformedSignature(AttestationError):
    """Not 65 bytes, v not 27/28, r or s out of range."""


class HighS(AttestationError):
    """s in the upper half of the curve order (EIP-2; the contract refuses it)."""


class BadSignature(AttestationError):
    """The signature does not recover to the claimed signer (tampered result, wrong domain,
    wrong signer claim)."""


class UnknownSigner(AttestationError):
    """The signer is not an active registered satellite."""


class WrongModel(AttestationError):
    """The result names a model this node does not accept."""


class WrongDomain(AttestationError):
    """Chain id or verifying contract differ from this node's TaskAttestations."""


def _hx(value: bytes) -> str:
    return "0x" + value.hex()


@dataclass(frozen=True)
class SignedAttestation:
    """``signer``'s signature over ``result`` under the TaskAttestations domain
    ``(chain_id, contract)``."""

    result: eip712.TaskResult
    signer: bytes
    """20-byte address the attestation claims to be from."""
    signature: bytes
    """65 bytes ``r || s || v``."""
    chain_id: int
    contract: bytes
    """20-byte address of TaskAttestations (the EIP-712 ``verifyingContract``)."""

    def __post_init__(self) -> None:
        if not isinstance(self.result, eip712.TaskResult):
            raise TypeError("result must be a contracts.eip712.TaskResult")
        for name, size in (("signer", 20), ("signature", 65), ("contract", 20)):
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) != size:
                raise ValueError(f"{name} must be {size} bytes")
        if isinstance(self.chain_id, bool) or not isinstance(self.chain_id, int) \
                or not 0 <= self.chain_id < 1 << 64:
            raise ValueError("chain_id must be an integer in [0, 2**64)")

    @property
    def digest(self) -> bytes:
        """The EIP-712 digest signed."""
        return eip712.task_result_digest(self.result, self.chain_id, self.contract)

    def describe(self) -> str:
        r = self.result
        return (f"attestation by {_hx(self.signer)} of task {_hx(r.task_id)} "
                f"output {_hx(r.output_hash)} epoch {r.epoch}")


# --------------------------------------------------------------------------- signing

@runtime_checkable
class TypedDataSigner(Protocol):
    """The on-board signing path (``wallet.onboard.OnboardSigner``), structurally."""

    @property
    def address(self) -> bytes: ...

    def sign_typed_data(self, document: Any) -> Any: ...


def as_address(contract: bytes | str) -> bytes:
    raw = bytes.fromhex(contract.removeprefix("0x")) if isinstance(contract, str) else contract
    if len(raw) != 20:
        raise ValueError(f"a contract address is 20 bytes, not {len(raw)}")
    return raw


def _signing_function(signer: Any) -> Callable[[eip712.TaskResult, int, bytes], bytes]:
    """One path for both interfaces: ``(result, chain_id, contract) -> 65 bytes``."""
    if isinstance(signer, TypedDataSigner):
        def sign(result: eip712.TaskResult, chain_id: int, contract: bytes) -> bytes:
            document = eip712.task_result_typed_data(result, chain_id, contract)
            return bytes(signer.sign_typed_data(document).to_bytes())
        return sign
    if callable(getattr(signer, "sign_digest", None)):
        def sign_raw(result: eip712.TaskResult, chain_id: int, contract: bytes) -> bytes:
            return eip712.sign_task_result(result, chain_id, contract, signer)
        return sign_raw
    raise TypeError(f"{type(signer).__name__} has neither sign_typed_data nor sign_digest")


def attest(result: eip712.TaskResult, signer: Any, chain_id: int,
           contract: bytes | str) -> SignedAttestation:
    """Sign ``result`` with ``signer`` (an ``OnboardSigner``: policy + audit; or a raw
    ``Signer``) for TaskAttestations at ``contract`` on ``chain_id``.

    Raises whatever the signer raises (``PolicyDeniedError`` when the policy does not list the
    domain), and :class:`BadSignature` if the signature does not recover to ``signer.address``.
    """
    contract_raw = as_address(contract)
    signature = _signing_function(signer)(result, chain_id, contract_raw)
    att = SignedAttestation(result, bytes(signer.address), signature, chain_id, contract_raw)
    check_signature(att)
    return att


def attestation_only_policy(chain_id: int, contract: bytes | str, *,
                            submit: bool = False) -> str:
    """The TOML of a wallet policy (``configs/policy.example.toml`` explains every rule) under
    which a satellite signs ``TaskResult`` attestations for TaskAttestations at ``contract``
    on ``chain_id`` and nothing else: no value may leave, no other typed data is signed.
    With ``submit`` it may also sign transactions calling ``submitCertificate`` on that
    contract (value 0, fees capped) -- what a node that submits certificates needs. Fees
    count toward the ether limits, so those then allow one transaction's fee cap and a day
    of 100 such fees."""
    from node.attest.certificate import SUBMIT_CERTIFICATE

    address = "0x" + as_address(contract).hex()
    per_transaction, per_24h = ('"0.01 ether"', '"1 ether"') if submit else ("0", "0")
    destinations = "" if not submit else f"""
[destinations]
allow_create = false
[[destinations.allow]]
address = "{address}"
label = "TaskAttestations"
selectors = ["{SUBMIT_CERTIFICATE}"]
"""
    return f"""version = 1
chain_id = {chain_id}
[limits]
per_transaction = {per_transaction}
per_24h = {per_24h}
[fees]
max_total_fee = "0.01 ether"
[[messages.typed_data]]
name = "{eip712.DOMAIN_NAME}"
chain_id = {chain_id}
verifying_contract = "{address}"
primary_types = ["TaskResult"]
{destinations}"""


# --------------------------------------------------------------------------- verifying

Recover = Callable[[bytes, bytes], bytes]
"""Public-key recovery: ``(digest, 65-byte r||s||v signature) -> 20-byte address``, raising on
a signature that recovers to no key. The default is :func:`coincurve_recover`; the gossip
benchmark swaps in eth-account's as its baseline."""


def coincurve_recover(digest: bytes, signature: bytes) -> bytes:
    """The address recovered from a 65-byte ``r || s || v`` (v 27/28) signature by
    libsecp256k1 (coincurve; it raises a bare ``Exception`` when recovery fails)."""
    public = coincurve.PublicKey.from_signature_and_message(
        signature[:64] + bytes([signature[64] - 27]), digest, hasher=None)
    return keccak(public.format(compressed=False)[1:])[12:]


def recover_signer(digest: bytes, signature: bytes, *,
                   recover: Recover = coincurve_recover) -> bytes:
    """The address that made ``signature`` (65 bytes r||s||v, v 27/28, low s) over ``digest``.
    Raises :class:`MalformedSignature`, :class:`HighS` or :class:`BadSignature`.
    ``recover`` does the curve step once the format checks have passed."""
    if len(signature) != 65:
        raise MalformedSignature(f"signature is {len(signature)} bytes, expected 65")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    v = signature[64]
    if v not in (27, 28):
        raise MalformedSignature(f"signature v is {v}, expected 27 or 28")
    if not (0 < r < eip712.SECP256K1_N and 0 < s < eip712.SECP256K1_N):
        raise MalformedSignature("signature r or s out of range")
    if s > eip712.HALF_N:
        raise HighS("signature has a high s (EIP-2)")
    try:
        return recover(digest, signature)
    except AttestationError:
        raise
    except Exception:
        raise BadSignature("signature recovers to no key") from None


def check_signature(att: SignedAttestation, *, recover: Recover = coincurve_recover) -> bytes:
    """Signature checks only: well formed, low s, recovers to ``att.signer``."""
    recovered = recover_signer(att.digest, att.signature, recover=recover)
    if recovered != att.signer:
        raise BadSignature(f"signature recovers to {_hx(recovered)}, not the claimed signer "
                           f"{_hx(att.signer)}")
    return recovered


class RegistryView(Protocol):
    """Who may attest: the SatelliteRegistry's active signers, or a stand-in."""

    def is_active(self, address: bytes) -> bool: ...


class StaticRegistry:
    """A fixed set of active signers (tests, offline nodes)."""

    def __init__(self, active: Iterable[bytes] = ()) -> None:
        self.active: set[bytes] = {bytes(a) for a in active}

    def is_active(self, address: bytes) -> bool:
        return bytes(address) in self.active


def verify_attestation(att: SignedAttestation, registry: RegistryView,
                       accepted_models: Collection[bytes], *, chain_id: int | None = None,
                       contract: bytes | str | None = None,
                       recover: Recover = coincurve_recover) -> bytes:
    """Check a peer's attestation; return its signer or raise an :class:`AttestationError`.

    In order: the domain is this node's (when ``chain_id`` / ``contract`` are given), the
    signature is well formed and low-s and recovers (with ``recover``) to the claimed signer,
    the signer is active in ``registry``, and the model is in ``accepted_models``.
    """
    if chain_id is not None and att.chain_id != chain_id:
        raise WrongDomain(f"attestation is for chain {att.chain_id}, not {chain_id}")
    if contract is not None and att.contract != as_address(contract):
        raise WrongDomain(f"attestation is for contract {_hx(att.contract)}, not "
                          f"{_hx(as_address(contract))}")
    signer = check_signature(att, recover=recover)
    if not registry.is_active(signer):
        raise UnknownSigner(f"signer {_hx(signer)} is not an active registered satellite")
    if att.result.model_hash not in accepted_models:
        raise WrongModel(f"model {_hx(att.result.model_hash)} is not an accepted model")
    return signer
