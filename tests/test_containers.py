"""The image, the compose constellation and the swarm stack, on a real Docker daemon
(issue #19).

These need a Docker daemon: they run when one answers (``DOCKER_HOST``, the default socket,
or the private daemon of ``scripts/dockerd.sh start``) and are skipped with the reason
otherwise -- unless ``ORBITAL_CONTAINER_TESTS=require`` (``scripts/containers.sh test``),
which turns the skip into a failure. The image is built once per session with
``scripts/containers.sh build`` (a debootstrap base where python:3.11-slim cannot be pulled).

* one node in the image, in front of anvil in a second container of the same image: healthy
  by its HEALTHCHECK, non-root, answering web3.py with verified data; SoftHSM2 works in the
  image as its non-root user through p11-kit;
* ``orbital demo --containers`` with each compose implementation present (Docker Compose v2,
  Debian's docker-compose 1.29): the certified task lands on chain;
* a lying upstream in front of one satellite's ground link, in containers: caught, counted,
  never served;
* the same file deployed with ``docker stack deploy`` on a one-node swarm.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_demo import START

from node.chain.hashing import keccak256
from node.devnet import DEV_PRIVATE_KEYS, anvil_arguments
from node.tasks import model as qmodel
from node.tasks.task import Task, run

pytestmark = [pytest.mark.docker, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[1]
PRIVATE_SOCKET = Path("/var/tmp/orbital-docker/docker.sock")
IMAGE = "orbital"
SMALL = ["--satellites", "2", "--stations", "1", "--hours", "6", "--time-scale", "300",
         "--tasks", "1", "--seed", "7", "--start", START]


def _docker(*args: str, check: bool = True, timeout: float = 120
            ) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {done.stderr.strip()[-1500:]}")
    return done


def _no_daemon() -> str | None:
    """Why the tests cannot run here (None: a daemon answers)."""
    if shutil.which("docker") is None:
        return "no docker command (scripts/dockerd.sh start installs Docker)"
    if "DOCKER_HOST" not in os.environ and PRIVATE_SOCKET.exists():
        os.environ["DOCKER_HOST"] = f"unix://{PRIVATE_SOCKET}"
    probe = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"],
                           capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return (f"no Docker daemon answers (DOCKER_HOST={os.environ.get('DOCKER_HOST')}): "
                "run scripts/dockerd.sh start, or scripts/containers.sh test")
    return None


@pytest.fixture(scope="module")
def image() -> str:
    """The image, built (layers cached) by scripts/containers.sh build."""
    reason = _no_daemon()
    if reason is not None:
        if os.environ.get("ORBITAL_CONTAINER_TESTS") == "require":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    done = subprocess.run([str(REPO / "scripts" / "containers.sh"), "build"], cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return IMAGE


@pytest.fixture
def network(image: str) -> Iterator[str]:
    name = f"orbital-test-{os.getpid()}-{time.monotonic_ns()}"
    _docker("network", "create", name)
    containers: list[str] = []
    try:
        yield name
    finally:
        for cid in _docker("ps", "-aq", "--filter", f"network={name}", check=False
                           ).stdout.split():
            containers.append(cid)
        if containers:
            _docker("rm", "-f", "-v", *containers, check=False)
        _docker("network", "rm", name, check=False)


def _wait_healthy(container: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        state = _docker("inspect", "--format", "{{.State.Health.Status}}", container
                        ).stdout.strip()
        if state == "healthy":
            return state
        if _docker("inspect", "--format", "{{.State.Running}}", container
                   ).stdout.strip() != "true":
            break
        time.sleep(1)
    logs = _docker("logs", "--tail", "30", container, check=False)
    raise AssertionError(f"{container} is {state!r}, not healthy:\n{logs.stdout}{logs.stderr}")


def test_one_node_in_the_image_is_healthy_non_root_and_answers_web3(
        image: str, network: str, tmp_path: Path) -> None:
    from eth_account import Account
    from web3 import Web3

    anvil = _docker("run", "-d", "--name", f"{network}-anvil", "--network", network,
                    "--network-alias", "anvil", "-p", "127.0.0.1::8545", "--entrypoint",
                    "anvil", image, *anvil_arguments("0.0.0.0", 8545)).stdout.strip()
    config = tmp_path / "node.toml"
    config.write_text("""
