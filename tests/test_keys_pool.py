"""Signing from asyncio: AsyncSigner over the HSM (a PKCS#11 session per worker thread) and
over the keystore."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.testing.pytest_plugin import SoftHsmToken
from node.testing.softhsm import USER_PIN
from wallet.errors import SigningError
from wallet.keys import pkcs11 as hsm
from wallet.keys.keystore import KeystoreSigner, create_keystore
from wallet.keys.pin import PinAttempts
from wallet.keys.pool import AsyncSigner
from wallet.keys.signer import HALF_N, Signature, recover_address


def digests(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(32) for _ in range(count)]


@pytest.fixture
def hsm_signer(softhsm_token: SoftHsmToken, pin_attempts: PinAttempts
               ) -> Iterator[hsm.Pkcs11Signer]:
    address = hsm.generate_key(softhsm_token.label, USER_PIN, attempts=pin_attempts)
    signer = hsm.Pkcs11Signer(softhsm_token.label, address, USER_PIN, attempts=pin_attempts)
    try:
        yield signer
    finally:
        signer.close()


class Recording:
    """A signer that notes which thread each signature ran on."""

    def __init__(self, inner: hsm.Pkcs11Signer | KeystoreSigner) -> None:
        self.inner = inner
        self.threads: set[int] = set()
        self._lock = threading.Lock()

    @property
    def address(self) -> bytes:
        return self.inner.address

    def sign_digest(self, digest: bytes) -> Signature:
        with self._lock:
            self.threads.add(threading.get_ident())
        return self.inner.sign_digest(digest)


@pytest.mark.hsm
async def test_200_concurrent_requests_through_the_hsm_all_verify(
        hsm_signer: hsm.Pkcs11Signer) -> None:
    recording = Recording(hsm_signer)
    async with AsyncSigner(recording, threads=4) as signer:
        assert signer.address == hsm_signer.address
        wanted = digests(200, seed=7)
        signatures = await asyncio.gather(*(signer.sign_digest(d) for d in wanted))
    assert len(signatures) == 200
    for digest, signature in zip(wanted, signatures, strict=True):
        assert signature.s <= HALF_N
        assert recover_address(digest, signature) == hsm_signer.address
    assert 1 < len(recording.threads) <= 4  # the work was spread over the worker threads
    assert threading.get_ident() not in recording.threads  # never on the event loop


@pytest.mark.hsm
async def test_the_event_loop_keeps_running_while_the_hsm_signs(
        hsm_signer: hsm.Pkcs11Signer) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    async with AsyncSigner(hsm_signer, threads=2) as signer:
        await asyncio.gather(*(signer.sign_digest(d) for d in digests(100, seed=8)))
    task.cancel()
    assert ticks > 10


async def test_keystore_behind_the_same_facade(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    address = create_keystore(path, "pw-1234", kdf="pbkdf2", iterations=2)
    async with AsyncSigner(KeystoreSigner(path, "pw-1234"), threads=2) as signer:
        wanted = digests(200, seed=9)
        signatures = await asyncio.gather(*(signer.sign_digest(d) for d in wanted))
    assert all(recover_address(d, s) == address
               for d, s in zip(wanted, signatures, strict=True))


async def test_errors_reach_the_caller_and_the_pool_survives_them(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    create_keystore(path, "pw-1234", kdf="pbkdf2", iterations=2)
    async with AsyncSigner(KeystoreSigner(path, "pw-1234"), threads=2) as signer:
        results = await asyncio.gather(signer.sign_digest(b"short"),
                                       signer.sign_digest(b"\x01" * 32),
                                       return_exceptions=True)
        assert isinstance(results[0], SigningError)
        assert isinstance(results[1], Signature)
        cancelled = asyncio.ensure_future(signer.sign_digest(b"\x02" * 32))
        cancelled.cancel()
        assert isinstance(await signer.sign_digest(b"\x03" * 32), Signature)
    with pytest.raises(SigningError, match="closed"):
        await signer.sign_digest(b"\x04" * 32)
    await signer.aclose()  # idempotent


def test_needs_a_thread() -> None:
    with pytest.raises(ValueError, match="at least one thread"):
        AsyncSigner(object(), threads=0)  # type: ignore[arg-type]
