"""Task attestations (DESIGN.md, data flow 4): sign EIP-712 ``TaskResult`` through the wallet,
verify peers' attestations, assemble k-of-n certificates, detect equivocation.

* :mod:`node.attest.attestation` -- :class:`SignedAttestation`, :func:`attest`,
  :func:`verify_attestation`, registry views, the :class:`AttestationError` family;
* :mod:`node.attest.chain_registry` -- :class:`ChainRegistry`, SatelliteRegistry's active
  signers as a snapshot that never blocks;
* :mod:`node.attest.codec` -- the compact gossip encoding and message id;
* :mod:`node.attest.certificate` -- :class:`CertificateBuilder`, batch certificates;
* :mod:`node.attest.equivocation` -- :class:`EquivocationDetector`, :class:`Evidence`;
* :mod:`node.attest.cosigner` -- :class:`Cosigner`: re-execute a peer's task, co-sign a match.
"""

from node.attest.attestation import (
    AttestationError,
    BadSignature,
    HighS,
    MalformedSignature,
    SignedAttestation,
    StaticRegistry,
    UnknownSigner,
    WrongDomain,
    WrongModel,
    attest,
    verify_attestation,
)
from node.attest.certificate import (
    BatchCertificate,
    Certificate,
    CertificateBuilder,
    TaskTerms,
    batch_certificate,
)
from node.attest.chain_registry import ChainRegistry, RegistryUnavailable
from node.attest.codec import DecodeError, decode, encode, message_id
from node.attest.cosigner import Consideration, Cosigner
from node.attest.equivocation import EquivocationDetector, Evidence

__all__ = [
    "AttestationError",
    "BadSignature",
    "BatchCertificate",
    "Certificate",
    "CertificateBuilder",
    "ChainRegistry",
    "Consideration",
    "Cosigner",
    "DecodeError",
    "EquivocationDetector",
    "Evidence",
    "HighS",
    "MalformedSignature",
    "RegistryUnavailable",
    "SignedAttestation",
    "StaticRegistry",
    "TaskTerms",
    "UnknownSigner",
    "WrongDomain",
    "WrongModel",
    "attest",
    "batch_certificate",
    "decode",
    "encode",
    "message_id",
    "verify_attestation",
]
