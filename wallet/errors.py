"""Errors the wallet raises, each with the exit code the CLI gives it.

Every error a user can meet says what was wrong and what to do, in one line.
"""

from __future__ import annotations


class WalletError(Exception):
    """Base class of wallet errors."""

    exit_code = 1


class MalformedRequestError(WalletError):
    """A request, file or argument could not be read (bad hex, missing field, bad type)."""

    exit_code = 2


class PolicyDeniedError(WalletError):
    """The policy engine refused the request; ``reason`` says which rule."""

    exit_code = 3

    def __init__(self, reason: str, rule: str = "") -> None:
        self.reason = reason
        self.rule = rule
        super().__init__(f"policy denied ({rule}): {reason}" if rule
                         else f"policy denied: {reason}")


class BadPinError(WalletError):
    """The PIN was wrong; the message says how many attempts remain."""

    exit_code = 4


class TokenLockedError(WalletError):
    """Too many wrong PINs: the wallet refuses to try the token until it is unlocked."""

    exit_code = 5


class KeyNotFoundError(WalletError):
    """No key with that address (or no token with that label)."""

    exit_code = 6


class SigningError(WalletError):
    """The backend failed to sign, or a signature failed its check before release."""

    exit_code = 7


class AuditError(WalletError):
    """The audit log is damaged: an entry was edited, deleted, inserted or reordered."""

    exit_code = 8


class CommandRejectedError(WalletError):
    """An operator command envelope was refused (signers, time window, nonce)."""

    exit_code = 9
