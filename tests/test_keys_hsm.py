"""The PKCS#11 backend on a real SoftHSM2 token through p11-kit-proxy: key generation inside
the token, signatures, PIN handling with the wallet's own lockout, and signing from many
threads at once. Each test takes a fresh token from the session's pool (the pytest plugin's
``softhsm_token``, node/testing/softhsm.py)."""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pkcs11
import pkcs11.exceptions as p11e
import pytest
from eth_account import Account
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.util.ec import encode_named_curve_parameters

from node.testing.pytest_plugin import SoftHsmToken
from node.testing.softhsm import SO_PIN, USER_PIN, SoftHsm, write_conf
from wallet.errors import (
    BadPinError,
    KeyNotFoundError,
    MalformedRequestError,
    SigningError,
    TokenLockedError,
)
from wallet.keys import pkcs11 as hsm
from wallet.keys.pin import PinAttempts, read_pin
from wallet.keys.signer import HALF_N, Signer, recover_address

REPO = Path(__file__).resolve().parents[1]


def digests(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(32) for _ in range(count)]


def session_on(label: str) -> pkcs11.Session:
    """A plain python-pkcs11 session on the token (logged in if this process is)."""
    return hsm.load_module().get_token(token_label=label).open()


def assert_valid(digest: bytes, signature: object, address: bytes) -> None:
    """Low-s, recovers to ``address`` -- checked with our recovery and with eth-account's."""
    assert signature.s <= HALF_N  # type: ignore[attr-defined]
    assert recover_address(digest, signature) == address  # type: ignore[arg-type]
    vrs = (signature.v, signature.r, signature.s)  # type: ignore[attr-defined]
    assert Account._recover_hash(digest, vrs=vrs).lower() == "0x" + address.hex()


# -- keys -----------------------------------------------------------------------------------

def test_secp256k1_params_are_the_der_oid_1_3_132_0_10() -> None:
    assert encode_named_curve_parameters(hsm.SECP256K1_OID) == hsm.SECP256K1_EC_PARAMS


@pytest.mark.hsm
def test_generated_key_stays_in_the_token_and_is_fixed_at_generation(
        softhsm_token: SoftHsmToken, pin_attempts: PinAttempts) -> None:
    with hsm.Pkcs11Token(softhsm_token.label, USER_PIN, attempts=pin_attempts) as token:
        address = token.generate_key()
        session = session_on(softhsm_token.label)
        try:
            [private] = session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY})
            [public] = session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY})
            assert private[Attribute.KEY_TYPE] == KeyType.EC
            for attribute, value in {
                Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False, Attribute.ALWAYS_SENSITIVE: True,
                Attribute.NEVER_EXTRACTABLE: True, Attribute.SIGN: True, Attribute.LOCAL: True,
                Attribute.DERIVE: False, Attribute.DECRYPT: False, Attribute.UNWRAP: False,
                Attribute.MODIFIABLE: False, Attribute.COPYABLE: False,
            }.items():
                assert private[attribute] == value, attribute
            with pytest.raises(p11e.AttributeSensitive):
                private[Attribute.VALUE]  # the private scalar cannot be read
            with pytest.raises(p11e.PKCS11Error):  # nor flipped to extractable
                private[Attribute.EXTRACTABLE] = True
            assert public[Attribute.MODIFIABLE] is False and public[Attribute.COPYABLE] is False
            key_id = private[Attribute.ID]
            assert key_id == public[Attribute.ID] and key_id.startswith(hsm.KEY_ID_PREFIX)
            assert private[Attribute.LABEL] == public[Attribute.LABEL] == hsm.NEW_KEY_LABEL
            with pytest.raises(p11e.PKCS11Error):  # nor relabelled, nor re-pointed
                private[Attribute.LABEL] = "orbital:other"
            with pytest.raises(p11e.PKCS11Error):
                public[Attribute.ID] = b"another id"
            with pytest.raises(p11e.PKCS11Error):  # nor copied into a weaker object
                private.copy({Attribute.LABEL: "copy"})
            assert public[Attribute.EC_PARAMS] == hsm.SECP256K1_EC_PARAMS
            ec_point = public[Attribute.EC_POINT]
            assert len(ec_point) == 67 and ec_point[:2] == b"\x04\x41"  # DER OCTET STRING
            assert hsm.address_from_ec_point(ec_point) == address
        finally:
            session.close()