[node]
chain_id = 31337
data_dir = "/data"
rpc = "0.0.0.0:8545"
refresh = "1s"
chain = "anvil"

[upstreams]
urls = ["http://anvil:8545"]

[trust]
mode = "quorum"
""")
    config.chmod(0o644)
    node = _docker("run", "-d", "--name", f"{network}-node", "--network", network,
                   "-v", f"{config}:/etc/orbital/node.toml:ro", "-p", "127.0.0.1::8545",
                   image, "/etc/orbital/node.toml").stdout.strip()
    assert _wait_healthy(node) == "healthy"
    health = json.loads(_docker("inspect", "--format", "{{json .State.Health}}", node).stdout)
    assert health["Log"][-1]["Output"].startswith("healthy: serving (quorum)")
    assert _docker("exec", node, "id", "-u").stdout.strip() == "10001"  # not root
    port = _docker("port", node, "8545/tcp").stdout.strip().rsplit(":", 1)[1]
    w3 = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{port}", request_kwargs={"timeout": 30}))
    assert w3.eth.chain_id == 31337
    # a transfer on the devnet (anvil's genesis state root does not match its own proofs:
    # the node refuses it, so the test reads at a later block)
    devnet = f"http://127.0.0.1:{_docker('port', anvil, '8545/tcp').stdout.split(':')[-1]}"
    chain = Web3(Web3.HTTPProvider(devnet.strip()))
    sender, receiver = (Account.from_key(k) for k in DEV_PRIVATE_KEYS[:2])
    signed = sender.sign_transaction({"to": receiver.address, "value": 12345, "gas": 21000,
                                      "gasPrice": chain.eth.gas_price, "nonce": 0,
                                      "chainId": 31337})
    mined = chain.eth.wait_for_transaction_receipt(
        chain.eth.send_raw_transaction(signed.raw_transaction))
    deadline = time.monotonic() + 60
    while w3.eth.block_number < mined["blockNumber"] and time.monotonic() < deadline:
        time.sleep(0.5)
    expected = chain.eth.get_balance(receiver.address)
    assert w3.eth.get_balance(receiver.address) == expected  # proven against its head
    receipt = w3.eth.get_transaction_receipt(mined["transactionHash"])  # verified receipt
    assert receipt["blockHash"] == mined["blockHash"] and receipt["status"] == 1
    status = w3.provider.make_request("orbital_status", [])["result"]
    assert status["trustMode"] == "quorum" and status["head"]["source"] is not None
    # the node's files are on the volume, owned by the image's user
    listing = _docker("exec", node, "ls", "-n", "/data").stdout
    assert "headers.sqlite" in listing and " 10001 " in listing


def test_softhsm2_works_in_the_image_as_its_user_through_p11_kit(image: str) -> None:
    script = (
        "set -e; mkdir -p /data/tokens; "
        "printf 'directories.tokendir = /data/tokens\\nobjectstore.backend = file\\n' "
        "> /data/softhsm2.conf; "
        "python3 -c 'from pathlib import Path; "
        "from wallet.keys import pkcs11; from wallet.keys.pin import PinAttempts; "
        "pkcs11.init_token(None, \"sat\", \"so-123456\", \"pin-123456\"); "
        "t = pkcs11.Pkcs11Token(\"sat\", \"pin-123456\", "
        "attempts=PinAttempts.in_state_dir(Path(\"/data/state\"))); "
        "print(pkcs11.default_module(), t.generate_key().hex())'")
    done = _docker("run", "--rm", "--entrypoint", "sh", image, "-c", script)
    module, address = done.stdout.split()
    assert module.endswith("p11-kit-proxy.so") and len(address) == 40


def _compose_implementations() -> list[object]:
    found = []
    for name, command in (("v2", ["docker", "compose"]), ("1.29", ["docker-compose"])):
        ok = shutil.which(command[0]) is not None and subprocess.run(
            [*command, "version"], capture_output=True).returncode == 0
        found.append(pytest.param(" ".join(command), id=name, marks=() if ok else
                                  pytest.mark.skip(reason=f"{' '.join(command)} not here")))
    return found


def _assert_landed_as_the_model_says(report: dict[str, object]) -> None:
    assert report["posted"] == report["landed"] == 1, report["tasks"]
    model = qmodel.load()
    for task in report["tasks"]:  # type: ignore[attr-defined]
        data = bytes.fromhex(task["input"][2:])
        expected = run(Task.from_posted(bytes.fromhex(task["task"][2:]), model.model_hash,
                                        keccak256(data), data), model).output_hash
        assert task["certifiedOutput"] == "0x" + expected.hex()


@pytest.mark.parametrize("compose", _compose_implementations())
def test_the_compose_constellation_lands_its_certified_task(
        image: str, compose: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "node.cli.main", "demo", "--containers", *SMALL, "--out",
         str(out)], cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "ORBITAL_COMPOSE": compose})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    _assert_landed_as_the_model_says(report)
    assert report["options"]["placement"] == "compose"
    for name, node in report["nodes"].items():
        assert node["head"]["source"] == "ground", name  # 2-of-3 operators, via the uplink
    assert (out / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    leftovers = _docker("ps", "-aq", "--filter", "label=com.docker.compose.project=orbital-demo")
    assert leftovers.stdout.strip() == ""  # taken down


def test_a_lying_upstream_in_front_of_one_satellite_container_is_caught_not_served(
        image: str, tmp_path: Path) -> None:
    """The ``liar`` fault in containers: the ground's link to SAT1 leads to an upstream that
    tampers with answers. SAT1's node counts the lies its verification caught (nothing of
    them is served), the others see none, and the task still lands with the model's output."""
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "node.cli.main", "demo", "--containers", "--satellites", "3",
         "--stations", "2", "--hours", "5.5", "--time-scale", "300", "--tasks", "1", "--seed",
         "5", "--fault", "liar", "--start", START, "--out", str(out)], cwd=REPO,
        capture_output=True,
        text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    _assert_landed_as_the_model_says(report)
    lies = report["fault"]["lies"]
    assert lies["SAT1"] and sum(lies["SAT1"].values()) > 0, lies
    assert not (lies["SAT2"] or {}) and not (lies["SAT3"] or {}), lies


