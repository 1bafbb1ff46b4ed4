"""Errors of the contracts tooling a user can meet; light to import (no web3), so the
CLI can name them without loading web3."""

from __future__ import annotations


class ContractsError(Exception):
    """A problem with the contracts a user can meet; the message says what to do."""

    exit_code = 1


class ArtifactError(ContractsError):
    """A compiled artifact is missing or unreadable."""


class DeploymentError(ContractsError):
    """A transaction failed, timed out, or a deployment file is wrong."""


class MalformedError(ContractsError):
    """Malformed input (a key, an address, a deployment file)."""

    exit_code = 2
