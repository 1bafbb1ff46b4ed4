"""The PKCS#11 HSM backend: secp256k1 keys generated inside a token, signing with
``CKM_ECDSA``, one session per thread.

**Module.** The PKCS#11 library is, by default, ``p11-kit-proxy.so``, which loads the modules
configured for p11-kit (``/usr/share/p11-kit/modules/*.module``; Debian's ``softhsm2``
package registers SoftHSM2 there). ``module=`` (e.g. from configuration) names another
library; the environment variable ``ORBITAL_PKCS11_MODULE`` overrides both. A library that
someone other than root or this user could have written is refused
(:func:`check_module_path`): it would run inside the signer.

Why the proxy: python-pkcs11 initialises a module with ``C_Initialize(NULL)``, which by the
PKCS#11 standard promises the module that no two threads will call it at once, and SoftHSM2
takes that literally (it turns its locking off): with a session per thread it corrupts its
heap and crashes. p11-kit-proxy initialises the modules behind it with
``CKF_OS_LOCKING_OK``, so through the proxy they are thread-safe. A signer therefore uses
one session per thread only when the module is p11-kit-proxy (or when told with
``concurrent=True``); otherwise it keeps one session and a lock.

**Keys.** :func:`generate_key` makes an EC key pair on secp256k1 (named curve OID
1.3.132.0.10) inside the token. The private key is a token object, ``PRIVATE``,
``SENSITIVE`` and not ``EXTRACTABLE``, usable only to ``SIGN``; the public key is a public
token object. Both are created ``CKA_MODIFIABLE`` = false and ``CKA_COPYABLE`` = false, so
nobody holding the PIN can later relabel them, re-point their ``CKA_ID``, widen what the
private key may do, or copy it into an object with weaker attributes. Because nothing can
be set after generation, the pair shares a random ``CKA_ID`` (``orbital-`` + 12 random
bytes) chosen before it, and ``CKA_LABEL`` = ``orbital:key``. A key is found by its
address: the secp256k1 public key whose ``CKA_EC_POINT`` (the DER OCTET STRING around the
65-byte uncompressed point) hashes to it, then the private key with that public key's
``CKA_ID``. (Keys made by earlier versions have ``CKA_ID`` = address and
``CKA_LABEL`` = ``orbital:0x<checksummed address>``, and are found the same way.)

A private key is used only if the token says it was generated inside it and never left
it: ``CKA_LOCAL``, ``CKA_ALWAYS_SENSITIVE`` and ``CKA_NEVER_EXTRACTABLE`` all true (besides
``SENSITIVE``, not ``EXTRACTABLE``, ``SIGN``). An imported key (``C_CreateObject`` or
``C_UnwrapKey``) may have copies outside the HSM, whatever its other attributes say: it is
refused, naming the attribute that is false.

**Login.** PKCS#11 login state belongs to the application (this process) and the token, not
to a session: after one ``C_Login`` every session of the process on that token is logged in,
a second ``C_Login`` fails with ``CKR_USER_ALREADY_LOGGED_IN``, and ``C_Logout`` on any session
logs all of them out. So this module logs in to a token once per process (a reference-counted
login shared by every :class:`Pkcs11Token` and :class:`Pkcs11Signer` on it, logged out when
the last one closes); additional sessions are opened without a PIN and inherit it. A PIN
given for a token the process is already logged in to is compared with the one that logged
in; a mismatch counts as a wrong PIN. Every login goes through the wallet's failed-PIN
counter (:class:`~wallet.keys.pin.PinAttempts`), because SoftHSM2 never locks, keyed by
the token's serial number (:func:`pin_counter_key`), not by its label.

**Tokens** are created by their vendor's tools. For SoftHSM2 (development and tests),
:func:`init_token` runs ``softhsm2-util`` (python-pkcs11 has no ``C_InitToken``), feeding it
the PINs through a pseudo-terminal so they never appear on a command line.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import shutil
import stat
import subprocess
import sysconfig
import threading
import weakref
from pathlib import Path
from typing import Any

import pkcs11
import pkcs11.exceptions as p11e
from eth_utils import to_checksum_address
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass

from wallet.errors import (
    AuditError,
    BadPinError,
    KeyNotFoundError,
    MalformedRequestError,
    SigningError,
    TokenLockedError,
    WalletError,
)
from wallet.keys.pin import PinAttempts
from wallet.keys.signer import Signature, address_of_public_key, finalize_signature

MODULE_ENV = "ORBITAL_PKCS11_MODULE"
"""Environment variable naming the PKCS#11 library; overrides ``module=``."""

SECP256K1_OID = "1.3.132.0.10"
SECP256K1_EC_PARAMS = bytes.fromhex("06052b8104000a")
"""``CKA_EC_PARAMS`` of secp256k1: the DER OBJECT IDENTIFIER 1.3.132.0.10 (SEC 2 §2.4.1),
i.e. ECParameters' ``namedCurve`` choice (X9.62 / RFC 5480)."""

KEY_LABEL_PREFIX = "orbital:"
NEW_KEY_LABEL = KEY_LABEL_PREFIX + "key"
"""``CKA_LABEL`` of the keys :func:`generate_key` makes (they cannot be relabelled)."""
KEY_ID_PREFIX = b"orbital-"
SO_SUFFIX = " (SO)"
"""The failed-PIN counter of a token's security officer is kept under ``label + SO_SUFFIX``."""

_PROXY_DESCRIPTION = "PKCS#11 Kit Proxy"
_PIN_ERRORS = (p11e.PinIncorrect, p11e.PinInvalid, p11e.PinLenRange)
_LOST_SESSION = (p11e.SessionHandleInvalid, p11e.SessionClosed)


# -- the module -----------------------------------------------------------------------------