def test_the_compose_file_deploys_as_a_swarm_stack(image: str, tmp_path: Path) -> None:
    stack = f"orbital-test{os.getpid()}"
    compose_file = tmp_path / "stack.yaml"
    subprocess.run([sys.executable, "-m", "node.cli.main", "demo", "--write-compose",
                    str(compose_file), *SMALL], cwd=REPO, check=True, capture_output=True)
    joined = _docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip() == "active"
    if not joined:
        _docker("swarm", "init", "--advertise-addr", "127.0.0.1")
    try:
        _docker("stack", "deploy", "-c", str(compose_file), stack)
        deadline = time.monotonic() + 600
        state = ""
        while time.monotonic() < deadline:
            state = _docker("service", "ps", f"{stack}_ground", "--format",
                            "{{.CurrentState}}").stdout
            if state.startswith(("Complete", "Failed", "Rejected")):
                break
            time.sleep(3)
        logs = _docker("service", "logs", "--raw", f"{stack}_ground").stdout
        assert state.startswith("Complete"), f"ground: {state}\n{logs[-3000:]}"
        assert "tasks: 1 posted, 1 landed on chain" in logs, logs[-3000:]
    finally:
        _docker("stack", "rm", stack, check=False)
        deadline = time.monotonic() + 60  # the stack's containers go, then its volumes can
        label = f"label=com.docker.stack.namespace={stack}"
        while time.monotonic() < deadline and _docker("ps", "-aq", "--filter", label
                                                      ).stdout.strip():
            time.sleep(1)
        volumes = _docker("volume", "ls", "-q", "--filter", label).stdout.split()
        if volumes:
            _docker("volume", "rm", *volumes, check=False)
        if not joined:
            _docker("swarm", "leave", "--force", check=False)
