"""Where the HSM PIN comes from, and the wallet's own failed-PIN counter.

**Reading the PIN** (:func:`read_pin`). Never from the command line (argv is visible to
every user of the machine through ``/proc``). In order:

1. ``--pin-file FILE`` when given: the file's text with one trailing newline removed. The
   file must be a regular file with no permission bits for group or others (like
   ``ssh`` private keys; ``chmod 600 FILE``), otherwise it is refused: a PIN any local user
   may read is not a secret. An explicit file wins over the environment, so a stray
   variable in an operator's shell cannot silently override the file they named.
2. the environment variable ``ORBITAL_HSM_PIN`` (for services: set it from a secret
   store, not from a unit file anyone can read);
3. an interactive prompt (``getpass``, echo off) when allowed and stdin is a terminal.

Otherwise a :class:`~wallet.errors.MalformedRequestError` says which of the three to use.

**Counting failed PINs** (:class:`PinAttempts`). SoftHSM2 never locks a token after wrong
PINs; real HSMs do, and many *destroy* their keys after too many. So the wallet counts
failed logins itself, per token *serial number* (the token's own ``serialNumber``, which no
file names and nobody relabels; :func:`wallet.keys.pkcs11.pin_counter_key`), in a small
SQLite file in the machine's state directory (:func:`state_dir`):

* the state directory is **outside the wallet home**: ``$ORBITAL_STATE_DIR`` if set, else
  ``/var/lib/orbital`` (created mode 700; on a deployment make it owned by the user the
  signer runs as, writable by nobody else). Whoever can write the wallet home (the threat
  model of issue #16: every file there is untrusted) cannot reset the count by deleting a
  file or by pointing ``--home`` somewhere fresh; nothing in ``wallet.toml`` moves it, and
  a state directory inside the wallet home is refused. The environment variable is for
  tests and unprivileged development setups;
* ``wallet.toml``'s ``max_pin_attempts`` may lower the limit, never raise it above
  :data:`DEFAULT_LIMIT` (:func:`effective_limit`): it is a file in the home;

* a wrong PIN increments the counter and the increment is committed (``fsync``) *before*
  the error is raised, so killing the process cannot undo an attempt;
* once ``limit`` attempts (default 5) have failed in a row the token is *locked*: the
  wallet refuses to try the token at all, even with the right PIN, until it is
  explicitly unlocked -- by the security officer
  (:func:`wallet.keys.pkcs11.unlock_token`, which proves the SO PIN to the token and may
  set a new user PIN) or by re-initialising the token
  (:func:`wallet.keys.pkcs11.init_token`, which destroys its keys). Both call
  :meth:`PinAttempts.reset`. The state survives restarts;
* a correct PIN resets the counter to zero.

A login attempt holds a write transaction on the counter file for its whole duration
(:meth:`PinAttempts.attempt`), so two processes sharing a state directory cannot both
spend the last attempt.
"""

from __future__ import annotations

import getpass
import os
import sqlite3
import stat
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from wallet.errors import MalformedRequestError, TokenLockedError

PIN_ENV = "ORBITAL_HSM_PIN"
"""Environment variable holding the user PIN of the HSM token."""
DEFAULT_LIMIT = 5
"""Failed logins in a row after which the wallet locks a token."""
STATE_FILE = "pin-attempts.sqlite"
"""Name of the counter file inside the state directory."""
STATE_DIR_ENV = "ORBITAL_STATE_DIR"
"""Environment variable naming the state directory (default :data:`DEFAULT_STATE_DIR`)."""
DEFAULT_STATE_DIR = Path("/var/lib/orbital")
"""Where the failed-PIN counter lives unless ``$ORBITAL_STATE_DIR`` says otherwise."""