def default_module() -> str:
    """Path of ``p11-kit-proxy.so`` on this system."""
    multiarch = sysconfig.get_config_var("MULTIARCH")
    candidates = [
        *([f"/usr/lib/{multiarch}/p11-kit-proxy.so"] if multiarch else []),
        "/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so",
        "/usr/lib/aarch64-linux-gnu/p11-kit-proxy.so",
        "/usr/lib64/p11-kit-proxy.so",
        "/usr/lib/p11-kit-proxy.so",
        "/usr/local/lib/p11-kit-proxy.so",
    ]
    for candidate in candidates:
        if os.path.exists(candidate):
            return candidate
    raise KeyNotFoundError(
        "no PKCS#11 module: p11-kit-proxy.so is not installed (Debian: p11-kit-modules; "
        f"run scripts/setup.sh --test), or set {MODULE_ENV} to your HSM's PKCS#11 library")


def resolve_module(module: str | os.PathLike[str] | None = None) -> str:
    """The library to load: ``$ORBITAL_PKCS11_MODULE``, else ``module``, else
    :func:`default_module`."""
    chosen = os.environ.get(MODULE_ENV) or (os.fspath(module) if module else None)
    return chosen or default_module()


def check_module_path(path: str) -> None:
    """Refuse (:class:`KeyNotFoundError`) a PKCS#11 library that someone other than root
    or this user could have written: loading it runs its code inside the signer, before
    anything it says can be checked, and the module path comes from a file (``wallet.toml``)
    that every on-board process may edit. So, like OpenSSH's StrictModes: an absolute path
    (no search of ``LD_LIBRARY_PATH``); the library and every directory above it owned by
    root or by this user, and writable by neither group nor others."""
    if not os.path.isabs(path):
        raise KeyNotFoundError(f"PKCS#11 module {path!r} is not an absolute path")
    real = Path(os.path.realpath(path))
    for item in (real, *real.parents):
        try:
            st = item.stat()
        except OSError as exc:
            raise KeyNotFoundError(f"PKCS#11 module {path}: cannot check {item}: "
                                   f"{exc.strerror}") from None
        # a sticky directory (/tmp) lets others add names, never replace ours
        sticky = item != real and st.st_mode & stat.S_ISVTX
        if st.st_uid not in (0, os.geteuid()):
            problem = f"{item} is owned by uid {st.st_uid}"
        elif st.st_mode & 0o022 and not sticky:
            problem = f"{item} is writable by other users"
        else:
            continue
        raise KeyNotFoundError(f"PKCS#11 module {path}: {problem}: refusing to load it into "
                               "the signer (install the library root-owned, mode 755 or "
                               "stricter)")


_lock = threading.RLock()  # guards module loading and the login registry
_loaded: dict[str, Any] = {}  # path -> pkcs11.lib, loaded by this module


def load_module(module: str | os.PathLike[str] | None = None) -> Any:
    """The ``pkcs11.lib`` for the module (loaded and initialised once per process)."""
    path = resolve_module(module)
    with _lock:
        lib = _loaded.get(path)
        if lib is None:
            if os.path.isabs(path) and not os.path.exists(path):
                raise KeyNotFoundError(f"PKCS#11 module {path} does not exist (set "
                                       f"{MODULE_ENV} or the configured module path)")
            check_module_path(path)
            try:
                lib = pkcs11.lib(path)
            except p11e.PKCS11Error as exc:
                raise KeyNotFoundError(f"cannot load PKCS#11 module {path}: {exc}") from None
            _loaded[path] = lib
        return lib


def is_thread_safe(lib: Any) -> bool:
    """Whether sessions of ``lib`` may be used from several threads at once: true for
    p11-kit-proxy (see the module docstring), not assumed for anything else."""
    return str(lib.library_description).startswith(_PROXY_DESCRIPTION)


def find_token(lib: Any, label: str) -> Any:
    """The token labelled ``label``; :class:`KeyNotFoundError` if there is none."""
    try:
        return lib.get_token(token_label=label)
    except p11e.NoSuchToken:
        labels = sorted({t.label for t in lib.get_tokens() if t.label})
        raise KeyNotFoundError(
            f"no token labelled {label!r} in {lib.so} (tokens: "
            f"{', '.join(map(repr, labels)) or 'none'}); a token created by another process "
            "after this one loaded the module becomes visible only after a restart"
        ) from None
    except p11e.MultipleTokensReturned:
        raise KeyNotFoundError(f"more than one token is labelled {label!r} in {lib.so}: "
                               "relabel or remove one") from None


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value).strip()


def _counter_key(token: Any) -> str:
    """Where :class:`~wallet.keys.pin.PinAttempts` counts wrong PINs of ``token``: its
    manufacturer and serial number (both from the token itself, ``CK_TOKEN_INFO``); only a
    token that reports no serial falls back to its label."""
    serial = _text(token.serial)
    if not serial:
        return f"label {token.label}"
    return f"serial {_text(token.manufacturer_id)}/{serial}"


def pin_counter_key(label: str, module: str | os.PathLike[str] | None = None) -> str:
    """The key under which wrong PINs of the token labelled ``label`` are counted (its
    serial number: relabelling a token or naming it differently does not reset its count).
    Append :data:`SO_SUFFIX` for its security officer's."""
    return _counter_key(find_token(load_module(module), label))


# -- encodings ------------------------------------------------------------------------------

