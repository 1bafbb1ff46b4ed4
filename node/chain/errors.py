"""Typed errors of the verification core.

Two kinds of failure reach a user, and they must never be confused:

* :class:`MalformedInputError` -- the input could not even be read as the thing it
  claims to be (not JSON, a missing field, bad hex, a wrong length, non-canonical RLP).
  Nothing was compared. The CLI exits 2.
* :class:`VerificationError` -- the input was well formed, but a value recomputed from
  it does not match the value it claims (a hash, a root, a proof). The CLI exits 1.

Both carry a one-line message that says what was wrong; neither is ever swallowed.
"""

from __future__ import annotations


class ChainError(Exception):
    """Base class of every error raised by :mod:`node.chain`."""


class MalformedInputError(ChainError, ValueError):
    """The input is not well formed: nothing could be verified."""

    def __init__(self, message: str, *, where: str = "") -> None:
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)

    def at(self, where: str) -> MalformedInputError:
        """Return a copy whose location is prefixed with ``where`` (outermost first)."""
        inner = str(self)
        return MalformedInputError(inner, where=where)


class VerificationError(ChainError):
    """A recomputed value does not match the claimed one.

    ``field`` names what was checked (for example ``transactionsRoot`` or
    ``accountProof``), ``claimed`` is what the untrusted input says and ``computed``
    what the verifier derived from the rest of the input. When the failure is not a
    simple comparison (a proof that breaks off), ``reason`` says what went wrong.
    """

    def __init__(self, field: str, claimed: object = None, computed: object = None, *,
                 reason: str = "") -> None:
        self.field = field
        self.claimed = claimed
        self.computed = computed
        self.reason = reason
        if reason:
            message = f"{field}: {reason}"
        else:
            message = f"{field} mismatch: claimed {_show(claimed)}, computed {_show(computed)}"
        super().__init__(message)


class ProofError(VerificationError):
    """A Merkle-Patricia proof does not prove what it claims against the given root."""

    def __init__(self, field: str, reason: str, *, claimed: object = None,
                 computed: object = None) -> None:
        super().__init__(field, claimed, computed, reason=reason)


class HeaderRuleError(VerificationError):
    """A header breaks a consensus validity rule with respect to its parent
    (execution-specs ``forks/*/fork.py``, ``validate_header``).

    ``rule`` names the rule (for example ``gasLimit-bounds``), ``number`` and ``block_hash``
    the offending header; ``claimed`` is the header's value, ``computed`` what the rule
    derives from the parent (or the bound it breaks).
    """

    def __init__(self, rule: str, number: int, block_hash: bytes, claimed: object,
                 computed: object, *, reason: str) -> None:
        self.rule = rule
        self.number = number
        self.block_hash = block_hash
        super().__init__(rule, claimed, computed,
                         reason=f"header {number} 0x{block_hash.hex()} breaks {rule}: {reason}")


class NotAnchoredError(VerificationError):
    """A header (or data resting on it) does not lead back from any trusted anchor: it may
    hash-link to verified headers, but after the Merge linking forward proves nothing."""

    def __init__(self, number: int, block_hash: bytes, reason: str) -> None:
        self.number = number
        self.block_hash = block_hash
        super().__init__("anchor", reason=f"header {number} 0x{block_hash.hex()} is not "
                                          f"anchored: {reason}")


class HeaderStoreError(ChainError):
    """A header was refused by the header store (it does not link, or it conflicts)."""


def _show(value: object) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)
