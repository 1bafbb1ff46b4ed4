"""The work behind ``orbital wallet`` (see :mod:`node.cli.wallet` for the
command line); imported only when such a subcommand runs."""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from contextlib import ExitStack, suppress
from dataclasses import replace
from pathlib import Path
from typing import Any

from wallet import audit as audit_log
from wallet.anchor import HEAD_FILE, SignedHeadFile, head_anchor
from wallet.audit import AuditHead, AuditLog
from wallet.commands import (
    CommandKind,
    CommandVerifier,
    NonceStore,
    VerifiedCommand,
    cancel_request_id,
    check_payload,
    envelope_from_json,
    satellite_id,
    set_operators_of,
)
from wallet.config import (
    WalletConfig,
    load_config,
    satellite_name,
    save_config,
    updated,
    wallet_home,
)
from wallet.errors import (
    CommandRejectedError,
    KeyNotFoundError,
    MalformedRequestError,
    PolicyDeniedError,
    SigningError,
)
from wallet.files import write_atomic
from wallet.keys import keystore, pkcs11
from wallet.keys.pin import PinAttempts, read_pin, wallet_pin_attempts
from wallet.keys.signer import Signer
from wallet.onboard import OnboardSigner
from wallet.policy import (
    PolicyLedger,
    PolicyPinError,
    format_address,
    format_time,
    format_wei,
    load_policy,
    parse_address,
    parse_policy,
    pin_policy,
    policy_sha256,
)
from wallet.seal import SealError, check_seal, is_sealed, reseal, seal_explicitly
from wallet.transactions import request_from_json
from wallet.walletlock import WalletLock

# --- opening keys ------------------------------------------------------------------------

def _config(args: argparse.Namespace) -> WalletConfig:
    return load_config(wallet_home(args.home))


def _attempts(config: WalletConfig) -> PinAttempts:
    # Outside the home ($ORBITAL_STATE_DIR or /var/lib/orbital), per token serial: writing
    # the home cannot reset it, wallet.toml can only lower the limit (wallet.keys.pin).
    return wallet_pin_attempts(config.home, config.max_pin_attempts)


def _password(args: argparse.Namespace) -> str:
    return read_pin(getattr(args, "password_file", None), True,
                    env_var=keystore.PASSWORD_ENV, what="keystore password")


def _pin(args: argparse.Namespace) -> str:
    return read_pin(getattr(args, "pin_file", None), True)


def _keystore_path(config: WalletConfig, address: bytes) -> Path:
    return config.keystore_dir / f"0x{address.hex()}.json"


def _keystore_addresses(config: WalletConfig) -> list[bytes]:
    if not config.keystore_dir.is_dir():
        return []
    return sorted(a for a in (keystore.keystore_address(p)
                              for p in config.keystore_dir.glob("*.json")) if a)


def _open_signer(config: WalletConfig, args: argparse.Namespace, stack: ExitStack) -> Signer:
    """The configured key, opened (PIN or password read as the docstring says)."""
    if config.backend == "pkcs11":
        token = stack.enter_context(pkcs11.Pkcs11Token(
            config.token, _pin(args), attempts=_attempts(config), module=config.pkcs11_module))
        keys = token.list_keys()
        address = _choose(config, keys, f"token {config.token!r}")
        signer = token.signer(address)
        stack.callback(signer.close)
        return signer
    address = _choose(config, _keystore_addresses(config), str(config.keystore_dir))
    signer = keystore.KeystoreSigner(_keystore_path(config, address), _password(args))
    stack.callback(signer.close)
    return signer


def _choose(config: WalletConfig, keys: list[bytes], where: str) -> bytes:
    if config.key is not None:
        if config.key not in keys:
            raise KeyNotFoundError(f"key 0x{config.key.hex()} (wallet.toml) is not in {where}")
        return config.key
    if len(keys) == 1:
        return keys[0]
    if not keys:
        raise KeyNotFoundError(f"no key in {where}: run `orbital wallet new`")
    raise KeyNotFoundError(f"{len(keys)} keys in {where}: set `key = \"0x...\"` in wallet.toml")