def ec_point_from_attribute(value: bytes) -> bytes:
    """The SEC 1 public point inside ``CKA_EC_POINT``: a DER OCTET STRING (PKCS#11 v2.40
    §2.3.3) around the point. A bare 65-byte uncompressed point, which some modules return,
    is accepted too. The point is checked to lie on secp256k1."""
    point = value
    if len(value) >= 2 and value[0] == 0x04 and len(value) != 65:
        length, offset = value[1], 2
        if length & 0x80:  # long form: the next (length & 0x7f) bytes are the length
            size = length & 0x7F
            if size == 0 or size > 2 or len(value) < 2 + size:
                raise SigningError("malformed CKA_EC_POINT (bad DER length)")
            length, offset = int.from_bytes(value[2:2 + size], "big"), 2 + size
        if len(value) != offset + length:
            raise SigningError("malformed CKA_EC_POINT (DER length does not match)")
        point = value[offset:]
    if not (len(point) == 65 and point[0] == 0x04) and not (len(point) == 33
                                                               and point[0] in (2, 3)):
        raise SigningError(f"CKA_EC_POINT holds no secp256k1 point ({len(point)} bytes)")
    try:
        address_of_public_key(point)  # parses the point, and so checks it is on the curve
    except Exception as exc:  # coincurve raises ValueError or a bare Exception
        raise SigningError(f"CKA_EC_POINT is not a point on secp256k1: {exc}") from None
    return point


def address_from_ec_point(value: bytes) -> bytes:
    """The Ethereum address of the key whose ``CKA_EC_POINT`` is ``value``."""
    return address_of_public_key(ec_point_from_attribute(value))


def parse_address(address: bytes | str) -> bytes:
    """A 20-byte address from bytes or ``0x``-hex. A malformed one is not repeated in the
    error (it could be key material pasted in the wrong place)."""
    if isinstance(address, str):
        text = address[2:] if address[:2].lower() == "0x" else address
        try:
            address = bytes.fromhex(text)
        except ValueError:
            raise MalformedRequestError(f"not a hex address ({len(text)} characters, not "
                                        "0x and 40 hex digits)") from None
    if len(address) != 20:
        raise MalformedRequestError(f"an address has 20 bytes, not {len(address)}")
    return bytes(address)


def key_label(address: bytes) -> str:
    return KEY_LABEL_PREFIX + to_checksum_address(address)


# -- login, shared per process and token ---------------------------------------------------

_PIN_KEY = os.urandom(32)  # PINs are kept only as an HMAC under this per-process key


def _pin_mac(pin: str) -> bytes:
    return hmac.new(_PIN_KEY, pin.encode("utf-8"), hashlib.sha256).digest()


class _Login:
    """This process's login to one token (see the module docstring)."""

    def __init__(self, path: str, label: str, lib: Any, token: Any, session: Any,
                 pin_mac: bytes) -> None:
        self.path = path
        self.label = label
        self.lib = lib
        self.token = token
        self.session = session  # the session C_Login was called on; closing it logs out
        self.pin_mac = pin_mac
        self.refs = 1


_logins: dict[tuple[str, str], _Login] = {}


def _wrong_pin(label: str, left: int, limit: int, who: str = "PIN") -> WalletError:
    """The error for a wrong PIN with ``left`` attempts remaining (0: now locked)."""
    if left > 0:
        return BadPinError(f"wrong {who} for token {label!r}: {left} attempt"
                           f"{'s' if left != 1 else ''} left before the wallet locks it")
    return TokenLockedError(
        f"wrong {who} for token {label!r}: {limit} failed attempts in a row, the wallet has "
        "now locked the token and will not try it again until it is unlocked with the SO "
        "PIN (unlock_token) or re-initialised")


def _acquire_login(module: str | os.PathLike[str] | None, label: str, pin: str,
                   attempts: PinAttempts) -> _Login:
    path = resolve_module(module)
    with _lock:
        lib = load_module(path)
        existing = _logins.get((path, label))
        token = existing.token if existing is not None else find_token(lib, label)
        # Counted per serial number; raises TokenLockedError when locked.
        with attempts.attempt(_counter_key(token), label) as attempt:
            if existing is not None:
                if hmac.compare_digest(existing.pin_mac, _pin_mac(pin)):
                    attempt.succeeded()
                    existing.refs += 1
                    return existing
                raise _wrong_pin(label, attempt.failed(), attempts.limit)
            try:
                # Read-write: python-pkcs11 does not close the session when C_Login fails,
                # and a leftover read-only session would block a later SO login (unlock).
                session = token.open(rw=True, user_pin=pin)
            except _PIN_ERRORS:
                raise _wrong_pin(label, attempt.failed(), attempts.limit) from None
            except p11e.PinLocked:
                raise TokenLockedError(
                    f"token {label!r} reports its user PIN locked (CKR_PIN_LOCKED): its "
                    "security officer must set a new one (unlock_token with new_user_pin)"
                ) from None
            except p11e.PinExpired:
                raise BadPinError(f"the PIN of token {label!r} has expired: set a new one "
                                  "with the token's tools") from None
            except p11e.UserPinNotInitialized:
                raise KeyNotFoundError(f"token {label!r} has no user PIN yet: initialise "
                                       "it (init_token or the vendor's tools)") from None
            except p11e.UserAlreadyLoggedIn:
                raise SigningError(
                    f"token {label!r} is already logged in by other code in this process, "
                    "so the PIN cannot be checked: refusing") from None
            except p11e.PKCS11Error as exc:
                raise SigningError(f"cannot log in to token {label!r}: "
                                   f"{type(exc).__name__} {exc}") from None
            attempt.succeeded()
        login = _Login(path, label, lib, token, session, _pin_mac(pin))
        _logins[(path, label)] = login
        return login


def _retain(login: _Login) -> None:
    with _lock:
        if login.refs <= 0:
            raise SigningError(f"token {login.label!r} was already closed")
        login.refs += 1


def _release(login: _Login) -> None:
    with _lock:
        login.refs -= 1
        if login.refs > 0:
            return
        if _logins.get((login.path, login.label)) is login:
            del _logins[(login.path, login.label)]
        with contextlib.suppress(p11e.PKCS11Error):
            login.session.close()  # C_Logout, then C_CloseSession


# -- keys on a token -------------------------------------------------------------------------

def _objects(session: Any, object_class: ObjectClass, key_id: bytes | None = None) -> list[Any]:
    attrs: dict[Attribute, Any] = {Attribute.CLASS: object_class, Attribute.KEY_TYPE: KeyType.EC}
    if key_id is not None:
        attrs[Attribute.ID] = key_id
    return list(session.get_objects(attrs))


