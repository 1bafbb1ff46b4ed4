"""``orbital wallet``: keys, signing, policy, audit log and the on-board command path.

Keys live in an HSM (``backend = "pkcs11"``: SoftHSM2 or any PKCS#11 module, loaded
through p11-kit-proxy) or in encrypted keystores (``backend = "keystore"``, the embedded
default). Secrets never come from the command line: the HSM PIN from ``--pin-file``,
``$ORBITAL_HSM_PIN`` or a prompt; a keystore password from ``--password-file``,
``$ORBITAL_KEYSTORE_PASSWORD`` or a prompt. Options are never abbreviated. Wrong HSM PINs
are counted per token serial number in ``$ORBITAL_STATE_DIR`` (default
``/var/lib/orbital``: create it, writable by the signer's user only), outside the wallet
home, so neither ``--home`` nor deleting a file resets the lockout.

Every signature goes through the policy (``policy.toml``, pinned by sha256 in
``wallet.toml``) and is written to the audit log before it is printed.

Exit codes: 0 ok, 2 malformed input, 3 policy denied, 4 bad PIN/password, 5 token
locked, 6 key not found, 7 signing failed, 8 audit log damaged, 9 command rejected.
"""

from __future__ import annotations

import argparse

from node.cli.argtypes import address, http_url, uint, wei
from node.cli.lazy import lazy


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
    p.set_defaults(run=lazy("node.cli.wallet_run", "_init_token"))

    p = verbs.add_parser("new", help="generate a key (in the HSM, or a new keystore)")
    _secret_args(p)
    p.set_defaults(run=lazy("node.cli.wallet_run", "_new"))

    p = verbs.add_parser(
        "init", help="seal the wallet's settings (once; then only operator commands change "
        "them)", description="Seal what the signer obeys -- operators and threshold, chain "
        "id, satellite name, the policy's sha256 (wallet.toml) -- with a key inside the "
        "signer (PKCS#11: an HMAC key generated in the token; keystore: the signing key) into "
        "HOME/wallet.seal, and audit it. A wallet whose audit log is empty is sealed at its "
        "first open anyway; one with entries but no seal (made before seals) must be sealed "
        "with this command. Once sealed, `policy pin` and `config set` only propose: the "
        "operators sign the proposal (`orbital ground command --kind set_policy|"
        "set_operators|set_chain|set_satellite`) and `run-command` applies it.")
    _secret_args(p)
    p.set_defaults(run=lazy("node.cli.wallet_run", "_init"))

    p = verbs.add_parser("list", help="list the wallet's key addresses")
    _secret_args(p)
    p.set_defaults(run=lazy("node.cli.wallet_run", "_list"))

    p = verbs.add_parser("address", help="print the address this wallet signs with")
    p.set_defaults(run=lazy("node.cli.wallet_run", "_address"))

    p = verbs.add_parser("import-keystore", help="copy a V3 keystore file into the wallet")
    p.add_argument("file")
    _secret_args(p)
    p.set_defaults(run=lazy("node.cli.wallet_run", "_import_keystore"))

    p = verbs.add_parser("sign-tx", help="sign a transaction within policy; print raw hex",
                         description="Build, policy-check, audit and sign a transaction. "
                         "Amounts as cast takes them: wei (21000, 0x5208) or with a unit "
                         "(20gwei, 1.5ether). Prints the raw transaction; --send broadcasts it.")
    p.add_argument("--to", help="destination address (omit to create a contract)")
    p.add_argument("--value", type=wei, default=0, metavar="AMOUNT")
    p.add_argument("--data", default="0x")
    p.add_argument("--nonce", required=True)
    p.add_argument("--gas", required=True)
    p.add_argument("--chain-id", help="default: wallet.toml's chain_id")
    p.add_argument("--type", choices=["0", "1", "2", "4"], default="2",
                   help="0 legacy (EIP-155), 1 EIP-2930, 2 EIP-1559 (default), 4 EIP-7702")
    p.add_argument("--max-fee", type=wei, metavar="AMOUNT", help="maxFeePerGas (types 2 and 4)")
    p.add_argument("--priority-fee", type=wei, default=0, metavar="AMOUNT",
                   help="maxPriorityFeePerGas (types 2, 4)")
    p.add_argument("--gas-price", type=wei, metavar="AMOUNT", help="gasPrice (types 0 and 1)")
    p.add_argument("--send", metavar="RPC_URL", type=http_url,
                   help="broadcast with eth_sendRawTransaction")
    _secret_args(p)
    p.set_defaults(run=lazy("node.cli.wallet_run", "_sign_tx"))

    p = verbs.add_parser("sign-message", help="sign an EIP-191 personal message")
    p.add_argument("message", help="text, or 0x-hex with --hex")
    p.add_argument("--hex", action="store_true")
    _secret_args(p)
    p.set_defaults(run=lazy("node.cli.wallet_run", "_sign_message"))

    p = verbs.add_parser("sign-typed", help="sign an EIP-712 typed-data document")
    p.add_argument("file", help="JSON {types, primaryType, domain, message}")
    _secret_args(p)
    p.set_defaults(run=lazy("node.cli.wallet_run", "_sign_typed"))

    config = verbs.add_parser("config", help="show or change wallet.toml (operators, chain...)")
    cverbs = config.add_subparsers(dest="config_verb", metavar="VERB", required=True)
    p = cverbs.add_parser("show", help="print the effective wallet.toml")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=lazy("node.cli.wallet_run", "_config_show"))
    p = cverbs.add_parser(
        "set", help="change settings (written atomically; the rest is kept)",
        description="Change wallet.toml: the operators whose EIP-712 command envelopes the "
                    "wallet obeys and how many must sign (m-of-n), the chain and satellite "
                    "name commands are bound to, the key to sign with. Addresses in mixed "
                    "case must pass their EIP-55 checksum. The policy is pinned with "
                    "`orbital wallet policy pin`, the backend set by init-token/new. Once "
                    "the wallet is sealed (`orbital wallet init`, or its first open) nothing "
                    "changes locally: the change is written as a command proposal "
                    "(set_operators, set_chain, set_satellite) for the operators to sign.")
    p.add_argument("--operators", metavar="ADDR,ADDR,...",
                   help="the operator addresses, comma-separated (replaces the list)")
    p.add_argument("--threshold", type=uint(16), metavar="M", help="operator signatures required")
    p.add_argument("--chain-id", type=uint(64), metavar="ID", help="chain operator commands name")
    p.add_argument("--satellite", metavar="NAME",
                   help="this satellite's name (keccak256 = the commands' satelliteId; "
                   "unset, it is the signing address as lower-case 0x hex)")
    p.add_argument("--key", metavar="ADDR", help="the key address to sign with")
    p.add_argument("--out", metavar="PAYLOAD.json", help="sealed wallet: where to write the "
                   "command proposal (default HOME/proposals/)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=lazy("node.cli.wallet_run", "_config_set"))

    policy = verbs.add_parser("policy", help="check requests against the policy, pin it")
    pverbs = policy.add_subparsers(dest="policy_verb", metavar="VERB", required=True)
    p = pverbs.add_parser("check", help="what the policy decides for TX.json (signs nothing)",
                          description="Open the wallet as signing does (PIN or password; the "
                          "seal, the policy and the audit log authenticated) and print what "
                          "the policy would decide for TX.json now. Nothing is signed or "
                          "audited.")
    p.add_argument("file", metavar="TX.json")
    _secret_args(p)
    p.set_defaults(run=lazy("node.cli.wallet_run", "_policy_check"))
    p = pverbs.add_parser("pin", help="pin a policy file's sha256 in wallet.toml (sealed "
                          "wallet: propose a set_policy command)")
    p.add_argument("file", metavar="POLICY.toml")
    p.add_argument("--out", metavar="PAYLOAD.json", help="sealed wallet: where to write the "
                   "set_policy proposal (default HOME/proposals/)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=lazy("node.cli.wallet_run", "_policy_pin"))

    audit = verbs.add_parser("audit", help="verify or export the audit log")
    averbs = audit.add_subparsers(dest="audit_verb", metavar="VERB", required=True)
    p = averbs.add_parser("verify", help="check every entry's hash link and signature")
    p.add_argument("--known-head", metavar="SEQ:HASH", help="a head seen before (catches "
                   "a cut tail)")
    p.add_argument("--signer", type=address,
                   help="expected signer address (default: this wallet's key)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=lazy("node.cli.wallet_run", "_audit_verify"))
    p = averbs.add_parser("export", help="export entries from --from for downlink")
    p.add_argument("--from", dest="from_seq", type=uint(63), default=1)
    p.add_argument("--out", help="file (default stdout)")
    p.set_defaults(run=lazy("node.cli.wallet_run", "_audit_export"))
    p = averbs.add_parser("verify-export", help="verify an exported range on its own")
    p.add_argument("file")
    p.add_argument("--known-head", metavar="SEQ:HASH")
    p.add_argument("--signer", type=address, required=True)
    p.set_defaults(run=lazy("node.cli.wallet_run", "_audit_verify_export"))
    p = averbs.add_parser(
        "rotate", help="retire the audit log (e.g. a damaged one) and start a new one",
        description="Verify what can be verified of the audit log, move its files aside "
                    "(kept as evidence, never deleted), start a new log signed by this "
                    "wallet's key whose first entry (log_rotated) names the old file, the "
                    "keccak256 of its bytes, its verified head or the problem found, and "
                    "--reason. Signing resumes on the new log. Export the old log for the "
                    "ground first if it still verifies.")
    p.add_argument("--reason", required=True, help="one line, recorded in the new log")
    _secret_args(p)
    p.set_defaults(run=lazy("node.cli.wallet_run", "_audit_rotate"))

    queue = verbs.add_parser(
        "queue", help="signed transactions waiting for a contact",
        description="The wallet's outbox (HOME/outbox.sqlite, the same store as the node's: "
                    "orbital node outbox --outbox HOME/outbox.sqlite shows every state). "
                    "run-command queues what it signs there, durably, before it answers.")
    qverbs = queue.add_subparsers(dest="queue_verb", metavar="VERB", required=True)
    p = qverbs.add_parser("list", help="signed transactions no RPC has acknowledged yet")
    p.set_defaults(run=lazy("node.cli.wallet_run", "_queue_list"))
    p = qverbs.add_parser("send", help="broadcast every transaction not yet acknowledged, "
                                       "in nonce order (acknowledged is not mined)")
    p.add_argument("--rpc", required=True, metavar="RPC_URL", type=http_url)
    p.set_defaults(run=lazy("node.cli.wallet_run", "_queue_send"))

    pending = verbs.add_parser(
        "pending", help="time-locked requests: list them, cancel one (m-of-n operators)",
        description="Requests the policy time-locked ([timelock]) wait in the ledger until "
                    "their delay has passed. Only the operators (m-of-n) cancel one: `cancel "
                    "REQUEST_ID --out PAYLOAD.json` proposes (writes the cancel_request "
                    "payload to sign with `orbital ground command --kind cancel_request`), "
                    "`cancel --envelope ENVELOPE.json` applies the signed envelope. A "
                    "cancelled request is never signed.")
    pverbs = pending.add_subparsers(dest="pending_verb", metavar="VERB", required=True)
    p = pverbs.add_parser("list", help="open time-locked requests (--all: also closed ones)")
    p.add_argument("--all", action="store_true", help="include cancelled and signed ones")
    _secret_args(p)  # read from the authenticated audit log: the wallet is opened
    p.set_defaults(run=lazy("node.cli.wallet_run", "_pending_list"))
    p = pverbs.add_parser("cancel", help="propose (REQUEST_ID --out) or apply (--envelope) a "
                          "cancel_request command")
    p.add_argument("request_id", nargs="?", metavar="REQUEST_ID")
    p.add_argument("--reason", help="one line, carried in the command and the audit log")
    p.add_argument("--out", metavar="PAYLOAD.json", help="where to write the proposal")
    p.add_argument("--envelope", metavar="ENVELOPE.json", help="the operators' signed "
                   "cancel_request envelope to apply")
    _secret_args(p)
    p.set_defaults(run=lazy("node.cli.wallet_run", "_pending_cancel"))

    p = verbs.add_parser("run-command", help="verify an operator command envelope and act",
                         description="Satellite side: check the envelope's operator "
                         "signatures (m-of-n from wallet.toml), time window and nonce, then "
                         "act: sign_transaction signs the payload within policy and queues it; "
                         "cancel_request cancels a time-locked request; set_policy, "
                         "set_operators, set_chain and set_satellite change the sealed "
                         "settings.")
    p.add_argument("file", metavar="ENVELOPE.json")
    _secret_args(p)
    p.set_defaults(run=lazy("node.cli.wallet_run", "_run_command"))


def _secret_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pin-file", help="file holding the HSM PIN (mode 600)")
    p.add_argument("--password-file", help="file holding the keystore password")
    p.add_argument("--json", action="store_true", help="machine-readable output")