def state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The machine's state directory: ``$ORBITAL_STATE_DIR``, else ``/var/lib/orbital``
    (module docstring). Never configured by a file."""
    environ = os.environ if environ is None else environ
    value = environ.get(STATE_DIR_ENV)
    if value is not None and not value.strip():
        raise MalformedRequestError(f"{STATE_DIR_ENV} is set but empty: set it to a "
                                    "directory outside the wallet home, or unset it")
    return Path(value) if value else DEFAULT_STATE_DIR


def effective_limit(configured: int) -> int:
    """The lockout limit used: ``wallet.toml``'s value when it is lower than
    :data:`DEFAULT_LIMIT`, never a higher one."""
    return max(1, min(int(configured), DEFAULT_LIMIT))


def wallet_pin_attempts(home: str | os.PathLike[str], configured_limit: int = DEFAULT_LIMIT,
                        environ: Mapping[str, str] | None = None) -> PinAttempts:
    """The failed-PIN counter of a wallet whose home is ``home``: in :func:`state_dir`,
    which must not be inside ``home``, with :func:`effective_limit`."""
    directory = state_dir(environ)
    resolved, wallet = directory.resolve(), Path(home).resolve()
    if resolved == wallet or wallet in resolved.parents:
        raise MalformedRequestError(
            f"the state directory {directory} is inside the wallet home {home}: the failed-"
            f"PIN count must live where writing the wallet home cannot reset it (set "
            f"{STATE_DIR_ENV} elsewhere, or leave it unset for {DEFAULT_STATE_DIR})")
    return PinAttempts.in_state_dir(directory, effective_limit(configured_limit))


def read_pin(pin_file: str | os.PathLike[str] | None, prompt: bool, *,
             env_var: str = PIN_ENV, what: str = "HSM PIN",
             environ: Mapping[str, str] | None = None,
             stdin: TextIO | None = None,
             ask: Callable[[str], str] = getpass.getpass) -> str:
    """The PIN from ``pin_file``, else from ``$env_var``, else from a prompt (if ``prompt``
    and stdin is a terminal). ``what`` names the secret in messages and in the prompt;
    ``environ``, ``stdin`` and ``ask`` exist for tests."""
    environ = os.environ if environ is None else environ
    if pin_file is not None:
        return _read_pin_file(Path(pin_file), what)
    if env_var in environ:
        value = environ[env_var]
        if not value:
            raise MalformedRequestError(f"{env_var} is set but empty: set it to the {what} "
                                        "or unset it")
        return value
    stdin = sys.stdin if stdin is None else stdin
    if prompt and stdin is not None and stdin.isatty():
        value = ask(f"{what}: ")
        if not value:
            raise MalformedRequestError(f"empty {what} entered")
        return value
    raise MalformedRequestError(
        f"no {what}: set {env_var}, pass --pin-file FILE (mode 600), or run interactively "
        "to be prompted (a PIN is never accepted on the command line)")


def _read_pin_file(path: Path, what: str) -> str:
    # A path that does not name a file is not repeated: it may be the secret itself, given
    # where its file's name belongs (``--pin-file 1234``).
    try:
        info = path.stat()
    except FileNotFoundError:
        raise MalformedRequestError(
            f"the {what} file given does not exist (its name is not repeated here, in case "
            f"it is the {what} itself: the file holds the secret, the command line never "
            "does)") from None
    except OSError as exc:
        raise MalformedRequestError(f"cannot read the {what} file given: {exc.strerror}"
                                    ) from None
    if not stat.S_ISREG(info.st_mode):
        raise MalformedRequestError(f"{what} file {path} is not a regular file")
    if os.name == "posix" and info.st_mode & 0o077:
        raise MalformedRequestError(
            f"{what} file {path} is accessible by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):03o}): run `chmod 600 {path}`")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MalformedRequestError(f"cannot read {what} file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:  # its message would quote bytes of the secret
        raise MalformedRequestError(f"{what} file {path} is not UTF-8 text") from None
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if not text:
        raise MalformedRequestError(f"{what} file {path} is empty")
    return text


class PinAttempts:
    """Persistent failed-login counter with lockout, per token label (see the module
    docstring). Safe to use from several threads and processes at once."""

    def __init__(self, path: str | os.PathLike[str], limit: int = DEFAULT_LIMIT) -> None:
        if limit < 1:
            raise ValueError("the PIN attempt limit must be at least 1")
        self.path = Path(path)
        self.limit = limit

    @classmethod
    def in_state_dir(cls, state_dir: str | os.PathLike[str],
                     limit: int = DEFAULT_LIMIT) -> PinAttempts:
        """The counter kept in ``state_dir``/``pin-attempts.sqlite``."""
        return cls(Path(state_dir) / STATE_FILE, limit)

    # -- reading --------------------------------------------------------------------------

    def failures(self, label: str) -> int:
        """Failed logins in a row for ``label`` since the last success or reset."""
        return self._row(label)[0]

    def remaining(self, label: str) -> int:
        """Attempts left before the wallet locks ``label`` (0 when locked)."""
        failures, locked = self._row(label)
        return 0 if locked else max(0, self.limit - failures)

    def is_locked(self, label: str) -> bool:
        return self.remaining(label) == 0

    def check(self, label: str, name: str | None = None) -> None:
        """Raise :class:`TokenLockedError` if ``label`` is locked (``name``: the token as
        messages call it, default ``label``)."""
        if self.is_locked(label):
            raise self._locked_error(name or label, self.failures(label))

    # -- changing -------------------------------------------------------------------------

    @contextmanager
    def attempt(self, label: str, name: str | None = None) -> Iterator[Attempt]:
        """One login attempt on ``label``, as a transaction on the counter file (``name``:
        the token as messages call it, default ``label``).

        Raises :class:`TokenLockedError` up front if the token is locked. Inside the
        ``with`` block, the caller tries the PIN and then calls :meth:`Attempt.failed`
        (returns the attempts left, already committed to disk) or
        :meth:`Attempt.succeeded`; leaving the block without either (the login failed for
        a reason other than the PIN) changes nothing."""
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")  # the write lock, held for the whole attempt
            failures, locked = self._read(db, label)
            if locked or failures >= self.limit:
                db.execute("ROLLBACK")
                raise self._locked_error(name or label, failures)
            attempt = Attempt(self, db, label, failures)
            try:
                yield attempt
            finally:
                if db.in_transaction:
                    db.execute("ROLLBACK")
        finally:
            db.close()

    def record_failure(self, label: str, name: str | None = None) -> int:
        """Count one failed login on ``label`` (committed before returning) and return the
        attempts left; 0 means the token is now locked."""
        try:
            with self.attempt(label, name) as attempt:
                return attempt.failed()
        except TokenLockedError:
            return 0

    def reset(self, label: str) -> None:
        """Forget the failures of ``label`` and unlock it. Only for the unlock paths: the
        security officer proved the SO PIN, or the token was re-initialised."""
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM pin_attempts WHERE label = ?", (label,))
            db.execute("COMMIT")
        finally:
            db.close()

    # -- internals ------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise MalformedRequestError(
                f"cannot open the PIN attempt counter {self.path}: {exc} (it lives in "
                f"{DEFAULT_STATE_DIR} or ${STATE_DIR_ENV}, outside the wallet home: create "
                "that directory, writable by the signer's user only)") from None
        try:
            db.execute("PRAGMA synchronous = FULL")  # fsync at every commit
            db.execute(
                "CREATE TABLE IF NOT EXISTS pin_attempts ("
                " label TEXT PRIMARY KEY,"
                " failures INTEGER NOT NULL,"
                " locked INTEGER NOT NULL,"
                " updated REAL NOT NULL)")
        except sqlite3.Error as exc:
            db.close()
            raise MalformedRequestError(
                f"the PIN attempt counter {self.path} is unreadable ({exc}); it is not "
                "a file the wallet wrote: move it away (every token then starts unlocked)"
            ) from None
        return db

    @staticmethod
    def _read(db: sqlite3.Connection, label: str) -> tuple[int, bool]:
        row = db.execute("SELECT failures, locked FROM pin_attempts WHERE label = ?",
                         (label,)).fetchone()
        return (0, False) if row is None else (int(row[0]), bool(row[1]))

    def _row(self, label: str) -> tuple[int, bool]:
        db = self._connect()
        try:
            failures, locked = self._read(db, label)
        finally:
            db.close()
        return failures, locked or failures >= self.limit

    def _locked_error(self, label: str, failures: int) -> TokenLockedError:
        return TokenLockedError(
            f"token {label!r} is locked by the wallet after {failures} wrong PINs in a row: "
            "nothing was tried. Unlock it with the SO PIN (wallet.keys.pkcs11.unlock_token) "
            "or re-initialise the token (destroys its keys)")


class Attempt:
    """One login attempt inside :meth:`PinAttempts.attempt`."""

    def __init__(self, owner: PinAttempts, db: sqlite3.Connection, label: str,
                 failures: int) -> None:
        self._owner = owner
        self._db = db
        self.label = label
        self.failures_before = failures

    def failed(self) -> int:
        """The PIN was wrong: commit one more failure (durably) and return the attempts
        left; at 0 the token is locked from now on."""
        failures = self.failures_before + 1
        locked = failures >= self._owner.limit
        self._db.execute(
            "INSERT INTO pin_attempts (label, failures, locked, updated) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (label) DO UPDATE SET failures = excluded.failures,"
            " locked = excluded.locked, updated = excluded.updated",
            (self.label, failures, int(locked), time.time()))
        self._db.execute("COMMIT")
        return max(0, self._owner.limit - failures)

    def succeeded(self) -> None:
        """The PIN was right: the counter goes back to zero."""
        self._db.execute("DELETE FROM pin_attempts WHERE label = ?", (self.label,))
        self._db.execute("COMMIT")
