"""Compile the Solidity sources with the pinned solcjs and write (or check) the artifacts.

The compiler is npm ``solc`` at exactly :data:`SOLC_VERSION` (solcjs, WebAssembly), installed
under ``tools/node_modules`` by ``scripts/setup.sh --test``; nothing is downloaded at run time.
Python drives it through standard JSON: one ``node`` subprocess loads solcjs, checks its version
and compiles both sources in one go.

Reproducibility, byte for byte, on every machine:

* source unit names are bare file names (``"TaskAttestations.sol"``), so no absolute path
  reaches the metadata;
* ``metadata.bytecodeHash`` is ``"none"``: the CBOR trailer carries only the compiler version,
  not a hash of the metadata (comments and whitespace then do not change bytecode; the
  artifact's ``sourceHash`` still pins the exact source);
* ``evmVersion`` is pinned to ``prague`` (solcjs 0.8.37 defaults to osaka, which py-evm cannot
  run), the optimizer to 200 runs, the legacy pipeline (``viaIR`` false: the hot loops are
  already hand-written and the legacy pipeline compiles ~3x faster in wasm);
* artifacts are JSON with sorted keys, two-space indent and a trailing newline.

``build()`` writes ``contracts/artifacts/<Contract>.json``; ``build(check=True)`` compiles in
memory and raises :class:`ArtifactMismatchError` if that differs from the committed files.
The CLI's ``orbital contracts build [--check]`` calls :func:`build`; ``python -m
contracts.build [--check]`` works too.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
SOURCE_DIR = PACKAGE_DIR / "src"
ARTIFACT_DIR = PACKAGE_DIR / "artifacts"
SOLC_JS_DIR = REPO_ROOT / "tools" / "node_modules" / "solc"

SOLC_VERSION = "0.8.37"
"""The only compiler version accepted (npm ``solc``, pinned in tools/package.json)."""

SOURCES: tuple[str, ...] = ("SatelliteRegistry.sol", "TaskAttestations.sol")
"""Source units compiled, by file name under ``contracts/src`` (also their unit names)."""

SETTINGS: dict[str, Any] = {
    "evmVersion": "prague",
    "metadata": {"bytecodeHash": "none"},
    "optimizer": {"enabled": True, "runs": 200},
    "viaIR": False,
}
"""Compiler settings recorded in every artifact (outputSelection is added when compiling)."""

OUTPUT_SELECTION = {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}}

NODE_ENV = "ORBITAL_NODE"
"""Environment variable naming the ``node`` executable (default: ``node`` on PATH)."""
SOLC_ENV = "ORBITAL_SOLCJS"
"""Environment variable naming the solcjs package directory (default: tools/node_modules/solc)."""

TIMEOUT = 120.0

# Loads solcjs from argv[1], prints {"version": ..., "output": <standard JSON output>}.
_DRIVER = r"""
const solc = require(process.argv[1]);
let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', () => {
  const version = solc.version();
  const want = process.argv[2];
  if (!version.startsWith(want + '+')) {
    process.stdout.write(JSON.stringify({version: version, output: null}));
    return;
  }
  process.stdout.write(JSON.stringify({version: version, output: JSON.parse(solc.compile(input))}));
});
"""


class ContractsBuildError(RuntimeError):
    """Building the contracts failed; the message says why and what to do."""


class SolcNotFoundError(ContractsBuildError):
    """node or the pinned solcjs is not installed."""


class SolcVersionError(ContractsBuildError):
    """The installed solcjs is not :data:`SOLC_VERSION`."""


class CompileError(ContractsBuildError):
    """solc reported errors."""


class ArtifactMismatchError(ContractsBuildError):
    """The committed artifacts differ from a fresh compilation."""


def find_node() -> str:
    """The ``node`` executable (``$ORBITAL_NODE`` or PATH)."""
    node = os.environ.get(NODE_ENV) or shutil.which("node")
    if not node:
        raise SolcNotFoundError(
            f"node not found on PATH: install Node.js >= 18 or set {NODE_ENV}")
    return node


def find_solcjs() -> Path:
    """The solcjs package directory, checked to exist and to be :data:`SOLC_VERSION`."""
    directory = Path(os.environ.get(SOLC_ENV) or SOLC_JS_DIR)
    package_json = directory / "package.json"
    if not package_json.is_file():
        raise SolcNotFoundError(
            f"solcjs not found at {directory}: run `scripts/setup.sh --test` from the "
            f"repository root (installs npm solc {SOLC_VERSION}), or set {SOLC_ENV}")
    version = json.loads(package_json.read_text()).get("version")
    check_version(str(version))
    return directory


def check_version(version: str) -> None:
    """Raise :class:`SolcVersionError` unless ``version`` (``0.8.37`` or
    ``0.8.37+commit...``) is the pinned :data:`SOLC_VERSION`."""
    if version.split("+", 1)[0] != SOLC_VERSION:
        raise SolcVersionError(
            f"solc {version} found, but the artifacts are built with exactly {SOLC_VERSION}: "
            f"run `scripts/setup.sh --test` to install the pinned npm solc")


def standard_json_input(source_dir: Path = SOURCE_DIR) -> dict[str, Any]:
    """The standard JSON input compiling :data:`SOURCES` with :data:`SETTINGS`."""
    sources = {
        name: {"content": (source_dir / name).read_bytes().decode("utf-8")} for name in SOURCES
    }
    return {
        "language": "Solidity",
        "sources": sources,
        "settings": {**SETTINGS, "outputSelection": OUTPUT_SELECTION},
    }


def run_solc(input_json: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Compile ``input_json`` with the pinned solcjs; return (long version, output)."""
    node = find_node()
    solcjs = find_solcjs()
    try:
        completed = subprocess.run(
            [node, "-e", _DRIVER, str(solcjs), SOLC_VERSION],
            input=json.dumps(input_json).encode(),
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise CompileError(f"solcjs did not finish within {TIMEOUT:.0f} s") from exc
    stdout = completed.stdout.decode(errors="replace")
    # solcjs may print diagnostics (e.g. about SMT solvers) before the JSON.
    start = stdout.find("{")
    if completed.returncode != 0 or start < 0:
        detail = (completed.stderr.decode(errors="replace") or stdout).strip()
        raise CompileError(f"solcjs failed (exit code {completed.returncode}): {detail}")
    reply = json.loads(stdout[start:])
    version = str(reply["version"])
    check_version(version)
    output = reply["output"]
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        messages = "\n".join(e.get("formattedMessage", str(e)) for e in errors)
        raise CompileError(f"solc reported errors:\n{messages}")
    return version, output


def source_hash(path: Path) -> str:
    """sha256 of a source file's bytes, hex."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def compile_artifacts(source_dir: Path = SOURCE_DIR) -> dict[str, dict[str, Any]]:
    """Compile the sources; return ``{contract name: artifact}`` (deployable contracts only)."""
    version, output = run_solc(standard_json_input(source_dir))
    artifacts: dict[str, dict[str, Any]] = {}
    for unit in SOURCES:
        for name, contract in sorted(output["contracts"].get(unit, {}).items()):
            bytecode = contract["evm"]["bytecode"]["object"]
            if not bytecode:  # interfaces and abstract contracts
                continue
            artifacts[name] = {
                "contractName": name,
                "abi": contract["abi"],
                "bytecode": "0x" + bytecode,
                "deployedBytecode": "0x" + contract["evm"]["deployedBytecode"]["object"],
                "compiler": {"name": "solc", "version": version, "settings": SETTINGS},
                "source": f"contracts/src/{unit}",
                "sourceUnit": unit,
                "sourceHash": source_hash(source_dir / unit),
            }
    return artifacts


def render(artifact: dict[str, Any]) -> str:
    """An artifact's file content: sorted keys, indent 2, trailing newline."""
    return json.dumps(artifact, indent=2, sort_keys=True) + "\n"


def check_artifacts(
    artifacts: dict[str, dict[str, Any]], artifact_dir: Path = ARTIFACT_DIR
) -> None:
    """Raise :class:`ArtifactMismatchError` unless every file in ``artifact_dir`` is
    byte-identical to :func:`render` of ``artifacts``."""
    problems = []
    for name, artifact in artifacts.items():
        path = artifact_dir / f"{name}.json"
        if not path.is_file():
            problems.append(f"{path} is missing")
        elif path.read_bytes() != render(artifact).encode():
            problems.append(f"{path} differs from a fresh compilation")
    if problems:
        raise ArtifactMismatchError(
            "; ".join(problems) + ": run `orbital contracts build` and commit the artifacts")


def build(check: bool = False, artifact_dir: Path = ARTIFACT_DIR) -> dict[str, dict[str, Any]]:
    """Compile both contracts. Write ``<artifact_dir>/<Contract>.json`` or, with ``check``,
    raise :class:`ArtifactMismatchError` if the files there are not byte-identical to a fresh
    compilation. Returns the artifacts by contract name."""
    artifacts = compile_artifacts()
    if check:
        check_artifacts(artifacts, artifact_dir)
        return artifacts
    artifact_dir.mkdir(parents=True, exist_ok=True)
    for name, artifact in artifacts.items():
        (artifact_dir / f"{name}.json").write_bytes(render(artifact).encode())
    return artifacts


def load_artifact(name: str, artifact_dir: Path = ARTIFACT_DIR) -> dict[str, Any]:
    """A committed artifact (``"SatelliteRegistry"`` or ``"TaskAttestations"``)."""
    path = artifact_dir / f"{name}.json"
    if not path.is_file():
        raise ContractsBuildError(f"no artifact {path}: run `orbital contracts build`")
    artifact: dict[str, Any] = json.loads(path.read_text())
    return artifact


def main(argv: list[str] | None = None) -> int:
    """``python -m contracts.build [--check]``: one line per artifact, errors on stderr."""
    args = sys.argv[1:] if argv is None else argv
    check = "--check" in args
    try:
        artifacts = build(check=check)
    except ContractsBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, artifact in artifacts.items():
        size = (len(artifact["deployedBytecode"]) - 2) // 2
        state = "matches" if check else "written"
        print(f"{name}: {size} bytes deployed, {state} ({ARTIFACT_DIR / (name + '.json')})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