@pytest.mark.hsm
def test_signatures_are_low_s_and_recover_to_the_address_of_the_ec_point(
        softhsm_token: SoftHsmToken, pin_attempts: PinAttempts) -> None:
    address = hsm.generate_key(softhsm_token.label, USER_PIN, attempts=pin_attempts)
    with hsm.Pkcs11Signer(softhsm_token.label, address, USER_PIN, attempts=pin_attempts) as signer:
        assert isinstance(signer, Signer)
        assert signer.address == address
        for digest in digests(100, seed=1):
            assert_valid(digest, signer.sign_digest(digest), address)


@pytest.mark.hsm
def test_raw_ckm_ecdsa_is_r_s_and_about_half_high_s(
        softhsm_token: SoftHsmToken, pin_attempts: PinAttempts) -> None:
    """Why finalize_signature exists: the token returns raw r || s, high s half the time."""
    with hsm.Pkcs11Token(softhsm_token.label, USER_PIN, attempts=pin_attempts) as token:
        address = token.generate_key()
        session = session_on(softhsm_token.label)
        try:
            key = hsm.private_key_of(session, address)
            raws = [key.sign(d, mechanism=Mechanism.ECDSA) for d in digests(200, seed=2)]
        finally:
            session.close()
    assert {len(raw) for raw in raws} == {64}
    high = sum(int.from_bytes(raw[32:], "big") > HALF_N for raw in raws)
    assert 50 < high < 150  # binomial(200, 1/2): mean 100, sd 7


@pytest.mark.hsm
def test_list_keys_finds_orbital_keys_with_and_without_login(
        softhsm_token: SoftHsmToken, pin_attempts: PinAttempts) -> None:
    with hsm.Pkcs11Token(softhsm_token.label, USER_PIN, attempts=pin_attempts) as token:
        first, second = token.generate_key(), token.generate_key()
        # A P-256 key with a 20-byte id is not an orbital key.
        session = hsm.load_module().get_token(token_label=softhsm_token.label).open(rw=True)
        try:
            params = session.create_domain_parameters(
                KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")},
                local=True)
            params.generate_keypair(store=True, id=b"\x11" * 20, label="not-orbital")
        finally:
            session.close()
        assert token.list_keys() == sorted([first, second])
    assert hsm.list_keys(softhsm_token.label) == sorted([first, second])  # public keys, no PIN
    assert hsm.list_keys(softhsm_token.label, USER_PIN,
                         attempts=pin_attempts) == sorted([first, second])


@pytest.mark.hsm
def test_missing_key_token_or_bad_digest_are_clear_errors(
        softhsm_token: SoftHsmToken, pin_attempts: PinAttempts) -> None:
    with pytest.raises(KeyNotFoundError, match="no public key 0x2222"):
        hsm.Pkcs11Signer(softhsm_token.label, b"\x22" * 20, USER_PIN, attempts=pin_attempts)
    with pytest.raises(KeyNotFoundError, match="no token labelled 'no-such-token'"):
        hsm.Pkcs11Signer("no-such-token", b"\x22" * 20, USER_PIN, attempts=pin_attempts)
    with pytest.raises(MalformedRequestError, match="20 bytes"):
        hsm.Pkcs11Signer(softhsm_token.label, "0x1234", USER_PIN, attempts=pin_attempts)
    address = hsm.generate_key(softhsm_token.label, USER_PIN, attempts=pin_attempts)
    with (hsm.Pkcs11Signer(softhsm_token.label, "0x" + address.hex(), USER_PIN,
                           attempts=pin_attempts) as signer,
          pytest.raises(SigningError, match="31 bytes")):
        signer.sign_digest(b"\x00" * 31)
    with pytest.raises(SigningError, match="closed"):
        signer.sign_digest(b"\x00" * 32)


