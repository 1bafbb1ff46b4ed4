"""Signing from asyncio: a :class:`~wallet.keys.signer.Signer`'s blocking ``sign_digest`` run
in a pool of worker threads, so the event loop never waits on the HSM.

With a :class:`~wallet.keys.pkcs11.Pkcs11Signer` each worker thread signs on its own PKCS#11
session (opened on the thread's first signature), so ``threads`` signatures are in the token
at once; python-pkcs11 releases the GIL around ``C_Sign``. Requests beyond that queue in the
executor in arrival order. A request whose awaiting task is cancelled still completes in its
thread (a signature cannot be taken back from an HSM); its result is dropped.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor

from wallet.errors import SigningError
from wallet.keys.signer import Signature, Signer


class AsyncSigner:
    """``await signer.sign_digest(digest)`` over a blocking :class:`Signer`.

    Owns its threads, not the signer: :meth:`aclose` stops the threads (after the requests
    already queued) and leaves closing the signer to its owner."""

    def __init__(self, signer: Signer, threads: int = 2) -> None:
        if threads < 1:
            raise ValueError("an AsyncSigner needs at least one thread")
        self.signer = signer
        self.threads = threads
        self._executor = ThreadPoolExecutor(max_workers=threads,
                                            thread_name_prefix="orbital-signer")
        self._closed = False

    @property
    def address(self) -> bytes:
        return self.signer.address

    async def sign_digest(self, digest: bytes) -> Signature:
        """Sign ``digest`` in a worker thread: low-s, with recovery id, checked to recover
        :attr:`address` (the wrapped signer's guarantee)."""
        if self._closed:
            raise SigningError("the async signer was closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor,
                                          functools.partial(self.signer.sign_digest, digest))

    async def aclose(self) -> None:
        """Finish the queued requests and stop the threads (waiting off the event loop)."""
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._executor.shutdown, wait=True)

    async def __aenter__(self) -> AsyncSigner:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