def _onboard(config: WalletConfig, args: argparse.Namespace, stack: ExitStack) -> OnboardSigner:
    """The on-board signer of ``config``, opened only if what it would obey is what was
    sealed (wallet.seal: operators, threshold, chain, satellite, policy sha256 -- checked
    against wallet.toml and the policy file; a first open of an empty wallet seals it)."""
    signer = _open_signer(config, args, stack)
    _require_pinned(config)
    ledger = stack.enter_context(PolicyLedger(config.path("ledger.sqlite")))
    lock = WalletLock(config.home)
    with lock.held():  # no append (another process's first-open seal) while it opens
        anchor = head_anchor(signer, config.path(HEAD_FILE))
        audit = stack.enter_context(AuditLog(config.path("audit.sqlite"), signer,
                                             anchor=anchor))
        check_seal(config, signer, audit)
    try:
        policy = _load_policy(config)
    except PolicyPinError as exc:
        raise SealError(f"{exc}".split(": review it")[0] + ": edited outside a set_policy "
                        "command; refusing to sign") from None
    return OnboardSigner(signer, policy, ledger, audit, lock=lock)


def _with_head(args: argparse.Namespace, onboard: OnboardSigner,
               report: dict[str, Any]) -> dict[str, Any]:
    """``report`` with the audit head after the signature (the ground keeps it as its
    known head: ``audit verify --known-head``); printed to stderr in text mode."""
    head = str(onboard.audit.head())
    if not getattr(args, "json", False):
        print(f"audit head {head}", file=sys.stderr)
    return {**report, "auditHead": head}


def _require_pinned(config: WalletConfig) -> None:
    if config.policy_sha256 is None:
        raise MalformedRequestError(
            f"no policy pinned in {config.home / 'wallet.toml'}: write {config.policy_file} and "
            "run `orbital wallet policy pin FILE`")


def _load_policy(config: WalletConfig) -> Any:
    _require_pinned(config)
    assert config.policy_sha256 is not None
    return load_policy(config.path(config.policy_file), config.policy_sha256)


def _emit(args: argparse.Namespace, report: dict[str, Any], text: str) -> int:
    print(json.dumps(report) if getattr(args, "json", False) else text)
    return 0


# --- verbs ---------------------------------------------------------------------------------

def _init_token(args: argparse.Namespace) -> int:
    config = _config(args)
    label = args.label or config.token
    so_pin = read_pin(args.so_pin_file, True, env_var="ORBITAL_HSM_SO_PIN", what="SO PIN")
    pkcs11.init_token(config.pkcs11_module, label, so_pin, _pin(args),
                      reinitialize=args.reinitialize, attempts=_attempts(config))
    updated(config, backend="pkcs11", token=label)
    print(f"initialised token {label!r}; wallet backend is pkcs11")
    return 0


def _new(args: argparse.Namespace) -> int:
    config = _config(args)
    if config.backend == "pkcs11":
        with pkcs11.Pkcs11Token(config.token, _pin(args), attempts=_attempts(config),
                                module=config.pkcs11_module) as token:
            address = token.generate_key()
    else:
        config.keystore_dir.mkdir(parents=True, exist_ok=True)
        password = _password(args)
        address = keystore.create_keystore(config.keystore_dir / "new.json.tmp", password)
        (config.keystore_dir / "new.json.tmp").rename(_keystore_path(config, address))
    if not (config.home / "wallet.toml").exists():
        save_config(config)
    return _emit(args, {"address": "0x" + address.hex(), "backend": config.backend},
                 f"0x{address.hex()}")


def _list(args: argparse.Namespace) -> int:
    config = _config(args)
    if config.backend == "pkcs11":
        with pkcs11.Pkcs11Token(config.token, _pin(args), attempts=_attempts(config),
                                module=config.pkcs11_module) as token:
            keys = token.list_keys()
    else:
        keys = _keystore_addresses(config)
    return _emit(args, {"keys": ["0x" + k.hex() for k in keys]},
                 "\n".join("0x" + k.hex() for k in keys) or "(no keys)")


def _default_address(config: WalletConfig) -> bytes:
    """The address this wallet signs with, found without a PIN or password (public keys
    of the token, or the keystores' stated addresses)."""
    if config.backend == "pkcs11":
        keys = pkcs11.list_keys(config.token, module=config.pkcs11_module)
        return _choose(config, keys, f"token {config.token!r}")
    return _choose(config, _keystore_addresses(config), str(config.keystore_dir))


def _address(args: argparse.Namespace) -> int:
    print(f"0x{_default_address(_config(args)).hex()}")
    return 0


def _import_keystore(args: argparse.Namespace) -> int:
    config = _config(args)
    config.keystore_dir.mkdir(parents=True, exist_ok=True)
    temporary = config.keystore_dir / "import.json.tmp"
    address = keystore.import_keystore(args.file, temporary, _password(args))
    temporary.rename(_keystore_path(config, address))
    return _emit(args, {"address": "0x" + address.hex()}, f"imported 0x{address.hex()}")