@pytest.mark.hsm
def test_closing_the_last_user_logs_the_process_out(
        softhsm_token: SoftHsmToken, pin_attempts: PinAttempts) -> None:
    address = hsm.generate_key(softhsm_token.label, USER_PIN, attempts=pin_attempts)
    token = hsm.Pkcs11Token(softhsm_token.label, USER_PIN, attempts=pin_attempts)
    signer = token.signer(address)  # shares the login
    token.close()
    signer.sign_digest(b"\x01" * 32)  # still logged in: the signer holds the login
    session = session_on(softhsm_token.label)
    try:
        assert list(session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY}))
        signer.close()
        signer.close()  # idempotent
        assert not list(session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY}))
    finally:
        session.close()


@pytest.mark.hsm
def test_a_key_that_could_leave_the_token_is_refused(
        softhsm_token: SoftHsmToken, pin_attempts: PinAttempts) -> None:
    with hsm.Pkcs11Token(softhsm_token.label, USER_PIN, attempts=pin_attempts) as token:
        session = hsm.load_module().get_token(token_label=softhsm_token.label).open(rw=True)
        try:
            params = session.create_domain_parameters(
                KeyType.EC, {Attribute.EC_PARAMS: hsm.SECP256K1_EC_PARAMS}, local=True)
            public, private = params.generate_keypair(
                store=True, id=b"tmp", private_template={Attribute.EXTRACTABLE: True,
                                                         Attribute.SENSITIVE: False})
            address = hsm.address_from_ec_point(public[Attribute.EC_POINT])
            public[Attribute.ID] = private[Attribute.ID] = address
        finally:
            session.close()
        with pytest.raises(SigningError, match="extractable or not sensitive"):
            token.signer(address)


# -- PIN ------------------------------------------------------------------------------------

@pytest.mark.hsm
def test_wrong_pin_says_how_many_attempts_are_left_and_is_counted_durably(
        softhsm_token: SoftHsmToken, tmp_path: Path) -> None:
    attempts = PinAttempts(tmp_path / "pins.sqlite", limit=5)
    with pytest.raises(BadPinError,
                       match=f"wrong PIN for token '{softhsm_token.label}': 4 attempts left"):
        hsm.Pkcs11Token(softhsm_token.label, "not-the-pin", attempts=attempts)
    with pytest.raises(BadPinError, match="3 attempts left"):
        hsm.generate_key(softhsm_token.label, "still-not-it", attempts=attempts)
    restarted = PinAttempts(tmp_path / "pins.sqlite", limit=5)  # a new process, same file
    counter = hsm.pin_counter_key(softhsm_token.label)  # per serial number
    assert restarted.failures(counter) == 2
    assert restarted.remaining(counter) == 3
    hsm.Pkcs11Token(softhsm_token.label, USER_PIN, attempts=restarted).close()
    assert attempts.failures(counter) == 0  # a right PIN clears the count


@pytest.mark.hsm
def test_a_different_pin_while_logged_in_counts_as_wrong(
        softhsm_token: SoftHsmToken, pin_attempts: PinAttempts) -> None:
    with hsm.Pkcs11Token(softhsm_token.label, USER_PIN, attempts=pin_attempts):
        with pytest.raises(BadPinError, match="4 attempts left"):
            hsm.Pkcs11Token(softhsm_token.label, "another-pin", attempts=pin_attempts)
        hsm.Pkcs11Token(softhsm_token.label, USER_PIN, attempts=pin_attempts).close()
    assert pin_attempts.failures(hsm.pin_counter_key(softhsm_token.label)) == 0


LOCKED_CHILD = textwrap.dedent("""
    import json, sys
    from wallet.errors import TokenLockedError
    from wallet.keys import pkcs11 as hsm
    from wallet.keys.pin import PinAttempts
    label, path, pin = sys.argv[1:]
    try:
        hsm.Pkcs11Token(label, pin, attempts=PinAttempts(path, limit=3)).close()
        print(json.dumps({"locked": False}))
    except TokenLockedError as exc:
        print(json.dumps({"locked": True, "message": str(exc)}))
""")


