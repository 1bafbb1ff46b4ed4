"""Gossip topic validator for attestations.

:class:`AttestationValidator` is a pure, synchronous check ``validate(data) -> bool``: the bytes
must decode as a version-1 attestation (:mod:`node.attest.codec`) and pass
:func:`~node.attest.attestation.verify_attestation` (domain, low-s signature recovering to the
claimed signer, signer active in the registry view, accepted model). Any error rejects; the
reason (the exception's class name, ``DecodeError`` for undecodable bytes) is counted in
:attr:`AttestationValidator.rejections`. py-libp2p neither delivers nor forwards a message its
topic validator rejects (validators answer only accept/reject; there is no "ignore").
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Collection

from node.attest.attestation import (
    AttestationError,
    Recover,
    RegistryView,
    coincurve_recover,
    verify_attestation,
)
from node.attest.codec import DecodeError, decode


class AttestationValidator:
    """Accepts exactly the attestations this node would count toward a certificate."""

    def __init__(self, registry_view: RegistryView, accepted_models: Collection[bytes],
                 chain_id: int | None = None, contract: bytes | str | None = None, *,
                 recover: Recover = coincurve_recover) -> None:
        self.registry_view = registry_view
        self.recover = recover
        """Signature recovery (libsecp256k1 through coincurve; the gossip benchmark times
        eth-account's as its baseline)."""
        self.accepted_models = frozenset(accepted_models)
        self.chain_id = chain_id
        self.contract = contract
        self.accepted = 0
        self.rejections: Counter[str] = Counter()
        self._lock = threading.Lock()  # called from the libp2p thread, read from asyncio

    def validate(self, data: bytes) -> bool:
        """True if ``data`` is a valid attestation for this node's domain, models and registry."""
        try:
            att = decode(data)
            verify_attestation(att, self.registry_view, self.accepted_models,
                               chain_id=self.chain_id, contract=self.contract,
                               recover=self.recover)
        except DecodeError:
            self._count("DecodeError")
            return False
        except AttestationError as exc:
            self._count(type(exc).__name__)
            return False
        except Exception as exc:
            self._count(f"error:{type(exc).__name__}")
            return False
        with self._lock:
            self.accepted += 1
        return True

    __call__ = validate

    def _count(self, reason: str) -> None:
        with self._lock:
            self.rejections[reason] += 1

    @property
    def rejected(self) -> int:
        """Total number of rejected messages."""
        with self._lock:
            return sum(self.rejections.values())
