"""``orbital contracts``: compile and deploy the attestation contracts.

``build`` re-compiles the Solidity sources with the pinned solc (npm ``solc``) into
``contracts/artifacts``; ``build --check`` only verifies that the committed artifacts are
what the sources compile to. ``deploy`` deploys ``SatelliteRegistry`` and
``TaskAttestations`` to a JSON-RPC endpoint with transactions signed locally.

The deployer's private key is never taken from the command line (it would be visible to
every user in the process list and in shell history): give ``--key-file`` (a file holding
the hex key, readable by its owner only) or set ``ORBITAL_DEPLOY_KEY``.

Exit codes: 0 ok, 1 failed (artifacts out of date, no solc, RPC or transaction failure),
2 malformed input.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

from contracts.errors import ContractsError, MalformedError
from node.cli.argtypes import positive

KEY_ENV = "ORBITAL_DEPLOY_KEY"
JSON_HELP = "print one JSON object on stdout instead of text (errors too)"


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``contracts`` and its subcommands."""
    parser = commands.add_parser(
        "contracts", help="compile and deploy the attestation contracts",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    build = verbs.add_parser(
        "build", help="compile the Solidity sources into contracts/artifacts",
        description="Compile contracts/src with the pinned solc (npm `solc`, from "
                    "tools/node_modules) into contracts/artifacts/<Name>.json. With --check "
                    "write nothing and fail if the artifacts differ from a fresh compile.")
    build.add_argument("--check", action="store_true",
                       help="verify the committed artifacts instead of writing them")
    build.add_argument("--json", action="store_true", help=JSON_HELP)
    build.set_defaults(run=_run_build)

    deploy = verbs.add_parser(
        "deploy", help="deploy SatelliteRegistry and TaskAttestations",
        description="Deploy SatelliteRegistry, then TaskAttestations(registry), then add each "
                    "--operator to the registry. Transactions are signed locally (EIP-1559 "
                    "where the chain has a base fee) and sent with eth_sendRawTransaction. "
                    f"The key comes from --key-file or ${KEY_ENV}, never from argv.")
    deploy.add_argument("--rpc", required=True, metavar="URL",
                        help="JSON-RPC endpoint (http:// or https://)")
    deploy.add_argument("--key-file", metavar="FILE",
                        help=f"file holding the deployer's hex private key, mode 600 "
                             f"(default: ${KEY_ENV})")
    deploy.add_argument("--out", metavar="FILE",
                        help="write the deployment (chainId, addresses, block, deployer) here")
    deploy.add_argument("--operator", action="append", default=[], metavar="ADDR",
                        help="address allowed to register satellites (repeatable)")
    deploy.add_argument("--timeout", type=positive, default=60.0, metavar="S",
                        help="seconds to wait for each receipt (default 60)")
    deploy.add_argument("--json", action="store_true", help=JSON_HELP)
    deploy.set_defaults(run=_run_deploy)


def _fail(args: argparse.Namespace, message: str, code: int) -> int:
    if getattr(args, "json", False):
        print(json.dumps({"ok": False, "error": message}))
    print(f"orbital: {message}", file=sys.stderr)
    return code


def _run_build(args: argparse.Namespace) -> int:
    try:
        from contracts import build as build_module
    except ImportError as exc:
        return _fail(args, f"contracts.build is unavailable: {exc}", 1)
    try:
        result = build_module.build(check=args.check)
    except (ContractsError, OSError, RuntimeError, ValueError) as exc:
        code = getattr(exc, "exit_code", 1)
        return _fail(args, str(exc).splitlines()[0] if str(exc) else type(exc).__name__, code)
    built = _built_names(result)
    if args.json:
        print(json.dumps({"ok": True, "check": args.check, "contracts": built,
                          "artifacts": str(build_module.ARTIFACT_DIR)}))
    elif args.check or not built:
        print("artifacts up to date" + (f" ({', '.join(built)})" if built else ""))
    else:
        for name in built:
            size = _deployed_size(result, name)
            where = Path(build_module.ARTIFACT_DIR) / f"{name}.json"
            print(f"built {name}" + (f" ({size} bytes deployed)" if size else "") + f": {where}")
    return 0


def _deployed_size(result: Any, name: str) -> int | None:
    try:
        return (len(result[name]["deployedBytecode"]) - 2) // 2
    except (KeyError, TypeError, IndexError):
        return None


def _built_names(result: Any) -> list[str]:
    """What ``build()`` reports as written, as strings (it may return paths, names, a
    mapping or nothing)."""
    if result is None or isinstance(result, bool):
        return []
    if isinstance(result, (str, Path)):
        return [str(result)]
    if isinstance(result, dict):
        return [str(key) for key in result]
    try:
        return [str(item) for item in result]
    except TypeError:
        return [str(result)]


def read_key(key_file: str | None, environ: dict[str, str] | None = None) -> str:
    """The deployer key from ``key_file`` (refused if group/other may read it) or
    ``$ORBITAL_DEPLOY_KEY``."""
    environ = dict(os.environ) if environ is None else environ
    if key_file is not None:
        path = Path(key_file)
        try:
            mode = path.stat().st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise MalformedError(
                    f"key file {key_file} is accessible by others (mode "
                    f"{stat.S_IMODE(mode):03o}): chmod 600 {key_file}")
            text = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise MalformedError(f"cannot read key file {key_file}: {exc.strerror}") from None
        source = f"key file {key_file}"
    elif environ.get(KEY_ENV):
        text, source = environ[KEY_ENV].strip(), f"${KEY_ENV}"
    else:
        raise MalformedError(f"no deployer key: give --key-file FILE or set {KEY_ENV}")
    body = text.removeprefix("0x").removeprefix("0X")
    if len(body) != 64 or any(c not in "0123456789abcdefABCDEF" for c in body):
        raise MalformedError(f"{source} does not hold a 32-byte hex private key")
    return "0x" + body


def _run_deploy(args: argparse.Namespace) -> int:
    from eth_utils import is_address
    from web3 import Web3
    from web3.exceptions import Web3Exception

    from contracts.deploy import as_account, deploy

    if not args.rpc.startswith(("http://", "https://")):
        return _fail(args, f"--rpc {args.rpc!r}: expected an http:// or https:// URL", 2)
    for operator in args.operator:
        if not is_address(operator):
            return _fail(args, f"--operator {operator!r} is not an address", 2)
    try:
        account = as_account(read_key(args.key_file))
        w3 = Web3(Web3.HTTPProvider(args.rpc, request_kwargs={"timeout": args.timeout}))
        try:
            w3.eth.chain_id  # noqa: B018 - fail early, with one line, if nothing answers
        except (OSError, Web3Exception) as exc:
            return _fail(args, f"no JSON-RPC answer from {args.rpc}: {_brief(exc)}", 1)
        deployment = deploy(w3, account, operators=args.operator, out=args.out,
                            timeout=args.timeout)
    except ContractsError as exc:
        return _fail(args, str(exc), exc.exit_code)
    except (OSError, Web3Exception, ValueError) as exc:
        return _fail(args, f"deployment failed: {_brief(exc)}", 1)
    if args.json:
        print(json.dumps({"ok": True, **deployment.to_json(),
                          **({"out": args.out} if args.out else {})}))
    else:
        print(f"chain id      {deployment.chain_id}")
        print(f"registry      {deployment.registry}")
        print(f"attestations  {deployment.attestations}")
        print(f"deployed at   block {deployment.block}")
        print(f"deployer      {deployment.deployer}")
        if args.out:
            print(f"written to    {args.out}")
    return 0


def _brief(exc: BaseException) -> str:
    first = exc.args[0] if exc.args else None
    if isinstance(first, dict) and "message" in first:  # a JSON-RPC error object
        return f"{type(exc).__name__}: {first['message']}"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    """Run ``contracts`` alone (``python -m node.cli.contracts VERB ...``)."""
    parser = argparse.ArgumentParser(prog="orbital")
    register(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(["contracts", *(sys.argv[1:] if argv is None else argv)])
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