@pytest.mark.hsm
def test_lockout_after_the_limit_survives_a_restart_until_the_so_unlocks(
        softhsm_token: SoftHsmToken, tmp_path: Path) -> None:
    path = tmp_path / "pins.sqlite"
    attempts = PinAttempts(path, limit=3)
    for left in (2, 1):
        with pytest.raises(BadPinError, match=f"{left} attempts? left"):
            hsm.Pkcs11Token(softhsm_token.label, "0000", attempts=attempts)
    with pytest.raises(TokenLockedError, match="3 failed attempts in a row"):
        hsm.Pkcs11Token(softhsm_token.label, "0000", attempts=attempts)
    with pytest.raises(TokenLockedError, match="nothing was tried"):  # even the right PIN
        hsm.Pkcs11Token(softhsm_token.label, USER_PIN, attempts=attempts)
    with pytest.raises(TokenLockedError):
        hsm.Pkcs11Token(softhsm_token.label, USER_PIN, attempts=PinAttempts(path, limit=3))
    # A real restart: another process with the same state file.
    child = subprocess.run([sys.executable, "-c", LOCKED_CHILD, softhsm_token.label, str(path),
                            USER_PIN], cwd=REPO, capture_output=True, text=True,
                           timeout=60, check=True)
    assert json.loads(child.stdout)["locked"] is True

    with pytest.raises(BadPinError, match="wrong SO PIN"):
        hsm.unlock_token(softhsm_token.label, "wrong-so-pin", attempts=attempts)
    counter = hsm.pin_counter_key(softhsm_token.label)
    assert attempts.is_locked(counter)
    assert attempts.failures(counter + hsm.SO_SUFFIX) == 1
    hsm.unlock_token(softhsm_token.label, SO_PIN, attempts=attempts, new_user_pin="fresh-pin-99")
    assert not attempts.is_locked(counter)
    assert attempts.failures(counter + hsm.SO_SUFFIX) == 0  # the SO's count is cleared too
    with pytest.raises(BadPinError, match="2 attempts left"):  # the old PIN is gone
        hsm.Pkcs11Token(softhsm_token.label, USER_PIN, attempts=attempts)
    hsm.Pkcs11Token(softhsm_token.label, "fresh-pin-99", attempts=attempts).close()


@pytest.mark.hsm
def test_unlock_needs_this_process_s_signers_closed(
        softhsm_token: SoftHsmToken, pin_attempts: PinAttempts) -> None:
    address = hsm.generate_key(softhsm_token.label, USER_PIN, attempts=pin_attempts)
    with hsm.Pkcs11Signer(softhsm_token.label, address, USER_PIN, attempts=pin_attempts) as signer:
        signer.sign_digest(b"\x05" * 32)  # opens this thread's read-only session
        with pytest.raises(MalformedRequestError, match="close this process's signers"):
            hsm.unlock_token(softhsm_token.label, SO_PIN, attempts=pin_attempts)
    with hsm.Pkcs11Token(softhsm_token.label, USER_PIN, attempts=pin_attempts), \
            pytest.raises(MalformedRequestError, match="close this process's signers"):
        hsm.unlock_token(softhsm_token.label, SO_PIN, attempts=pin_attempts)
    hsm.unlock_token(softhsm_token.label, SO_PIN, attempts=pin_attempts)


