"""Shared by the gossip tests: attestations (fixed domain, model and task, three registered
signers, a forger, and the forgeries every validator must reject) and :func:`until`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from contracts import eip712
from node.attest import StaticRegistry, attest, encode
from node.gossip import AttestationValidator

from signers import labelled_signer

CHAIN_ID = 31337
CONTRACT = bytes.fromhex("5FbDB2315678afecb367f032d93F642f64180aa3")
MODEL = b"\x11" * 32
OTHER_MODEL = b"\x12" * 32
INPUT = b"\x22" * 32
TASK = b"\x33" * 32
OUTPUT = b"\x44" * 32
QUORUM = 3
SIGNERS = [labelled_signer(f"gossip-{i}") for i in range(QUORUM)]
FORGER = labelled_signer("gossip-forger")


def result(output: bytes = OUTPUT, model: bytes = MODEL, epoch: int = 7) -> eip712.TaskResult:
    return eip712.TaskResult(TASK, model, INPUT, output, epoch)


def attestation(signer_index: int, **kwargs: object) -> bytes:
    return encode(attest(result(**kwargs), SIGNERS[signer_index], CHAIN_ID, CONTRACT))  # type: ignore[arg-type]


def make_validator() -> AttestationValidator:
    return AttestationValidator(StaticRegistry([s.address for s in SIGNERS]), [MODEL],
                                CHAIN_ID, CONTRACT)


def forgeries() -> dict[str, bytes]:
    good = bytearray(attestation(0))
    bad_sig = bytearray(good)
    bad_sig[157 + 10] ^= 0x01  # a byte of r: recovers to someone else (or to nobody)
    return {
        "bad signature": bytes(bad_sig),
        "unknown signer": encode(attest(result(), FORGER, CHAIN_ID, CONTRACT)),
        "wrong model": attestation(1, model=OTHER_MODEL),
        "garbage": b"\x01not an attestation",
        "truncated": bytes(good[:-1]),
    }


async def until(predicate: Callable[[], object], what: str, timeout: float = 20.0) -> None:
    """Poll ``predicate`` (cheap, local state) until true; fail after ``timeout``."""
    try:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")