def _sign_tx(args: argparse.Namespace) -> int:
    config = _config(args)
    body: dict[str, Any] = {"type": int(args.type), "nonce": args.nonce, "gas": args.gas,
                            "to": args.to, "value": args.value, "data": args.data}
    chain_id = args.chain_id if args.chain_id is not None else config.chain_id
    if chain_id is not None:
        body["chainId"] = chain_id
    if args.type in ("2", "4"):
        body.update(maxFeePerGas=args.max_fee, maxPriorityFeePerGas=args.priority_fee)
    else:
        body["gasPrice"] = args.gas_price
    body = {k: v for k, v in body.items() if v is not None}
    request = request_from_json(body)
    with ExitStack() as stack:
        onboard = _onboard(config, args, stack)
        signed = onboard.sign_transaction(request)
        report = _with_head(args, onboard, {"raw": "0x" + signed.raw.hex(),
                                            "hash": "0x" + signed.hash.hex(),
                                            "from": "0x" + signed.sender.hex()})
    if args.send:
        report["sent"] = _send_raw(args.send, signed.raw)
    return _emit(args, report, report["raw"] if not args.send else
                 f"{report['raw']}\nsent {report['sent']}")


class _Unreachable(SigningError):
    """The RPC could not be reached or did not answer JSON-RPC (not a refusal)."""


