"""One signer at a time across processes: an exclusive ``flock`` on the wallet's home.

The policy judges a request against what was signed before (the rolling 24 h totals, the
time-locks); two signers judging at once could each find room under a limit and together
exceed it. A thread lock only orders the threads of one process, and any other process on
board (a second ``orbital wallet sign-tx``, the node's mission) may open the same wallet. So
the signing path holds :class:`WalletLock` -- ``flock(LOCK_EX)`` on the home directory
itself -- from the policy's evaluation to the audit record of the signature, and every
SQLite write inside it is a ``BEGIN IMMEDIATE`` transaction (:func:`wallet.sqlite.
write_transaction`).

The lock is taken on a fresh descriptor at each acquisition (flock locks belong to the open
file description, so two threads of one process exclude each other too); it is re-entrant
within a thread; the kernel drops it when the process dies, so a crash never leaves the
wallet locked. Nothing is written to take it: a read-only or full disk cannot stop the
lock from working.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from wallet.errors import SigningError

DEFAULT_TIMEOUT = 120.0
"""Seconds to wait for another signer before giving up (a signature takes milliseconds,
an HSM login or a slow disk seconds)."""


class WalletBusyError(SigningError):
    """Another process held the wallet for longer than the timeout."""


class WalletLock:
    """``with lock.held(): ...`` -- exclusive use of the wallet at ``home``."""

    def __init__(self, home: str | os.PathLike[str], timeout: float = DEFAULT_TIMEOUT) -> None:
        self.home = Path(home)
        self.timeout = timeout
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._thread_lock:
            if self._depth == 0:
                self._fd = self._acquire()
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    fd, self._fd = self._fd, None
                    assert fd is not None
                    os.close(fd)  # closing the descriptor releases the flock

    def _acquire(self) -> int:
        self.home.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.home, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        deadline = time.monotonic() + self.timeout
        delay = 0.001
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return fd
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise WalletBusyError(
                            f"wallet {self.home} is in use by another signer (waited "
                            f"{self.timeout:.0f} s for its lock)") from None
                    time.sleep(delay)
                    delay = min(delay * 2, 0.05)
        except BaseException:
            os.close(fd)
            raise