def _secp256k1_publics(session: Any) -> list[tuple[bytes, bytes, str]]:
    """``(address, CKA_ID, CKA_LABEL)`` of every secp256k1 public key on the token whose
    point is valid and that has a ``CKA_ID``."""
    out = []
    for public in _objects(session, ObjectClass.PUBLIC_KEY):
        attrs = public.get_attributes([Attribute.ID, Attribute.EC_PARAMS, Attribute.EC_POINT,
                                       Attribute.LABEL])
        if attrs[Attribute.EC_PARAMS] != SECP256K1_EC_PARAMS or not attrs[Attribute.ID]:
            continue
        with contextlib.suppress(SigningError):
            out.append((address_from_ec_point(attrs[Attribute.EC_POINT]),
                        bytes(attrs[Attribute.ID]), str(attrs[Attribute.LABEL] or "")))
    return out


def _key_id(session: Any, address: bytes, label: str) -> bytes:
    """The ``CKA_ID`` of the key pair whose public point is ``address``'s (one public key;
    none, or several, is an error naming the key and the token)."""
    found = {key_id for a, key_id, _ in _secp256k1_publics(session) if a == address}
    if not found:
        raise KeyNotFoundError(f"no public key 0x{address.hex()} on token {label!r}")
    if len(found) > 1:
        raise KeyNotFoundError(f"{len(found)} public keys of 0x{address.hex()} with different "
                               f"ids on token {label!r}: remove the duplicates")
    return found.pop()


def _private_key(session: Any, key_id: bytes, address: bytes, label: str) -> Any:
    """The one private key with ``CKA_ID`` = ``key_id`` (the id of ``address``'s public
    key)."""
    found = _objects(session, ObjectClass.PRIVATE_KEY, key_id)
    if not found:
        raise KeyNotFoundError(f"no private key 0x{address.hex()} on token {label!r}")
    if len(found) > 1:
        raise KeyNotFoundError(f"{len(found)} private keys have the id of 0x{address.hex()} on "
                               f"token {label!r}: remove the duplicates")
    return found[0]


def private_key_of(session: Any, address: bytes | str, label: str = "") -> Any:
    """The python-pkcs11 private key object of ``address`` in ``session`` (found through
    its public key's point, see the module docstring); not checked for use -- that is
    :class:`Pkcs11Signer`'s job. For tests and benchmarks that call ``C_Sign`` directly."""
    address = parse_address(address)
    return _private_key(session, _key_id(session, address, label), address, label)


_ORIGIN_ATTRIBUTES = (
    (Attribute.LOCAL, "CKA_LOCAL", "was not generated inside the token"),
    (Attribute.ALWAYS_SENSITIVE, "CKA_ALWAYS_SENSITIVE", "has not always been sensitive"),
    (Attribute.NEVER_EXTRACTABLE, "CKA_NEVER_EXTRACTABLE", "has been extractable"),
)


def _check_private_key(private: Any, address: bytes, label: str) -> None:
    """Refuse a private key that could leave the token, may have existed outside it, or
    cannot sign (module docstring)."""
    attrs = private.get_attributes([Attribute.SENSITIVE, Attribute.EXTRACTABLE,
                                    Attribute.SIGN, Attribute.EC_PARAMS])
    if attrs[Attribute.EC_PARAMS] != SECP256K1_EC_PARAMS:
        raise KeyNotFoundError(f"key 0x{address.hex()} on token {label!r} is not secp256k1")
    if not attrs[Attribute.SENSITIVE] or attrs[Attribute.EXTRACTABLE]:
        raise SigningError(f"key 0x{address.hex()} on token {label!r} is extractable or not "
                           "sensitive: orbital signs only with keys that cannot leave the token")
    for attribute, name, meaning in _ORIGIN_ATTRIBUTES:
        try:
            value = private[attribute]
        except p11e.PKCS11Error:
            value = None
        if value is not True:
            said = "not reported" if value is None else "false"
            raise SigningError(
                f"key 0x{address.hex()} on token {label!r} {meaning} ({name} {said}): it "
                "may have copies outside the HSM, so orbital refuses it; sign with a key "
                "generated in the token (`orbital wallet new`)")
    if not attrs[Attribute.SIGN]:
        raise SigningError(f"key 0x{address.hex()} on token {label!r} may not sign (CKA_SIGN)")


def _generate(session: Any, label: str) -> bytes:
    """Generate a key pair in ``session`` (read-write, logged in); return its address.

    Both objects are created non-modifiable and non-copyable, so their id and label are
    fixed now: a random id shared by the pair (the address is known only afterwards)."""
    params = session.create_domain_parameters(
        KeyType.EC, {Attribute.EC_PARAMS: SECP256K1_EC_PARAMS}, local=True)
    key_id = KEY_ID_PREFIX + os.urandom(12)
    fixed = {Attribute.TOKEN: True, Attribute.MODIFIABLE: False, Attribute.COPYABLE: False}
    public, private = params.generate_keypair(
        store=True, id=key_id, label=NEW_KEY_LABEL,
        capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
        mechanism=Mechanism.EC_KEY_PAIR_GEN,
        public_template={**fixed, Attribute.PRIVATE: False, Attribute.VERIFY: True},
        private_template={**fixed, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
                          Attribute.EXTRACTABLE: False, Attribute.SIGN: True,
                          Attribute.DERIVE: False},
    )
    try:
        address = address_from_ec_point(public[Attribute.EC_POINT])
        _check_private_key(private, address, label)
        if private[Attribute.MODIFIABLE] or private[Attribute.COPYABLE]:
            raise SigningError(f"token {label!r} made a key that is modifiable or copyable "
                               "although asked not to: refusing it")
        if _key_id(session, address, label) != key_id:
            raise SigningError(f"token {label!r}: the new key's id is not the one asked for")
    except BaseException:
        for obj in (private, public):
            with contextlib.suppress(p11e.PKCS11Error):
                obj.destroy()
        raise
    return address


