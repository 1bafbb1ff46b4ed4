"""``orbital wallet``: keys, signing, policy, audit log and the on-board command path.

Keys live in an HSM (``backend = "pkcs11"``: SoftHSM2 or any PKCS#11 module, loaded
through p11-kit-proxy) or in encrypted keystores (``backend = "keystore"``, the embedded
default). Secrets never come from the command line: the HSM PIN from ``--pin-file``,
``$ORBITAL_HSM_PIN`` or a prompt; a keystore password from ``--password-file``,
``$ORBITAL_KEYSTORE_PASSWORD`` or a prompt.

Every signature goes through the policy (``policy.toml``, pinned by sha256 in
``wallet.toml``) and is written to the audit log before it is printed.

Exit codes: 0 ok, 2 malformed input, 3 policy denied, 4 bad PIN/password, 5 token
locked, 6 key not found, 7 signing failed, 8 audit log damaged, 9 command rejected.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from wallet import audit as audit_log
from wallet.audit import AuditHead, AuditLog
from wallet.commands import CommandVerifier, NonceStore, envelope_from_json, satellite_id
from wallet.config import WalletConfig, load_config, save_config, updated, wallet_home
from wallet.errors import (
    KeyNotFoundError,
    MalformedRequestError,
    PolicyDeniedError,
    SigningError,
)
from wallet.keys import keystore, pkcs11
from wallet.keys.pin import PinAttempts, read_pin
from wallet.keys.signer import Signer
from wallet.onboard import OnboardSigner, transaction_signing_request
from wallet.policy import PolicyLedger, format_wei, load_policy, pin_policy
from wallet.queue import SignedQueue
from wallet.transactions import request_from_json


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``wallet`` and its subcommands."""
    parser = commands.add_parser("wallet", help="HSM-backed keys, policy-checked signing, "
                                 "audit log", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", help="wallet directory (default $ORBITAL_HOME or ~/.orbital)")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    p = verbs.add_parser("init-token", help="initialise a SoftHSM2 token (wipes it with "
                         "--reinitialize)", description="Initialise a SoftHSM2 token and make "
                         "it this wallet's backend. SO PIN from --so-pin-file or "
                         "$ORBITAL_HSM_SO_PIN, user PIN from --pin-file or $ORBITAL_HSM_PIN.")
    p.add_argument("--label", help="token label (default: wallet.toml's, 'orbital')")
    p.add_argument("--so-pin-file")
    p.add_argument("--pin-file")
    p.add_argument("--reinitialize", action="store_true",
                   help="wipe an existing token with this label and all its keys")
    p.set_defaults(run=_init_token)

    p = verbs.add_parser("new", help="generate a key (in the HSM, or a new keystore)")
    _secret_args(p)
    p.set_defaults(run=_new)

    p = verbs.add_parser("list", help="list the wallet's key addresses")
    _secret_args(p)
    p.set_defaults(run=_list)

    p = verbs.add_parser("address", help="print the address this wallet signs with")
    p.set_defaults(run=_address)

    p = verbs.add_parser("import-keystore", help="copy a V3 keystore file into the wallet")
    p.add_argument("file")
    _secret_args(p)
    p.set_defaults(run=_import_keystore)

    p = verbs.add_parser("sign-tx", help="sign a transaction within policy; print raw hex",
                         description="Build, policy-check, audit and sign a transaction. "
                         "Amounts in wei. Prints the raw transaction; --send broadcasts it.")
    p.add_argument("--to", help="destination address (omit to create a contract)")
    p.add_argument("--value", default="0")
    p.add_argument("--data", default="0x")
    p.add_argument("--nonce", required=True)
    p.add_argument("--gas", required=True)
    p.add_argument("--chain-id", help="default: wallet.toml's chain_id")
    p.add_argument("--type", choices=["0", "1", "2", "4"], default="2",
                   help="0 legacy (EIP-155), 1 EIP-2930, 2 EIP-1559 (default), 4 EIP-7702")
    p.add_argument("--max-fee", help="maxFeePerGas (types 2 and 4)")
    p.add_argument("--priority-fee", default="0", help="maxPriorityFeePerGas (types 2, 4)")
    p.add_argument("--gas-price", help="gasPrice (types 0 and 1)")
    p.add_argument("--send", metavar="RPC_URL", help="broadcast with eth_sendRawTransaction")
    _secret_args(p)
    p.set_defaults(run=_sign_tx)

    p = verbs.add_parser("sign-message", help="sign an EIP-191 personal message")
    p.add_argument("message", help="text, or 0x-hex with --hex")
    p.add_argument("--hex", action="store_true")
    _secret_args(p)
    p.set_defaults(run=_sign_message)

    p = verbs.add_parser("sign-typed", help="sign an EIP-712 typed-data document")
    p.add_argument("file", help="JSON {types, primaryType, domain, message}")
    _secret_args(p)
    p.set_defaults(run=_sign_typed)

    policy = verbs.add_parser("policy", help="check requests against the policy, pin it")
    pverbs = policy.add_subparsers(dest="policy_verb", metavar="VERB", required=True)
    p = pverbs.add_parser("check", help="what the policy decides for TX.json (signs nothing)")
    p.add_argument("file", metavar="TX.json")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_policy_check)
    p = pverbs.add_parser("pin", help="pin a policy file's sha256 in wallet.toml")
    p.add_argument("file", metavar="POLICY.toml")
    p.set_defaults(run=_policy_pin)

    audit = verbs.add_parser("audit", help="verify or export the audit log")
    averbs = audit.add_subparsers(dest="audit_verb", metavar="VERB", required=True)
    p = averbs.add_parser("verify", help="check every entry's hash link and signature")
    p.add_argument("--known-head", metavar="SEQ:HASH", help="a head seen before (catches "
                   "a cut tail)")
    p.add_argument("--signer", help="expected signer address (default: this wallet's key)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_audit_verify)
    p = averbs.add_parser("export", help="export entries from --from for downlink")
    p.add_argument("--from", dest="from_seq", type=int, default=1)
    p.add_argument("--out", help="file (default stdout)")
    p.set_defaults(run=_audit_export)
    p = averbs.add_parser("verify-export", help="verify an exported range on its own")
    p.add_argument("file")
    p.add_argument("--known-head", metavar="SEQ:HASH")
    p.add_argument("--signer", required=True)
    p.set_defaults(run=_audit_verify_export)

    queue = verbs.add_parser("queue", help="signed transactions waiting for a contact")
    qverbs = queue.add_subparsers(dest="queue_verb", metavar="VERB", required=True)
    p = qverbs.add_parser("list", help="pending signed transactions")
    p.set_defaults(run=_queue_list)
    p = qverbs.add_parser("send", help="broadcast every pending transaction")
    p.add_argument("--rpc", required=True, metavar="RPC_URL")
    p.set_defaults(run=_queue_send)

    p = verbs.add_parser("run-command", help="verify an operator command envelope and act",
                         description="Satellite side: check the envelope's operator "
                         "signatures (m-of-n from wallet.toml), time window and nonce, then "
                         "act: sign_transaction signs the payload within policy and queues it.")
    p.add_argument("file", metavar="ENVELOPE.json")
    _secret_args(p)
    p.set_defaults(run=_run_command)


def _secret_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pin-file", help="file holding the HSM PIN (mode 600)")
    p.add_argument("--password-file", help="file holding the keystore password")
    p.add_argument("--json", action="store_true", help="machine-readable output")


# --- opening keys ------------------------------------------------------------------------

def _config(args: argparse.Namespace) -> WalletConfig:
    return load_config(wallet_home(args.home))


def _attempts(config: WalletConfig) -> PinAttempts:
    config.home.mkdir(parents=True, exist_ok=True)
    return PinAttempts.in_state_dir(config.home, config.max_pin_attempts)


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
    signer = _open_signer(config, args, stack)
    policy = _load_policy(config)
    ledger = stack.enter_context(PolicyLedger(config.path("ledger.sqlite")))
    audit = stack.enter_context(AuditLog(config.path("audit.sqlite"), signer))
    return OnboardSigner(signer, policy, ledger, audit)


def _load_policy(config: WalletConfig) -> Any:
    if config.policy_sha256 is None:
        raise MalformedRequestError(
            f"no policy pinned in {config.home / 'wallet.toml'}: write {config.policy_file} and "
            "run `orbital wallet policy pin FILE`")
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
        signed = _onboard(config, args, stack).sign_transaction(request)
    report = {"raw": "0x" + signed.raw.hex(), "hash": "0x" + signed.hash.hex(),
              "from": "0x" + signed.sender.hex()}
    if args.send:
        report["sent"] = _send_raw(args.send, signed.raw)
    return _emit(args, report, report["raw"] if not args.send else
                 f"{report['raw']}\nsent {report['sent']}")


def _send_raw(url: str, raw: bytes) -> str:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction",
                       "params": ["0x" + raw.hex()]}).encode()
    request = urllib.request.Request(url, body, {"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
    except OSError as exc:
        raise SigningError(f"signed, but could not reach {url}: {exc}; the transaction is "
                           "in the audit log, resend the raw hex") from None
    if answer.get("error"):
        raise SigningError(f"{url} refused the transaction: {answer['error']}")
    return str(answer.get("result"))


def _sign_message(args: argparse.Namespace) -> int:
    config = _config(args)
    message = (bytes.fromhex(args.message.removeprefix("0x")) if args.hex
               else args.message.encode())
    with ExitStack() as stack:
        signature = _onboard(config, args, stack).sign_personal_message(message)
    text = "0x" + signature.to_bytes().hex()
    return _emit(args, {"signature": text}, text)


def _sign_typed(args: argparse.Namespace) -> int:
    config = _config(args)
    document = _read_json(args.file)
    with ExitStack() as stack:
        signature = _onboard(config, args, stack).sign_typed_data(document)
    text = "0x" + signature.to_bytes().hex()
    return _emit(args, {"signature": text}, text)


def _read_json(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except OSError as exc:
        raise MalformedRequestError(f"{path}: cannot read: {exc.strerror}") from None
    except (ValueError, RecursionError) as exc:
        raise MalformedRequestError(f"{path}: not JSON: {exc}") from None


def _policy_check(args: argparse.Namespace) -> int:
    config = _config(args)
    request = request_from_json(_read_json(args.file))
    sender = _default_address(config)
    policy = _load_policy(config)
    with PolicyLedger(config.path("ledger.sqlite")) as ledger:
        decision = policy.evaluate(transaction_signing_request(request, sender, None),
                                   now=time.time(), ledger=ledger)
    if args.json:
        print(json.dumps(decision.to_payload(), default=str))
    else:
        print(f"{decision.outcome}: {decision.rule}: {decision.reason}")
    return 0 if decision.allowed else PolicyDeniedError.exit_code


def _policy_pin(args: argparse.Namespace) -> int:
    config = _config(args)
    digest = pin_policy(args.file)
    target = config.path(config.policy_file)
    if Path(args.file).resolve() != target.resolve():
        config.home.mkdir(parents=True, exist_ok=True)
        target.write_bytes(Path(args.file).read_bytes())
    updated(config, policy_sha256=digest)
    print(f"pinned {config.policy_file} sha256 {digest}")
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    config = _config(args)
    known = AuditHead.parse(args.known_head) if args.known_head else None
    signer = (bytes.fromhex(args.signer.removeprefix("0x")) if args.signer
              else _default_address(config))
    head = audit_log.verify(config.path("audit.sqlite"), expected_signer=signer,
                            known_head=known)
    return _emit(args, {"verified": True, "head": str(head)},
                 f"audit log verified: {head.seq} entries, head {head}")


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
                                   expected_signer=bytes.fromhex(args.signer.removeprefix("0x")))
    print(f"export verified: head {head}")
    return 0


def _queue_list(args: argparse.Namespace) -> int:
    queue = SignedQueue(_config(args).path("queue.sqlite"))
    try:
        for item in queue.pending():
            print(f"0x{item.tx_hash.hex()}  {item.origin}")
    finally:
        queue.close()
    return 0


def _queue_send(args: argparse.Namespace) -> int:
    queue = SignedQueue(_config(args).path("queue.sqlite"))
    try:
        for item in queue.pending():
            print(f"sent {_send_raw(args.rpc, item.raw)}")
            queue.mark_sent(item.tx_hash)
    finally:
        queue.close()
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
        nonces = stack.enter_context(NonceStore(config.path("nonces.sqlite")))
        verifier = CommandVerifier(set(config.operators), config.threshold,
                                   satellite_id(config.satellite), config.chain_id, nonces)
        verified = verifier.verify(envelope, time.time())
        onboard = _onboard(config, args, stack)
        onboard.audit.append("command", {"nonce": verified.command.nonce,
                                         "kind": verified.kind.value,
                                         "signers": ["0x" + s.hex() for s in verified.signers],
                                         "digest": "0x" + verified.digest.hex()})
        verifier.accept(verified, time.time())
        # The operators' signatures cover the payload, which fixes every field of the
        # transaction: they are the co-signatures the policy may ask for.
        signed = onboard.sign_transaction(request_from_json(dict(verified.payload)),
                                          approvals=frozenset(verified.signers))
        queue = SignedQueue(config.path("queue.sqlite"))
        stack.callback(queue.close)
        queue.put(signed.hash, signed.raw, f"command nonce {verified.command.nonce}")
    return _emit(args, {"queued": "0x" + signed.hash.hex(),
                        "value": format_wei(signed.request.value)},
                 f"command {verified.command.nonce} accepted; signed and queued "
                 f"0x{signed.hash.hex()}")