def _send_raw(url: str, raw: bytes) -> str:
    if not url.startswith(("http://", "https://")):
        raise MalformedRequestError(f"RPC URL {url!r}: expected http:// or https://")
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction",
                       "params": ["0x" + raw.hex()]}).encode()
    request = urllib.request.Request(url, body, {"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
    except (OSError, ValueError) as exc:  # ValueError: the answer is not JSON
        raise _Unreachable(f"signed, but could not reach {url}: {exc}; the transaction is "
                           "in the audit log, resend the raw hex") from None
    if not isinstance(answer, dict):
        raise _Unreachable(f"{url} did not answer a JSON-RPC object")
    if answer.get("error"):
        raise SigningError(f"{url} refused the transaction: {answer['error']}")
    return str(answer.get("result"))


def _sign_message(args: argparse.Namespace) -> int:
    config = _config(args)
    if args.hex:
        try:
            message = bytes.fromhex(args.message.strip().removeprefix("0x"))
        except ValueError:
            raise MalformedRequestError("--hex: the message is not hex bytes (0x and an "
                                        "even number of hex digits)") from None
    else:
        message = args.message.encode()
    with ExitStack() as stack:
        onboard = _onboard(config, args, stack)
        signature = onboard.sign_personal_message(message)
        report = _with_head(args, onboard, {"signature": "0x" + signature.to_bytes().hex()})
    return _emit(args, report, report["signature"])


def _sign_typed(args: argparse.Namespace) -> int:
    config = _config(args)
    document = _read_json(args.file)
    with ExitStack() as stack:
        onboard = _onboard(config, args, stack)
        signature = onboard.sign_typed_data(document)
        report = _with_head(args, onboard, {"signature": "0x" + signature.to_bytes().hex()})
    return _emit(args, report, report["signature"])


def _read_json(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except OSError as exc:
        raise MalformedRequestError(f"{path}: cannot read: {exc.strerror}") from None
    except (ValueError, RecursionError) as exc:
        raise MalformedRequestError(f"{path}: not JSON: {exc}") from None


def _policy_check(args: argparse.Namespace) -> int:
    """The decision signing would take now (the wallet opened as for signing: seal, policy
    and audit log authenticated, the history derived from the log), nothing signed."""
    config = _config(args)
    request = request_from_json(_read_json(args.file))
    with ExitStack() as stack:
        decision = _onboard(config, args, stack).judge(request)
    if args.json:
        print(json.dumps(decision.to_payload(), default=str))
    else:
        print(f"{decision.outcome}: {decision.rule}: {decision.reason}")
    return 0 if decision.allowed else PolicyDeniedError.exit_code


def _propose(args: argparse.Namespace, config: WalletConfig, kind: CommandKind,
             payload: dict[str, Any], name: str) -> int:
    """Write the ``kind`` payload for the operators to sign (``orbital ground command``):
    a sealed wallet's settings change only by an m-of-n command (wallet.seal)."""
    check_payload(kind, payload, config.chain_id or 1)
    out = Path(args.out) if getattr(args, "out", None) else config.path("proposals") / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=1) + "\n")
    satellite = config.satellite or "NAME"
    return _emit(args, {"proposal": str(out), "kind": kind.value, "payload": payload,
                        "applied": False},
                 f"{config.home} is sealed: nothing changed. Proposal written to {out}; "
                 f"operators sign it with `orbital ground command --kind {kind.value} "
                 f"--payload {out} --satellite {satellite} ...` and the satellite applies it "
                 "with `orbital wallet run-command ENVELOPE.json`")


def _policy_pin(args: argparse.Namespace) -> int:
    config = _config(args)
    digest = pin_policy(args.file)
    if is_sealed(config):
        data = Path(args.file).read_bytes()
        keep = config.path("proposals") / f"policy-{digest}.toml"
        keep.parent.mkdir(parents=True, exist_ok=True)
        keep.write_bytes(data)  # the bytes set_policy will look for (by their sha256)
        return _propose(args, config, CommandKind.SET_POLICY, {"sha256": digest},
                        f"set_policy-{digest[:16]}.json")
    target = config.path(config.policy_file)
    if Path(args.file).resolve() != target.resolve():
        config.home.mkdir(parents=True, exist_ok=True)
        target.write_bytes(Path(args.file).read_bytes())
    updated(config, policy_sha256=digest)
    print(f"pinned {config.policy_file} sha256 {digest}")
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    """Verify the log, then that it still holds the head kept outside it: in the token for
    a PKCS#11 wallet (so the PIN is needed), else the signed head file."""
    config = _config(args)
    known = AuditHead.parse(args.known_head) if args.known_head else None
    path = config.path("audit.sqlite")
    with ExitStack() as stack:
        if config.backend == "pkcs11":
            key = _open_signer(config, args, stack)
            signer = bytes(key.address)
            if args.signer is not None and args.signer != signer:
                raise MalformedRequestError(f"--signer 0x{args.signer.hex()} is not this "
                                            f"wallet's key 0x{signer.hex()}")
            anchor: Any = head_anchor(key, config.path(HEAD_FILE))
        else:
            signer = args.signer if args.signer is not None else _default_address(config)
            anchor = SignedHeadFile(config.path(HEAD_FILE), signer)
        head = audit_log.verify(path, expected_signer=signer, known_head=known)
        anchored = anchor.read(audit_log.log_identity(path)[1])
    if anchored is None and head.seq > 0:
        raise audit_log.AuditChainError(str(path), head.seq, f"the log has entries but its "
                                        f"anchored head ({anchor.path}) is missing")
    if anchored is not None:
        audit_log.verify(path, expected_signer=signer, known_head=AuditHead(*anchored))
    where = "token" if config.backend == "pkcs11" else "file"
    return _emit(args, {"verified": True, "head": str(head), "anchor": where,
                        "anchoredHead": None if anchored is None else str(AuditHead(*anchored))},
                 f"audit log verified: {head.seq} entries, head {head} (anchored in the "
                 f"{where})")


def _audit_export(args: argparse.Namespace) -> int:
    config = _config(args)
    document = audit_log.export(config.path("audit.sqlite"), args.from_seq)
    text = json.dumps(document, indent=1)
    if args.out:
        Path(args.out).write_text(text + "\n")
    else:
        print(text)
    return 0


def _audit_verify_export(args: argparse.Namespace) -> int:
    known = AuditHead.parse(args.known_head) if args.known_head else None
    head = audit_log.verify_export(_read_json(args.file), known_head=known,
                                   expected_signer=args.signer)
    print(f"export verified: head {head}")
    return 0


def _config_report(config: WalletConfig) -> dict[str, Any]:
    return {"home": str(config.home), "backend": config.backend,
            "key": None if config.key is None else format_address(config.key),
            "chainId": config.chain_id, "satellite": config.satellite,
            "operators": [format_address(a) for a in config.operators],
            "threshold": config.threshold, "policyFile": config.policy_file,
            "policySha256": config.policy_sha256}


def _config_show(args: argparse.Namespace) -> int:
    config = _config(args)
    return _emit(args, _config_report(config), config.to_toml().rstrip())


def _config_set(args: argparse.Namespace) -> int:
    config = _config(args)
    changes: dict[str, Any] = {}
    if args.operators is not None:
        addresses = [a.strip() for a in args.operators.split(",") if a.strip()]
        parsed = tuple(parse_address(a) for a in addresses)
        if len(set(parsed)) != len(parsed):
            raise MalformedRequestError("--operators lists an address twice")
        changes["operators"] = parsed
    if args.threshold is not None:
        changes["threshold"] = args.threshold
    if args.chain_id is not None:
        if not 0 < args.chain_id < 2**64:
            raise MalformedRequestError(f"--chain-id {args.chain_id}: want 1..2^64-1")
        changes["chain_id"] = args.chain_id
    if args.satellite is not None:
        if not args.satellite.strip() or '"' in args.satellite or "\\" in args.satellite:
            raise MalformedRequestError("--satellite must be a non-empty name without quotes "
                                        "or backslashes")
        changes["satellite"] = args.satellite
    if args.key is not None:
        changes["key"] = parse_address(args.key)
    if not changes:
        raise MalformedRequestError("nothing to change: give --operators, --threshold, "
                                    "--chain-id, --satellite or --key")
    operators = changes.get("operators", config.operators)
    threshold = changes.get("threshold", config.threshold)
    if operators and not 1 <= threshold <= len(operators):
        raise MalformedRequestError(f"threshold {threshold} must be 1..{len(operators)} "
                                    f"(the number of operators)")
    if not operators and "threshold" in changes:
        raise MalformedRequestError("set --operators before (or with) --threshold")
    if is_sealed(config):
        return _propose_settings(args, config, changes)
    new = updated(config, **changes)
    return _emit(args, _config_report(new),
                 f"updated {new.home / 'wallet.toml'}: " + ", ".join(sorted(changes)))


def _propose_settings(args: argparse.Namespace, config: WalletConfig,
                      changes: dict[str, Any]) -> int:
    """``config set`` on a sealed wallet: one command proposal (module docstring of
    wallet.seal); the key is chosen once, at initialisation."""
    if "key" in changes:
        raise MalformedRequestError(f"{config.home} is sealed: its key was chosen at "
                                    "initialisation and is not changed by `config set`")
    groups = [g for g in (("operators", "threshold"), ("chain_id",), ("satellite",))
              if any(k in changes for k in g)]
    if len(groups) != 1:
        raise MalformedRequestError(f"{config.home} is sealed: propose one change at a time "
                                    "(--operators/--threshold, --chain-id or --satellite)")
    if "chain_id" in changes:
        return _propose(args, config, CommandKind.SET_CHAIN,
                        {"chainId": changes["chain_id"]}, "set_chain.json")
    if "satellite" in changes:
        return _propose(args, config, CommandKind.SET_SATELLITE,
                        {"satellite": changes["satellite"]}, "set_satellite.json")
    operators = changes.get("operators", config.operators)
    payload = {"operators": [format_address(a) for a in operators],
               "threshold": changes.get("threshold", config.threshold)}
    return _propose(args, config, CommandKind.SET_OPERATORS, payload, "set_operators.json")


def _init(args: argparse.Namespace) -> int:
    """Seal the wallet's settings as they are (once: afterwards only operator commands
    change them). Also how a wallet from before seals is migrated."""
    config = _config(args)
    with ExitStack() as stack:
        signer = _open_signer(config, args, stack)
        _load_policy(config)  # a policy that does not load is never sealed
        with WalletLock(config.home).held():
            anchor = head_anchor(signer, config.path(HEAD_FILE))
            audit = stack.enter_context(AuditLog(config.path("audit.sqlite"), signer,
                                                 anchor=anchor))
            fields = seal_explicitly(config, signer, audit)
    return _emit(args, {"sealed": fields},
                 f"sealed {config.home}: operators {len(config.operators)} (threshold "
                 f"{config.threshold}), chain {config.chain_id}, satellite "
                 f"{config.satellite or '(signing address)'}, policy sha256 "
                 f"{config.policy_sha256}; from now on only operator commands change them")


def _audit_rotate(args: argparse.Namespace) -> int:
    config = _config(args)
    with ExitStack() as stack:
        signer = _open_signer(config, args, stack)
        done = audit_log.rotate(config.path("audit.sqlite"), signer, args.reason,
                                anchor=head_anchor(signer, config.path(HEAD_FILE)))
    old = (f"verified head {done.previous_head}" if done.previous_head is not None
           else f"did not verify: {done.problem}")
    return _emit(args, {"rotated": True, "archived": [str(p) for p in done.archived],
                        "previousHead": (str(done.previous_head)
                                         if done.previous_head is not None else None),
                        "problem": done.problem, "head": str(done.first.head)},
                 f"audit log rotated: old log ({old}) kept as {done.archived[0]}; new log "
                 f"starts at {done.first.head}")


# --- the wallet's outbox (node.outbox: the queue of signed transactions) -------------------

OUTBOX_FILE = "outbox.sqlite"
LEGACY_QUEUE_FILE = "queue.sqlite"  # wallet/queue.py's FIFO, before the outbox replaced it


def _wallet_outbox(config: WalletConfig) -> Any:
    """The wallet's outbox, HOME/outbox.sqlite (:class:`node.outbox.store.Outbox`). Signed
    transactions still waiting in a HOME/queue.sqlite of an older version are moved into it
    once (that file is then renamed queue.sqlite.imported)."""
    from node.outbox.store import Outbox

    config.home.mkdir(parents=True, exist_ok=True)
    outbox = Outbox(config.path(OUTBOX_FILE))
    legacy = config.path(LEGACY_QUEUE_FILE)
    if legacy.is_file():
        try:
            _import_legacy_queue(outbox, legacy, config.chain_id)
        except BaseException:
            outbox.close()
            raise
    return outbox


def _import_legacy_queue(outbox: Any, legacy: Path, chain_id: int | None) -> None:
    import sqlite3

    db = sqlite3.connect(f"file:{legacy}?mode=ro", uri=True)
    try:
        raws = [bytes(raw) for (raw,) in db.execute(
            "SELECT raw FROM queued WHERE sent_at IS NULL ORDER BY id")]
    except sqlite3.DatabaseError as exc:
        raise MalformedRequestError(f"{legacy}: not a signed-transaction queue: {exc}") from None
    finally:
        db.close()
    for raw in raws:
        _enqueue(outbox, raw, chain_id)
    legacy.rename(legacy.with_name(legacy.name + ".imported"))


def _enqueue(outbox: Any, raw: bytes, chain_id: int | None) -> Any:
    """Admit the wallet's signed ``raw`` (node.outbox.checks.admit: chain id, low-s sender,
    size, intrinsic gas and the EIP-7623 floor) and make it durable (fsync) before returning
    its entry. The wallet proves no nonce, so the verified nonce given is 0: the node that
    broadcasts it learns the proven one and drops what it contradicts."""
    from node.outbox.checks import OutboxRefused, admit

    if chain_id is None:
        raise MalformedRequestError("wallet.toml needs chain_id before transactions can be "
                                    "queued")
    try:
        return outbox.add(admit(raw, chain_id=chain_id, verified_nonce=0))
    except OutboxRefused as exc:
        raise SigningError(f"signed, but the outbox refused it: {exc}") from None


def _queue_list(args: argparse.Namespace) -> int:
    with _wallet_outbox(_config(args)) as outbox:
        for entry in outbox.entries("queued"):
            print(f"0x{entry.hash.hex()}  from 0x{entry.sender.hex()} nonce {entry.nonce}")
    return 0


def _queue_send(args: argparse.Namespace) -> int:
    """Broadcast every queued (never acknowledged) entry to ``--rpc``, each sender's in nonce
    order; an acknowledgement (or "already known") marks it sent -- not mined. A refusal is
    recorded on the entry (it stays queued, tried again next time) and the rest are still
    sent: one stuck entry does not hold back the others; exit 7 at the end if any was
    refused. An RPC that cannot be reached stops the command (exit 7)."""
    refused: list[str] = []
    with _wallet_outbox(_config(args)) as outbox:
        entries = sorted(outbox.entries("queued"), key=lambda e: (e.sender, e.nonce))
        for entry in entries:
            try:
                sent = _send_raw(args.rpc, entry.raw)
            except _Unreachable:
                raise
            except SigningError as exc:
                if "already known" not in str(exc).lower():
                    outbox.mark_sent(entry.hash, error=str(exc))
                    refused.append(f"0x{entry.hash.hex()}: {exc}")
                    print(f"refused 0x{entry.hash.hex()}: {exc}")
                    continue
                sent = "0x" + entry.hash.hex()
            outbox.mark_sent(entry.hash)
            print(f"sent {sent}")
    if refused:
        raise SigningError(f"{len(refused)} of {len(entries)} queued transactions refused (each "
                           f"recorded, still queued; the others were sent): {refused[0]}")
    return 0


def _run_command(args: argparse.Namespace) -> int:
    config = _config(args)
    if not config.operators or config.chain_id is None:
        raise MalformedRequestError("wallet.toml needs [operators] addresses/threshold and "
                                    "chain_id before it can run operator commands")
    try:
        envelope = envelope_from_json(Path(args.file).read_bytes())
    except OSError as exc:
        raise MalformedRequestError(f"{args.file}: cannot read: {exc.strerror}") from None
    with ExitStack() as stack:
        onboard = _onboard(config, args, stack)  # operators, chain, satellite: as sealed
        nonces = stack.enter_context(NonceStore(config.path("nonces.sqlite")))
        satellite = satellite_name(config, onboard.address)
        verifier = CommandVerifier(set(config.operators), config.threshold,
                                   satellite_id(satellite), config.chain_id, nonces)
        verified = verifier.verify(envelope, time.time())
        onboard.audit.check_clock(time.time())  # a clock set back revives no expired command
        onboard.audit.append("command", {"nonce": verified.command.nonce,
                                         "kind": verified.kind.value,
                                         "signers": ["0x" + s.hex() for s in verified.signers],
                                         "digest": "0x" + verified.digest.hex()})
        verifier.accept(verified, time.time())
        if verified.kind is CommandKind.CANCEL_REQUEST:
            return _apply_cancel(args, onboard, verified)
        if verified.kind in _SETTINGS:
            return _apply_setting(args, config, onboard, verified)
        # The operators' signatures cover the payload, which fixes every field of the
        # transaction: they are the co-signatures the policy may ask for.
        signed = onboard.sign_transaction(request_from_json(dict(verified.payload)),
                                          approvals=frozenset(verified.signers))
        outbox = stack.enter_context(_wallet_outbox(config))
        _enqueue(outbox, signed.raw, config.chain_id)
        report = _with_head(args, onboard, {"queued": "0x" + signed.hash.hex(),
                                            "value": format_wei(signed.request.value)})
    return _emit(args, report,
                 f"command {verified.command.nonce} accepted; signed and queued "
                 f"0x{signed.hash.hex()}")


# --- time-locked requests (pending list | cancel) -----------------------------------------

def _apply_cancel(args: argparse.Namespace, onboard: OnboardSigner,
                  verified: VerifiedCommand) -> int:
    """Act on a verified (nonce consumed) ``cancel_request``: cancel the time-lock under the
    wallet lock (so no signer can use it meanwhile) and audit the cancellation."""
    request_id = cancel_request_id(verified.payload)
    reason = str(verified.payload.get("reason", "")) or "cancelled by operators"
    with onboard.ledger.signing_lock, onboard.lock.held():
        now = time.time()
        onboard.audit.check_clock(now)
        # The time-lock as the authenticated audit log holds it (a deleted or edited
        # ledger row must not make a cancel fail or succeed).
        pending = onboard.history().pending(request_id)
        if pending is None:
            raise MalformedRequestError(f"no time-locked request 0x{request_id.hex()} in "
                                        "this wallet's audit log")
        if pending.signed_at is not None:
            raise PolicyDeniedError(f"request 0x{request_id.hex()} was already signed at "
                                    f"{format_time(pending.signed_at)}", "timelock")
        if pending.cancelled_at is None and now >= pending.cancel_until:
            raise PolicyDeniedError(f"the cancel window of request 0x{request_id.hex()} "
                                    f"closed at {format_time(pending.cancel_until)}",
                                    "timelock")
        with suppress(MalformedRequestError, PolicyDeniedError):  # the ledger's view, kept
            onboard.ledger.cancel(request_id, now, reason)  # in step where it has the row
        onboard.audit.append("timelock_cancelled", {
            "request_id": request_id, "reason": reason, "nonce": verified.command.nonce,
            "signers": ["0x" + s.hex() for s in verified.signers]}, now=now)
    return _emit(args, {"cancelled": "0x" + request_id.hex(), "summary": pending.summary},
                 f"command {verified.command.nonce} accepted; time-locked request "
                 f"0x{request_id.hex()} cancelled ({pending.summary})")


_SETTINGS = (CommandKind.SET_POLICY, CommandKind.SET_OPERATORS, CommandKind.SET_CHAIN,
             CommandKind.SET_SATELLITE)


def _apply_setting(args: argparse.Namespace, config: WalletConfig, onboard: OnboardSigner,
                   verified: VerifiedCommand) -> int:
    """Act on a verified (nonce consumed) settings command: the new settings are sealed
    (audited as wallet_sealed, naming the command), then written to wallet.toml (and the
    policy file), under the wallet lock."""
    payload = verified.payload
    changes: dict[str, Any] = {}
    policy_bytes = None
    if verified.kind is CommandKind.SET_POLICY:
        digest = str(payload["sha256"])
        source = config.path("proposals") / f"policy-{digest}.toml"
        try:
            policy_bytes = source.read_bytes()
        except OSError:
            raise CommandRejectedError(f"command rejected (payload): no policy with sha256 "
                                       f"{digest} on board (propose it with `orbital wallet "
                                       f"policy pin FILE`, which keeps it in {source.parent})"
                                       ) from None
        if policy_sha256(policy_bytes) != digest:
            raise CommandRejectedError(f"command rejected (payload): {source} does not hash "
                                       f"to {digest}")
        parse_policy(policy_bytes, str(source))
        changes["policy_sha256"] = digest
    elif verified.kind is CommandKind.SET_OPERATORS:
        changes["operators"], changes["threshold"] = set_operators_of(payload)
    elif verified.kind is CommandKind.SET_CHAIN:
        changes["chain_id"] = int(payload["chainId"])
    else:
        changes["satellite"] = str(payload["satellite"])
    new = replace(config, **changes)
    with onboard.ledger.signing_lock, onboard.lock.held():
        onboard.audit.check_clock(time.time())
        reseal(new, onboard.signer, onboard.audit, f"command {verified.kind.value}",
               {"nonce": verified.command.nonce, "digest": "0x" + verified.digest.hex(),
                "signers": ["0x" + s.hex() for s in verified.signers]})
        if policy_bytes is not None:
            write_atomic(new.path(new.policy_file), policy_bytes)
        save_config(new)
    return _emit(args, {"applied": verified.kind.value, "config": _config_report(new)},
                 f"command {verified.command.nonce} accepted; {verified.kind.value} applied "
                 f"and sealed: " + ", ".join(sorted(changes)))


def _pending_report(pending: Any) -> dict[str, Any]:
    state = ("cancelled" if pending.cancelled_at is not None
             else "signed" if pending.signed_at is not None else "open")
    return {"requestId": "0x" + pending.request_id.hex(), "state": state,
            "created": pending.created, "notBefore": pending.not_before,
            "cancelUntil": pending.cancel_until, "summary": pending.summary,
            "cancelReason": pending.cancel_reason or None}


def _pending_list(args: argparse.Namespace) -> int:
    config = _config(args)
    with ExitStack() as stack:  # from the authenticated audit log, as signing sees them
        rows = [_pending_report(p) for p in
                _onboard(config, args, stack).pending_requests(include_closed=args.all)]
    text = "\n".join(f"{r['requestId']}  {r['state']}  signable from "
                     f"{format_time(r['notBefore'])}, cancellable until "
                     f"{format_time(r['cancelUntil'])}: {r['summary']}" for r in rows)
    return _emit(args, {"pending": rows}, text or "(no time-locked requests)")


def _pending_cancel(args: argparse.Namespace) -> int:
    """Propose (REQUEST_ID --out: the cancel_request payload for the operators to sign with
    ``orbital ground command --kind cancel_request``) or apply (--envelope: the signed
    envelope, checked m-of-n exactly as run-command does). Nothing local cancels alone."""
    if args.envelope is not None:
        if args.request_id is not None:
            raise MalformedRequestError("give REQUEST_ID (to propose) or --envelope (to "
                                        "apply), not both")
        args.file = args.envelope
        return _run_command(args)
    if args.request_id is None or args.out is None:
        raise MalformedRequestError("propose with REQUEST_ID --out PAYLOAD.json, apply with "
                                    "--envelope ENVELOPE.json")
    text = args.request_id.strip().lower()
    if not (text.startswith("0x") and len(text) == 66
            and all(c in "0123456789abcdef" for c in text[2:])):
        raise MalformedRequestError(f"request id {args.request_id!r:.80}: expected 0x and 64 "
                                    "hex digits (see `orbital wallet pending list`)")
    config = _config(args)
    with PolicyLedger(config.path("ledger.sqlite")) as ledger:
        pending = ledger.pending(bytes.fromhex(text[2:]))
    if pending is None:
        raise MalformedRequestError(f"no time-locked request {text} in this wallet")
    payload: dict[str, Any] = {"requestId": text}
    if args.reason:
        payload["reason"] = args.reason
    check_payload(CommandKind.CANCEL_REQUEST, payload, 0)  # the satellite's own check
    Path(args.out).write_text(json.dumps(payload, indent=1) + "\n")
    satellite = satellite_name(config, _default_address(config))
    return _emit(args, {"proposal": args.out, "payload": payload},
                 f"wrote {args.out}; operators sign it with `orbital ground command --kind "
                 f"cancel_request --payload {args.out} --satellite {satellite} ...`, then "
                 "apply it with `orbital wallet pending cancel --envelope ENVELOPE.json`")