def _list(session: Any) -> list[bytes]:
    """Addresses of the orbital secp256k1 public keys (``CKA_LABEL`` starting with
    ``orbital:``)."""
    return sorted({address for address, _, key_label_ in _secp256k1_publics(session)
                   if key_label_.startswith(KEY_LABEL_PREFIX)})


class Pkcs11Token:
    """A token opened by label and logged in as its user, for key management; also makes
    :class:`Pkcs11Signer` objects sharing the same login. Close it (or use ``with``)."""

    def __init__(self, label: str, pin: str, *, attempts: PinAttempts,
                 module: str | os.PathLike[str] | None = None) -> None:
        self._login = _acquire_login(module, label, pin, attempts)
        self._closed = False

    @property
    def label(self) -> str:
        return self._login.label

    @property
    def module(self) -> str:
        return self._login.path

    def _session(self, rw: bool = False) -> Any:
        if self._closed:
            raise SigningError(f"token {self.label!r} was closed")
        return self._login.token.open(rw=rw)  # inherits the process's login

    def generate_key(self) -> bytes:
        """Generate a secp256k1 key pair inside the token; return its 20-byte address."""
        session = self._session(rw=True)
        try:
            return _generate(session, self.label)
        except p11e.PKCS11Error as exc:
            raise SigningError(f"token {self.label!r} could not generate a key: "
                               f"{type(exc).__name__} {exc}") from None
        finally:
            session.close()

    def list_keys(self) -> list[bytes]:
        """Addresses of the orbital keys on the token that have a private key."""
        session = self._session()
        try:
            return sorted({address for address, key_id, key_label_
                           in _secp256k1_publics(session)
                           if key_label_.startswith(KEY_LABEL_PREFIX)
                           and _objects(session, ObjectClass.PRIVATE_KEY, key_id)})
        finally:
            session.close()

    def signer(self, address: bytes | str, *, concurrent: bool | None = None) -> Pkcs11Signer:
        """A signer for the key ``address``, sharing this token's login."""
        if self._closed:
            raise SigningError(f"token {self.label!r} was closed")
        _retain(self._login)
        try:
            return Pkcs11Signer._with_login(self._login, parse_address(address), concurrent)
        except BaseException:
            _release(self._login)
            raise

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            _release(self._login)

    def __enter__(self) -> Pkcs11Token:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def generate_key(token_label: str, pin: str, *, attempts: PinAttempts,
                 module: str | os.PathLike[str] | None = None) -> bytes:
    """Generate a secp256k1 key in the token labelled ``token_label``; return its address."""
    with Pkcs11Token(token_label, pin, attempts=attempts, module=module) as token:
        return token.generate_key()


def list_keys(token_label: str, pin: str | None = None, *,
              attempts: PinAttempts | None = None,
              module: str | os.PathLike[str] | None = None) -> list[bytes]:
    """Addresses of the orbital keys on the token. With a PIN (and ``attempts``), only keys
    whose private key is present; without, from the public keys alone (no login)."""
    if pin is not None:
        if attempts is None:
            raise ValueError("a PIN needs the failed-PIN counter (attempts=)")
        with Pkcs11Token(token_label, pin, attempts=attempts, module=module) as token:
            return token.list_keys()
    session = find_token(load_module(module), token_label).open()
    try:
        return _list(session)
    finally:
        session.close()


# -- the signer -----------------------------------------------------------------------------

class _ThreadSession:
    """One thread's session and its handle on the private key."""

    __slots__ = ("__weakref__", "key", "session")

    def __init__(self, session: Any, key: Any) -> None:
        self.session = session
        self.key = key


def _close_sessions(sessions: dict[int, Any], lock: threading.Lock,
                    which: int | None = None) -> None:
    """Close one session of ``sessions`` (``which``) or all of them."""
    with lock:
        if which is None:
            closing = list(sessions.values())
            sessions.clear()
        else:
            closing = [sessions.pop(which)] if which in sessions else []
    for session in closing:
        with contextlib.suppress(p11e.PKCS11Error):
            session.close()