def test_pin_attempts_rejects_a_zero_limit(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        PinAttempts(tmp_path / "p.sqlite", limit=0)


def test_a_damaged_counter_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "p.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(MalformedRequestError, match="unreadable"):
        PinAttempts(path).failures("t")


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_read_pin_sources_and_their_order(tmp_path: Path) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text("from-file\n\n")
    pin_file.chmod(0o600)
    env = {"ORBITAL_HSM_PIN": "from-env"}
    assert read_pin(str(pin_file), True, environ=env) == "from-file\n"  # one newline only
    assert read_pin(None, True, environ=env) == "from-env"
    asked: list[str] = []

    def ask(prompt: str) -> str:
        asked.append(prompt)
        return "typed"

    assert read_pin(None, True, environ={}, stdin=_Tty(), ask=ask) == "typed"
    assert asked == ["HSM PIN: "]
    with pytest.raises(MalformedRequestError, match="set ORBITAL_HSM_PIN, pass --pin-file"):
        read_pin(None, True, environ={}, stdin=io.StringIO(), ask=ask)  # not a terminal
    with pytest.raises(MalformedRequestError, match="never accepted on the command line"):
        read_pin(None, False, environ={}, stdin=_Tty(), ask=ask)  # prompting not allowed
    crlf = tmp_path / "crlf"
    crlf.write_bytes(b"windows\r\n")
    crlf.chmod(0o600)
    assert read_pin(crlf, False, environ={}) == "windows"


@pytest.mark.parametrize(("mode", "content", "message"), [
    (0o644, "1234\n", r"accessible by group or others \(mode 644\): run `chmod 600"),
    (0o640, "1234\n", "accessible by group or others"),
    (0o600, "\n", "is empty"),
])
def test_read_pin_refuses_bad_pin_files(tmp_path: Path, mode: int, content: str,
                                        message: str) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text(content)
    pin_file.chmod(mode)
    with pytest.raises(MalformedRequestError, match=message):
        read_pin(pin_file, False, environ={})


def test_read_pin_refuses_missing_file_and_empty_variable(tmp_path: Path) -> None:
    with pytest.raises(MalformedRequestError, match="does not exist"):
        read_pin(tmp_path / "nope", False, environ={})
    with pytest.raises(MalformedRequestError, match="is set but empty"):
        read_pin(None, False, environ={"ORBITAL_HSM_PIN": ""})


# -- threads --------------------------------------------------------------------------------

def sign_in_threads(signer: hsm.Pkcs11Signer, threads: int, each: int) -> list[Exception]:
    """``threads`` threads sign ``each`` digests at once; return what went wrong."""
    errors: list[Exception] = []
    start = threading.Barrier(threads)

    def work(index: int) -> None:
        try:
            start.wait()
            for digest in digests(each, seed=100 + index):
                assert_valid(digest, signer.sign_digest(digest), signer.address)
        except Exception as exc:  # collected, so that the test sees every failure
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return errors


@pytest.mark.hsm
def test_four_threads_sign_fifty_each_on_their_own_sessions(
        softhsm_token: SoftHsmToken, pin_attempts: PinAttempts) -> None:
    assert hsm.is_thread_safe(hsm.load_module())  # p11-kit-proxy: a session per thread
    address = hsm.generate_key(softhsm_token.label, USER_PIN, attempts=pin_attempts)
    with hsm.Pkcs11Signer(softhsm_token.label, address, USER_PIN, attempts=pin_attempts) as signer:
        assert signer.concurrent
        assert sign_in_threads(signer, threads=4, each=50) == []


@pytest.mark.hsm
def test_a_module_not_known_thread_safe_gets_one_session_and_a_lock(
        softhsm_token: SoftHsmToken, pin_attempts: PinAttempts) -> None:
    address = hsm.generate_key(softhsm_token.label, USER_PIN, attempts=pin_attempts)
    with hsm.Pkcs11Signer(softhsm_token.label, address, USER_PIN, attempts=pin_attempts,
                          concurrent=False) as signer:
        assert sign_in_threads(signer, threads=4, each=25) == []


@pytest.mark.hsm
@pytest.mark.slow
def test_stress_many_threads_two_keys_and_session_churn(
        softhsm_token: SoftHsmToken, pin_attempts: PinAttempts) -> None:
    """The check that a session per thread through p11-kit-proxy is safe (SoftHSM2 loaded
    directly crashes under this): 8 threads on two keys at once, three rounds of fresh
    threads (each opens its sessions, which close when it ends)."""
    with hsm.Pkcs11Token(softhsm_token.label, USER_PIN, attempts=pin_attempts) as token:
        signers = [token.signer(token.generate_key()) for _ in range(2)]
        try:
            for _ in range(3):
                errors: list[Exception] = []

                def both(signer: hsm.Pkcs11Signer, out: list[Exception] = errors) -> None:
                    out.extend(sign_in_threads(signer, threads=4, each=150))

                pool = [threading.Thread(target=both, args=(s,)) for s in signers]
                for thread in pool:
                    thread.start()
                for thread in pool:
                    thread.join()
                assert errors == []
        finally:
            for signer in signers:
                signer.close()


# -- token initialisation (a separate process: it re-initialises the module) -----------------

INIT_CHILD = textwrap.dedent("""
    import json, sys
    from wallet.errors import BadPinError, MalformedRequestError
    from wallet.keys import pkcs11 as hsm
    from wallet.keys.pin import PinAttempts
    attempts = PinAttempts(sys.argv[1])
    out = {}
    hsm.init_token(None, "first", "so-pin-1", "user-pin-1", attempts=attempts)
    address = hsm.generate_key("first", "user-pin-1", attempts=attempts)
    out["keys_before"] = [a.hex() for a in hsm.list_keys("first")]
    # The module is loaded now: a second token is visible only after re-initialising it.
    hsm.init_token(None, "second", "so-pin-2", "user-pin-2", attempts=attempts)
    out["second_keys"] = hsm.list_keys("second", "user-pin-2", attempts=attempts)
    try:
        hsm.init_token(None, "first", "so-pin-1", "user-pin-1")
    except MalformedRequestError as exc:
        out["exists"] = str(exc)
    try:
        hsm.Pkcs11Token("first", "bad-pin", attempts=attempts)
    except BadPinError:
        pass
    try:
        hsm.init_token(None, "first", "wrong-so", "user-pin-3", reinitialize=True,
                       attempts=attempts)
    except BadPinError as exc:
        out["wrong_so"] = str(exc)
    token = hsm.Pkcs11Token("first", "user-pin-1", attempts=attempts)
    try:
        hsm.init_token(None, "first", "so-pin-1", "user-pin-3", reinitialize=True)
    except MalformedRequestError as exc:
        out["busy"] = str(exc)
    token.close()
    try:
        hsm.Pkcs11Token("first", "bad-pin", attempts=attempts)
    except BadPinError:
        pass
    out["failures_before_reinit"] = attempts.failures(hsm.pin_counter_key("first"))
    hsm.init_token(None, "first", "so-pin-1", "user-pin-3", reinitialize=True,
                   attempts=attempts)
    out["failures_after_reinit"] = attempts.failures(hsm.pin_counter_key("first"))
    out["keys_after"] = hsm.list_keys("first", "user-pin-3", attempts=attempts)
    out["address"] = address.hex()
    print(json.dumps(out))
""")


@pytest.mark.hsm
def test_init_token_creates_and_reinitialises_softhsm_tokens(
        softhsm: SoftHsm, tmp_path: Path) -> None:
    env = {**os.environ, "SOFTHSM2_CONF": str(write_conf(tmp_path / "hsm"))}
    child = subprocess.run([sys.executable, "-c", INIT_CHILD, str(tmp_path / "pins.sqlite")],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    out = json.loads(child.stdout)
    assert out["keys_before"] == [out["address"]]
    assert out["second_keys"] == []
    assert "already exists" in out["exists"]
    assert out["wrong_so"].startswith("wrong SO PIN for token 'first'")
    assert "close this process's signers" in out["busy"]
    assert out["failures_before_reinit"] == 1
    assert out["failures_after_reinit"] == 0
    assert out["keys_after"] == []  # re-initialising wipes the keys


def test_init_token_refuses_bad_labels_and_pins() -> None:
    with pytest.raises(MalformedRequestError, match="1 to 32 bytes"):
        hsm.init_token(None, "x" * 33, SO_PIN, USER_PIN)
    with pytest.raises(MalformedRequestError, match="4 to 255 bytes"):
        hsm.init_token(None, "ok", "123", USER_PIN)
    with pytest.raises(MalformedRequestError, match="control characters"):
        hsm.init_token(None, "ok", SO_PIN, "pin\x03pin")  # would be ^C on the terminal


def test_ec_point_parsing() -> None:
    key = Account.create()
    public = key._key_obj.public_key.to_bytes()  # 64 bytes x || y
    point = b"\x04" + public
    address = bytes.fromhex(key.address[2:])
    assert hsm.address_from_ec_point(b"\x04\x41" + point) == address  # DER
    assert hsm.address_from_ec_point(b"\x04\x81\x41" + point) == address  # DER, long form
    assert hsm.address_from_ec_point(point) == address  # bare point (some modules)
    for bad in (b"\x04\x42" + point, b"\x04\x41" + point[:-1], b"\x04\x41\x05" + public,
                b"\x04\x41\x04" + bytes(64)):
        with pytest.raises(SigningError):
            hsm.address_from_ec_point(bad)


@pytest.mark.hsm
@pytest.mark.slow
def test_sign_benchmark_quick_run_reports_every_row(softhsm: SoftHsm) -> None:
    done = subprocess.run([sys.executable, "-m", "benchmarks.sign", "--quick", "--json"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    names = " | ".join(row["capability"] for row in report["rows"])
    for capability in ("1 thread: ours vs raw CKM_ECDSA", "ours: 2 threads vs 1 thread",
                       "eth-account", "latency p99"):
        assert capability in names
    assert all(row["ours"] > 0 and (row["baseline"] or 1) > 0 for row in report["rows"])
    assert any("policy" in note for note in report["notes"])


# -- issue #16, item 10: imported keys, PIN count outside the wallet home -------------------

def _import_key(label: str, *, store_label: str = "orbital:imported") -> bytes:
    """Put a secp256k1 key made outside the token into it with C_CreateObject, as someone
    holding the PIN could: private key SENSITIVE, not EXTRACTABLE, may SIGN (everything the
    old checks asked for), and its public key, both with the wallet's label prefix. Returns
    its address. The token's user must be logged in by this process."""
    secret = Account.create()
    point = b"\x04" + secret._key_obj.public_key.to_bytes()
    address = bytes.fromhex(secret.address[2:])
    session = hsm.load_module().get_token(token_label=label).open(rw=True)
    try:
        common = {Attribute.TOKEN: True, Attribute.KEY_TYPE: KeyType.EC, Attribute.ID: address,
                  Attribute.LABEL: store_label, Attribute.EC_PARAMS: hsm.SECP256K1_EC_PARAMS}
        session.create_object({**common, Attribute.CLASS: ObjectClass.PRIVATE_KEY,
                               Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
                               Attribute.EXTRACTABLE: False, Attribute.SIGN: True,
                               Attribute.VALUE: secret.key})
        session.create_object({**common, Attribute.CLASS: ObjectClass.PUBLIC_KEY,
                               Attribute.PRIVATE: False, Attribute.VERIFY: True,
                               Attribute.EC_POINT: b"\x04\x41" + point})
    finally:
        session.close()
    return address


@pytest.mark.hsm
def test_an_imported_key_is_refused_naming_cka_local(
        softhsm_token: SoftHsmToken, pin_attempts: PinAttempts) -> None:
    with hsm.Pkcs11Token(softhsm_token.label, USER_PIN, attempts=pin_attempts) as token:
        imported = _import_key(softhsm_token.label)
        assert imported in token.list_keys()  # listed (it is there) ...
        with pytest.raises(SigningError) as refused:  # ... but never used
            token.signer(imported)
        message = str(refused.value)
        assert "CKA_LOCAL false" in message and "\n" not in message
        assert "0x" + imported.hex() in message
        generated = token.generate_key()  # a key made in the token still signs
        with token.signer(generated) as signer:
            assert_valid(b"\x07" * 32, signer.sign_digest(b"\x07" * 32), generated)
    with pytest.raises(SigningError, match="CKA_LOCAL"):
        hsm.Pkcs11Signer(softhsm_token.label, imported, USER_PIN, attempts=pin_attempts)


@pytest.mark.hsm
def test_an_imported_key_is_refused_by_the_cli_in_one_line(
        softhsm_token: SoftHsmToken, pin_attempts: PinAttempts, tmp_path: Path) -> None:
    with hsm.Pkcs11Token(softhsm_token.label, USER_PIN, attempts=pin_attempts):
        imported = _import_key(softhsm_token.label)
    home = tmp_path / "home"
    home.mkdir()
    (home / "wallet.toml").write_text(
        f'backend = "pkcs11"\nkey = "0x{imported.hex()}"\n[pkcs11]\n'
        f'token = "{softhsm_token.label}"\n')
    env = {**os.environ, "ORBITAL_HOME": str(home), "ORBITAL_HSM_PIN": USER_PIN,
           "ORBITAL_STATE_DIR": str(tmp_path / "state"), "PYTHONPATH": str(REPO)}
    for argv in (["wallet", "sign-message", "hello"],
                 ["wallet", "audit", "rotate", "--reason", "test"]):
        done = subprocess.run([sys.executable, "-m", "node.cli.main", *argv], env=env,
                              cwd=REPO, capture_output=True, text=True, timeout=120)
        assert done.returncode == 7, done.stderr
        assert "CKA_LOCAL false" in done.stderr and done.stderr.count("\n") == 1
        assert "Traceback" not in done.stderr


@pytest.mark.hsm
def test_the_pin_count_is_per_token_serial_not_per_label_or_file(
        softhsm: SoftHsm, tmp_path: Path) -> None:
    first, second = softhsm.take(), softhsm.take()
    assert hsm.pin_counter_key(first) != hsm.pin_counter_key(second)
    assert hsm.pin_counter_key(first).startswith("serial ")
    attempts = PinAttempts(tmp_path / "pins.sqlite", limit=5)
    with pytest.raises(BadPinError, match="4 attempts left"):
        hsm.Pkcs11Token(first, "wrong-pin", attempts=attempts)
    assert attempts.failures(first) == 0  # not counted under the label
    assert attempts.failures(hsm.pin_counter_key(first)) == 1
    assert attempts.failures(hsm.pin_counter_key(second)) == 0


def test_the_wallet_s_counter_lives_outside_its_home(tmp_path: Path) -> None:
    from wallet.keys import pin

    home = tmp_path / "home"
    outside = pin.wallet_pin_attempts(home, environ={pin.STATE_DIR_ENV: str(tmp_path / "s")})
    assert outside.path == tmp_path / "s" / pin.STATE_FILE
    assert pin.state_dir({}) == pin.DEFAULT_STATE_DIR == Path("/var/lib/orbital")
    for inside in (home, home / "state", home / "sub" / ".." / "x"):
        with pytest.raises(MalformedRequestError, match="inside the wallet home"):
            pin.wallet_pin_attempts(home, environ={pin.STATE_DIR_ENV: str(inside)})
    with pytest.raises(MalformedRequestError, match="set but empty"):
        pin.state_dir({pin.STATE_DIR_ENV: " "})
    # wallet.toml (a file in the home) may lower the limit, never raise it
    assert pin.effective_limit(2) == 2
    assert pin.effective_limit(1000) == pin.DEFAULT_LIMIT
    env = {pin.STATE_DIR_ENV: str(tmp_path / "s")}
    assert pin.wallet_pin_attempts(home, 1000, environ=env).limit == pin.DEFAULT_LIMIT


def test_a_module_others_could_write_is_never_loaded(tmp_path: Path) -> None:
    """The module path comes from wallet.toml (a file any on-board process may edit) and
    loading a library runs its code in the signer: a copy of the real library that group
    or others can write, or in a directory they can write, or a relative path (searched
    in LD_LIBRARY_PATH) is refused before it is loaded; the system's library is loaded."""
    real = hsm.default_module()
    hsm.check_module_path(real)  # root-owned, 644/755: accepted
    lib_dir = tmp_path / "lib"
    lib_dir.mkdir(mode=0o755)
    tmp_path.chmod(0o755)
    copy = lib_dir / "p11.so"
    copy.write_bytes(Path(real).read_bytes())
    copy.chmod(0o755)
    hsm.check_module_path(str(copy))  # this user's, nobody else can write it
    copy.chmod(0o775)
    with pytest.raises(KeyNotFoundError, match="writable by other users"):
        hsm.load_module(str(copy))
    copy.chmod(0o755)
    lib_dir.chmod(0o777)
    with pytest.raises(KeyNotFoundError, match=f"{lib_dir} is writable"):
        hsm.load_module(str(copy))
    link = tmp_path / "link.so"
    link.symlink_to(copy)  # judged by what it points to
    with pytest.raises(KeyNotFoundError, match="writable"):
        hsm.check_module_path(str(link))
    with pytest.raises(KeyNotFoundError, match="not an absolute path"):
        hsm.load_module("p11-kit-proxy.so")
    assert str(copy) not in hsm._loaded
