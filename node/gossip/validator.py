"""Gossip topic validator for attestations: accept, reject, or cannot decide now.

:class:`AttestationValidator` is a synchronous check ``check(data) -> Verdict``:

* :attr:`Verdict.ACCEPT` -- the bytes decode as a version-1 attestation
  (:mod:`node.attest.codec`) and pass :func:`~node.attest.attestation.verify_attestation`
  (domain, low-s signature recovering to the claimed signer, signer active in the registry
  view, accepted model);
* :attr:`Verdict.REJECT` -- they do not (``DecodeError`` or an
  :class:`~node.attest.attestation.AttestationError`): invalid for good, the sender is to blame;
  the reason (the exception's class name) is counted in :attr:`AttestationValidator.rejections`;
* :attr:`Verdict.IGNORE` -- the check itself failed (any other exception, e.g. the registry
  is unreachable): nothing is known about the message. It is neither delivered nor forwarded
  nor held against the sender, and it is decided again later (counted in
  :attr:`AttestationValidator.undecided`).

py-libp2p's topic validators answer only accept/reject, so :mod:`node.gossip.router` maps
IGNORE to "not now" there (see :class:`~node.gossip.router.OrbitalPubsub`), and the catch-up
(:mod:`node.gossip.catchup`) never moves its cursor past an ignored message.
"""

from __future__ import annotations

import enum
import threading
from collections import Counter
from collections.abc import Callable, Collection

from node.attest.attestation import (
    AttestationError,
    Recover,
    RegistryView,
    coincurve_recover,
    verify_attestation,
)
from node.attest.codec import DecodeError, decode


class Verdict(enum.Enum):
    """What a topic validator decided about a message (gossipsub's accept/reject/ignore)."""

    ACCEPT = "accept"
    REJECT = "reject"
    IGNORE = "ignore"


Validator = Callable[[bytes], "Verdict | bool"]
"""A topic validator: a :class:`Verdict`, or a bool (True accepts, False rejects)."""


def verdict_of(validator: Validator | None, data: bytes) -> Verdict:
    """``validator``'s verdict on ``data``: no validator accepts; an exception it raises is
    :attr:`Verdict.IGNORE` (it could not decide)."""
    if validator is None:
        return Verdict.ACCEPT
    try:
        result = validator(data)
    except Exception:
        return Verdict.IGNORE
    if isinstance(result, Verdict):
        return result
    return Verdict.ACCEPT if result else Verdict.REJECT


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
        self.undecided: Counter[str] = Counter()
        self._lock = threading.Lock()  # called from the libp2p thread, read from asyncio

    def check(self, data: bytes) -> Verdict:
        """The verdict on ``data`` (see the module docstring)."""
        try:
            att = decode(data)
            verify_attestation(att, self.registry_view, self.accepted_models,
                               chain_id=self.chain_id, contract=self.contract,
                               recover=self.recover)
        except DecodeError:
            self._count(self.rejections, "DecodeError")
            return Verdict.REJECT
        except AttestationError as exc:
            self._count(self.rejections, type(exc).__name__)
            return Verdict.REJECT
        except Exception as exc:
            self._count(self.undecided, type(exc).__name__)
            return Verdict.IGNORE
        with self._lock:
            self.accepted += 1
        return Verdict.ACCEPT

    __call__ = check

    def validate(self, data: bytes) -> bool:
        """True if ``data`` is a valid attestation for this node's domain, models and
        registry (False for a rejected or an undecided one)."""
        return self.check(data) is Verdict.ACCEPT

    def _count(self, counter: Counter[str], reason: str) -> None:
        with self._lock:
            counter[reason] += 1

    @property
    def rejected(self) -> int:
        """Total number of rejected messages."""
        with self._lock:
            return sum(self.rejections.values())