class Pkcs11Signer:
    """:class:`~wallet.keys.signer.Signer` for one key in a PKCS#11 token.

    Thread-safe: each thread signs on its own session (opened on its first signature,
    closed when the thread ends or at :meth:`close`) when the module is thread-safe
    (p11-kit-proxy), else all threads share one session under a lock. Call :meth:`close`
    once no thread signs any more."""

    def __init__(self, token_label: str, address: bytes | str, pin: str, *,
                 attempts: PinAttempts, module: str | os.PathLike[str] | None = None,
                 concurrent: bool | None = None) -> None:
        login = _acquire_login(module, token_label, pin, attempts)
        try:
            self._setup(login, parse_address(address), concurrent)
        except BaseException:
            _release(login)
            raise

    @classmethod
    def _with_login(cls, login: _Login, address: bytes, concurrent: bool | None
                    ) -> Pkcs11Signer:
        signer = cls.__new__(cls)
        signer._setup(login, address, concurrent)
        return signer

    def _setup(self, login: _Login, address: bytes, concurrent: bool | None) -> None:
        self._login = login
        self._address = address
        self._label = login.label
        try:
            self._key_id = _key_id(login.session, address, login.label)
            _check_private_key(_private_key(login.session, self._key_id, address,
                                            login.label), address, login.label)
        except p11e.PKCS11Error as exc:
            raise SigningError(f"cannot read key 0x{address.hex()} on token {login.label!r}: "
                               f"{type(exc).__name__} {exc}") from None
        self.concurrent = is_thread_safe(login.lib) if concurrent is None else concurrent
        self._local = threading.local()
        self._sessions: dict[int, Any] = {}
        self._sessions_lock = threading.Lock()
        self._serial_lock = threading.Lock()
        self._shared: _ThreadSession | None = None  # the one session when not concurrent
        self._closed = False
        # If the signer is dropped without close(), still close its sessions and log out.
        self._finalizer = weakref.finalize(self, _finalize_signer, self._sessions,
                                           self._sessions_lock, login)

    @property
    def address(self) -> bytes:
        return self._address

    @property
    def token_label(self) -> str:
        return self._label

    def _open(self) -> _ThreadSession:
        try:
            session = self._login.token.open()  # read-only, inherits the login
        except p11e.PKCS11Error as exc:
            raise SigningError(f"cannot open a session on token {self._label!r}: "
                               f"{type(exc).__name__} {exc}") from None
        try:
            key = _private_key(session, self._key_id, self._address, self._label)
        except p11e.PKCS11Error as exc:
            with contextlib.suppress(p11e.PKCS11Error):
                session.close()
            raise SigningError(f"cannot find key 0x{self._address.hex()} on token "
                               f"{self._label!r}: {type(exc).__name__} {exc}") from None
        except BaseException:
            with contextlib.suppress(p11e.PKCS11Error):
                session.close()
            raise
        holder = _ThreadSession(session, key)
        with self._sessions_lock:
            if self._closed:
                with contextlib.suppress(p11e.PKCS11Error):
                    session.close()
                raise SigningError(f"signer for 0x{self._address.hex()} was closed")
            self._sessions[id(holder)] = session
        # The holder lives in the thread-local, so it dies with the thread: close its session.
        weakref.finalize(holder, _close_sessions, self._sessions, self._sessions_lock,
                         id(holder))
        return holder

    def _holder(self) -> _ThreadSession:
        if self.concurrent:
            holder = getattr(self._local, "holder", None)
            if holder is None:
                holder = self._local.holder = self._open()
            return holder
        holder = self._shared
        if holder is None:
            holder = self._shared = self._open()
        return holder

    def _forget(self, holder: _ThreadSession) -> None:
        if self.concurrent:
            self._local.holder = None
        else:
            self._shared = None
        _close_sessions(self._sessions, self._sessions_lock, id(holder))

    def _sign_raw(self, digest: bytes) -> bytes:
        for retry in (False, True):
            holder = self._holder()
            try:
                return bytes(holder.key.sign(digest, mechanism=Mechanism.ECDSA))
            except _LOST_SESSION:
                self._forget(holder)  # the session went away: open a new one, once
                if retry:
                    raise SigningError(f"token {self._label!r} keeps losing sessions") from None
            except p11e.PKCS11Error as exc:
                raise SigningError(f"token {self._label!r} failed to sign with "
                                   f"0x{self._address.hex()}: {type(exc).__name__} {exc}"
                                   ) from None
        raise AssertionError("unreachable")

    def sign_digest(self, digest: bytes) -> Signature:
        """``CKM_ECDSA`` over ``digest`` in the token, then low-s, recovery id, and the
        check that it recovers :attr:`address` (:func:`finalize_signature`)."""
        if len(digest) != 32:
            raise SigningError(f"refusing to sign a digest of {len(digest)} bytes (want 32)")
        if self._closed:
            raise SigningError(f"signer for 0x{self._address.hex()} was closed")
        if self.concurrent:
            raw = self._sign_raw(digest)
        else:
            with self._serial_lock:
                raw = self._sign_raw(digest)
        if len(raw) != 64:
            raise SigningError(f"token {self._label!r} returned a {len(raw)}-byte ECDSA "
                               "signature (want r || s, 64 bytes)")
        return finalize_signature(digest, int.from_bytes(raw[:32], "big"),
                                  int.from_bytes(raw[32:], "big"), self._address)

    def has_seal_key(self) -> bool:
        """Whether the token holds this key's seal key (:meth:`seal_mac`)."""
        session = self._login.token.open()
        try:
            return _seal_key(session, self._address, self._label) is not None
        finally:
            session.close()

    def seal_mac(self, data: bytes, *, create: bool = False) -> bytes:
        """HMAC-SHA256 (``CKM_SHA256_HMAC``) of ``data`` by this key's seal key: a
        256-bit generic secret generated in the token (CKA_LOCAL, sensitive,
        non-extractable, non-modifiable, non-copyable, labelled ``orbital:seal:0x<address>``),
        made on first use when ``create``. What authenticates the wallet's sealed
        configuration (:mod:`wallet.seal`); the secret never leaves the token."""
        try:
            session = self._login.token.open(rw=create)
            try:
                key = _seal_key(session, self._address, self._label)
                if key is None:
                    if not create:
                        raise AuditError(f"token {self._label!r} holds no seal key for "
                                         f"0x{self._address.hex()}")
                    key = session.generate_key(
                        KeyType.GENERIC_SECRET, 256, label=_seal_label(self._address),
                        store=True, mechanism=Mechanism.GENERIC_SECRET_KEY_GEN,
                        template={Attribute.TOKEN: True, Attribute.PRIVATE: True,
                                  Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False,
                                  Attribute.SIGN: True, Attribute.VERIFY: True,
                                  Attribute.ENCRYPT: False, Attribute.DECRYPT: False,
                                  Attribute.MODIFIABLE: False, Attribute.COPYABLE: False})
                    _check_seal_key(key, self._label)
                return bytes(key.sign(data, mechanism=Mechanism.SHA256_HMAC))
            finally:
                session.close()
        except p11e.PKCS11Error as exc:
            raise SigningError(f"token {self._label!r} could not compute the seal MAC: "
                               f"{type(exc).__name__} {exc}") from None

    def read_record(self, name: str) -> bytes | None:
        """The value of this key's record ``name`` in the token (:meth:`write_record`), or
        None when the token holds none."""
        try:
            session = self._login.token.open()
            try:
                versions = _records(session, self._address, name)
                return versions[-1][2] if versions else None
            finally:
                session.close()
        except p11e.PKCS11Error as exc:
            raise AuditError(f"token {self._label!r} could not read its {name} record: "
                             f"{type(exc).__name__} {exc}") from None

    def write_record(self, name: str, value: bytes) -> None:
        """Store ``value`` as this key's record ``name``: a token data object (PKCS#11
        v2.40 section 4.5, ``CKO_DATA``), ``CKA_PRIVATE`` (read and written only after a
        login with the user PIN), ``CKA_APPLICATION`` ``orbital``, labelled
        ``orbital:<name>:0x<address>``, its ``CKA_VALUE`` an 8-byte version then ``value``.
        SoftHSM2 does not let a data object's value change (``CKR_ATTRIBUTE_READ_ONLY``),
        so a write creates the next version and only then destroys the older ones: a crash
        in between leaves both, and the newest is read; the token never holds none. What
        keeps the audit log's head where an edit of the wallet's files cannot reach it
        (:class:`wallet.anchor.TokenHead`)."""
        try:
            session = self._login.token.open(rw=True)
            try:
                versions = _records(session, self._address, name)
                version = versions[-1][0] + 1 if versions else 1
                session.create_object({
                    Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: True,
                    Attribute.PRIVATE: True, Attribute.APPLICATION: "orbital",
                    Attribute.LABEL: _record_label(self._address, name),
                    Attribute.VALUE: version.to_bytes(8, "big") + bytes(value)})
                for _, old, _ in versions:
                    old.destroy()
            finally:
                session.close()
        except p11e.PKCS11Error as exc:
            raise AuditError(f"token {self._label!r} could not write its {name} record: "
                             f"{type(exc).__name__} {exc}") from None

    def close(self) -> None:
        """Close every session of this signer and release the login (the last user of the
        token in this process logs out). Idempotent."""
        with self._sessions_lock:
            if self._closed:
                return
            self._closed = True
        self._finalizer()

    def __enter__(self) -> Pkcs11Signer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"Pkcs11Signer(token={self._label!r}, "
                f"address={to_checksum_address(self._address)})")


def _seal_label(address: bytes) -> str:
    return f"{KEY_LABEL_PREFIX}seal:0x{address.hex()}"


def _seal_key(session: Any, address: bytes, label: str) -> Any:
    """The seal key of ``address`` in the token (checked like a signing key), or None."""
    found = list(session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY,
                                      Attribute.LABEL: _seal_label(address)}))
    if not found:
        return None
    if len(found) > 1:
        raise AuditError(f"token {label!r} holds {len(found)} seal keys for 0x{address.hex()}")
    _check_seal_key(found[0], label)
    return found[0]


def _record_label(address: bytes, name: str) -> str:
    return f"{KEY_LABEL_PREFIX}{name}:0x{address.hex()}"


def _records(session: Any, address: bytes, name: str) -> list[tuple[int, Any, bytes]]:
    """The versions of :meth:`Pkcs11Signer.write_record`'s record, oldest first:
    ``(version, object, value)``."""
    found = session.get_objects({Attribute.CLASS: ObjectClass.DATA,
                                 Attribute.LABEL: _record_label(address, name)})
    versions = []
    for record in found:
        raw = bytes(record[Attribute.VALUE])
        if len(raw) >= 8:  # anything else was not written by write_record: ignored
            versions.append((int.from_bytes(raw[:8], "big"), record, raw[8:]))
    return sorted(versions, key=lambda v: v[0])


def _check_seal_key(key: Any, label: str) -> None:
    attrs = key.get_attributes([Attribute.LOCAL, Attribute.NEVER_EXTRACTABLE,
                                Attribute.ALWAYS_SENSITIVE, Attribute.EXTRACTABLE])
    if not (attrs[Attribute.LOCAL] and attrs[Attribute.NEVER_EXTRACTABLE]
            and attrs[Attribute.ALWAYS_SENSITIVE]) or attrs[Attribute.EXTRACTABLE]:
        raise AuditError(f"token {label!r}: the seal key was not generated in the token or "
                         "has been extractable: refusing it")


def _finalize_signer(sessions: dict[int, Any], lock: threading.Lock, login: _Login) -> None:
    _close_sessions(sessions, lock)
    _release(login)


# -- token administration (security officer) ----------------------------------------------

def _check_pin_text(pin: str, who: str) -> None:
    if not 4 <= len(pin.encode("utf-8")) <= 255:
        raise MalformedRequestError(f"the {who} must have 4 to 255 bytes")
    if not pin.isprintable():
        raise MalformedRequestError(f"the {who} must not contain control characters")


def softhsm_token_labels(util: str | None = None) -> list[str]:
    """Labels of the initialised SoftHSM2 tokens (as ``softhsm2-util --show-slots`` sees
    them, with the current ``SOFTHSM2_CONF``)."""
    tool = _softhsm_util(util)
    done = subprocess.run([tool, "--show-slots"], capture_output=True, text=True, timeout=60,
                          check=False)
    if done.returncode != 0:
        raise SigningError(f"softhsm2-util --show-slots failed: {done.stderr.strip()}")
    return [m.group(1).strip() for m in re.finditer(r"^\s*Label:[ \t]*(.*)$", done.stdout,
                                                     re.MULTILINE) if m.group(1).strip()]


def _softhsm_util(util: str | None) -> str:
    tool = util or shutil.which("softhsm2-util")
    if not tool:
        raise KeyNotFoundError(
            "init_token initialises SoftHSM2 tokens only and needs softhsm2-util (Debian "
            "package softhsm2; run scripts/setup.sh --test); a real HSM's tokens are "
            "initialised with its vendor's tools")
    return tool


def _run_with_pins(cmd: list[str], answers: list[str]) -> subprocess.CompletedProcess[bytes]:
    """Run ``cmd`` with ``answers`` typed on a pseudo-terminal (softhsm2-util reads PINs
    only from a terminal), so that no PIN is ever on a command line."""
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(cmd, stdin=slave, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    finally:
        os.close(slave)
    try:
        os.write(master, "".join(a + "\n" for a in answers).encode("utf-8"))
        out, err = proc.communicate(timeout=60)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        os.close(master)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def init_token(module: str | os.PathLike[str] | None, label: str, so_pin: str, user_pin: str,
               *, reinitialize: bool = False, attempts: PinAttempts | None = None,
               util: str | None = None) -> None:
    """Initialise a SoftHSM2 token labelled ``label`` with an SO PIN and a user PIN.

    SoftHSM2 only: python-pkcs11 has no ``C_InitToken``, so this runs ``softhsm2-util``
    (PINs typed on a pseudo-terminal, never on its command line). A real HSM's tokens are
    initialised with the vendor's tools. A new token takes SoftHSM's free slot; an existing
    label is refused unless ``reinitialize``, which (given the right SO PIN) wipes the token
    and all its keys -- the reset path of a token the wallet locked. ``attempts``' counters
    for the token's serial number (user and SO; the old serial and the new one) are reset.

    If ``module`` is already loaded in this process it is re-initialised afterwards
    (``C_Finalize`` + ``C_Initialize``) so that the token becomes visible: SoftHSM2 reads its
    token directory only in ``C_Initialize``. That closes every session of the process on
    the module, so it is refused while any signer or token of this module is open."""
    if not 1 <= len(label.encode("utf-8")) <= 32:
        raise MalformedRequestError("a token label has 1 to 32 bytes")
    _check_pin_text(so_pin, "SO PIN")
    _check_pin_text(user_pin, "user PIN")
    tool = _softhsm_util(util)
    exists = label in softhsm_token_labels(tool)
    if exists and not reinitialize:
        raise MalformedRequestError(
            f"a token labelled {label!r} already exists: pass reinitialize=True to wipe it "
            "(destroys its keys)")
    path = resolve_module(module)
    with _lock:
        if any(key[0] == path for key in _logins):
            raise MalformedRequestError(
                f"close this process's signers and tokens on {path} before initialising a "
                "token (the module must be re-initialised to see it)")
        counter = pin_counter_key(label, path) if exists else None
        if counter is not None and attempts is not None:
            attempts.check(counter + SO_SUFFIX, label)  # the SO's own wrong PINs count too
        where = ["--token", label] if exists else ["--free"]
        done = _run_with_pins([tool, "--init-token", *where, "--label", label],
                              [so_pin, so_pin, user_pin, user_pin])
        if done.returncode != 0:
            message = done.stderr.decode("utf-8", "replace").strip()
            if "CKR_PIN_INCORRECT" in message:
                left = (attempts.record_failure(counter + SO_SUFFIX, label)
                        if attempts and counter else -1)
                raise BadPinError(f"wrong SO PIN for token {label!r}" +
                                  (f": {left} attempts left" if left >= 0 else ""))
            raise SigningError(f"softhsm2-util could not initialise token {label!r}: {message}")
        lib = _loaded.get(path)
        if lib is not None:
            lib.reinitialize()
        if attempts is not None:
            counters = {counter} if counter else set()
            with contextlib.suppress(WalletError):
                counters.add(pin_counter_key(label, path))  # re-initialised: new serial?
            for key in counters - {None}:
                attempts.reset(key)
                attempts.reset(key + SO_SUFFIX)


def unlock_token(label: str, so_pin: str, *, attempts: PinAttempts,
                 new_user_pin: str | None = None,
                 module: str | os.PathLike[str] | None = None) -> None:
    """The security officer's unlock of a token the wallet locked: prove the SO PIN to the
    token (``C_Login`` as ``CKU_SO``), optionally set a new user PIN (``C_InitPIN``; on a real
    HSM this is also how a user PIN the token itself blocked is unblocked), then reset the
    wallet's failed-PIN counter for ``label``.

    Wrong SO PINs are counted too (under ``label + " (SO)"``); when those run out, only
    re-initialising the token (:func:`init_token` with ``reinitialize=True``, or the vendor's
    tools and then :meth:`PinAttempts.reset`) helps. The SO cannot log in while this process
    has read-only sessions on the token, so close its signers first."""
    if new_user_pin is not None:
        _check_pin_text(new_user_pin, "new user PIN")
    path = resolve_module(module)
    with _lock:
        if (path, label) in _logins:
            raise MalformedRequestError(
                f"close this process's signers on token {label!r} before unlocking it (the "
                "SO cannot log in while the user is)")
        token = find_token(load_module(path), label)
        counter = _counter_key(token)
        with attempts.attempt(counter + SO_SUFFIX, label) as attempt:
            try:
                session = token.open(rw=True, so_pin=so_pin)
            except _PIN_ERRORS:
                raise _wrong_pin(label, attempt.failed(), attempts.limit, "SO PIN") from None
            except p11e.PinLocked:
                raise TokenLockedError(f"the SO PIN of token {label!r} is locked: only "
                                       "re-initialising the token helps") from None
            except (p11e.SessionReadOnlyExists, p11e.UserAlreadyLoggedIn):
                raise MalformedRequestError(
                    f"close this process's signers on token {label!r} before unlocking "
                    "it (the SO cannot log in beside them)") from None
            except p11e.PKCS11Error as exc:
                raise SigningError(f"SO login to token {label!r} failed: "
                                   f"{type(exc).__name__} {exc}") from None
            attempt.succeeded()
        try:
            if new_user_pin is not None:
                session.init_pin(new_user_pin)
        except p11e.PKCS11Error as exc:
            raise SigningError(f"could not set the new user PIN of token {label!r}: "
                               f"{type(exc).__name__} {exc}") from None
        finally:
            with contextlib.suppress(p11e.PKCS11Error):
                session.close()
    attempts.reset(counter)

