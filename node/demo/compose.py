"""The demo as containers: the compose file, and running it from the host.

:func:`compose_document` is the file (``compose.yaml`` at the checkout's root is the one for
the default options, written by ``orbital demo --write-compose compose.yaml``):

* ``anvil`` -- the devnet (the image's anvil binary, :func:`node.devnet.anvil_arguments`);
* ``ground`` -- ``orbital demo --compose-ground``: the operators' head signer, the contracts,
  the tasks, and every link emulator (:mod:`node.demo.placement`); it provisions each
  satellite's volume before launch (wallet, gossip key, ``node.toml``), flies the plan,
  writes the report into the ``ground-out`` volume and exits;
* ``sat1`` .. ``satN`` -- ``orbital node run --config /data/node.toml`` once the ground has
  written it, each on a network of its own (``internal``: no way out) whose only other
  member is the ground: the chain and the other satellites are reached only through the
  emulators.

The file keeps to what Docker Compose v2, Debian's ``docker-compose`` 1.29 and ``docker
stack deploy`` all accept: ``version: "3.8"``, images (build with ``docker build -t orbital .``
first: 1.29 cannot pass a build secret), ``depends_on`` as a list (a stack ignores it: the
satellites wait for their configuration themselves), ``deploy`` for the stack only (its
one-shot ground, names resolved to containers: :data:`DNS_ROUND_ROBIN`).

:func:`run_containers` is ``orbital demo --containers``: write the file for the options,
bring the project up, follow the ground's output (the same live status and report as the
local demo), copy ``report.json`` and ``timeline.png`` out, and take the project down.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from node.demo.placement import ANVIL_HOST, GROUND_HOST, NODE_RPC_PORT, service_name
from node.demo.run import DemoOptions
from node.devnet import anvil_arguments

IMAGE = "orbital"
CHAIN_NETWORK = "chain"
GROUND_OUT = "/out"
SATELLITES_DIR = "/sats"
WAIT_FOR_CONFIG = ("until [ -f /data/node.toml ]; do sleep 1; done; "
                   "exec orbital node run --config /data/node.toml")
"""A satellite's entry: its node starts once the ground has provisioned its volume."""
DROP_TO_ORBITAL = ('chown orbital:orbital /out "$$0"/* && export HOME=/data && '
                   'exec setpriv --reuid=orbital --regid=orbital --init-groups "$$@"')
"""The ground's entry, as root: give the freshly mounted volumes to the image's user, then
run the demo as that user (``$0`` is the satellites' directory; compose reads ``$$`` as
``$``)."""

DNS_ROUND_ROBIN = {"endpoint_mode": "dnsrr"}
"""A stack's service names resolve to their containers, not to a virtual IP: the swarm's
IPVS balancer is not in every kernel (on these machines the VIP timed out while the
container's own address answered), and one container a service needs none."""


def satellite_names(count: int) -> list[str]:
    """The scenario's names (:func:`node.demo.scenario.constellation`)."""
    return [f"SAT{k + 1}" for k in range(count)]


def compose_document(options: DemoOptions, image: str = IMAGE) -> dict[str, Any]:
    """The compose file that flies ``options`` (module docstring) with ``image``."""
    names = satellite_names(options.satellites)
    health = ["CMD", "python3", "-m", "node.health"]
    ground_command = [
        "orbital", "demo", "--compose-ground", "--out", GROUND_OUT,
        "--satellites", str(options.satellites), "--stations", str(options.stations),
        "--hours", f"{options.hours:g}", "--time-scale", f"{options.time_scale:g}",
        "--tasks", str(options.tasks), "--seed", str(options.seed),
        *(["--fault", options.fault] if options.fault else []),
        *(["--start", _iso(options.start)] if options.start is not None else [])]
    services: dict[str, Any] = {
        ANVIL_HOST: {
            "image": image,
            "entrypoint": ["anvil"],
            "command": anvil_arguments("0.0.0.0", 8545),
            "networks": [CHAIN_NETWORK],
            "healthcheck": {"test": [*health, "http://127.0.0.1:8545", "eth_chainId"],
                            "interval": "5s", "timeout": "5s", "retries": 5},
            "deploy": DNS_ROUND_ROBIN,
        },
        GROUND_HOST: {
            "image": image,
            "user": "0:0",
            "entrypoint": ["sh", "-c", DROP_TO_ORBITAL, SATELLITES_DIR],
            "command": ground_command,
            "init": True,
            "depends_on": [ANVIL_HOST],
            "networks": [CHAIN_NETWORK, *(service_name(n) for n in names)],
            "volumes": ["ground-out:/out",
                        *(f"{service_name(n)}:{SATELLITES_DIR}/{n}" for n in names)],
            "healthcheck": {"disable": True},
            "deploy": {**DNS_ROUND_ROBIN, "restart_policy": {"condition": "none"}},
        },
    }
    for name in names:
        services[service_name(name)] = {
            "image": image,
            "entrypoint": ["sh", "-c", WAIT_FOR_CONFIG],
            "init": True,
            "depends_on": [GROUND_HOST],
            "networks": [service_name(name)],
            "volumes": [f"{service_name(name)}:/data"],
            "healthcheck": {"test": [*health, f"http://127.0.0.1:{NODE_RPC_PORT}"],
                            "interval": "10s", "timeout": "6s", "retries": 3,
                            "start_period": "120s"},
            "deploy": DNS_ROUND_ROBIN,
        }
    return {
        "version": "3.8",
        "services": services,
        "networks": {CHAIN_NETWORK: {"internal": True},
                     **{service_name(n): {"internal": True} for n in names}},
        "volumes": {"ground-out": {}, **{service_name(n): {} for n in names}},
    }


def to_yaml(document: Any, indent: int = 0) -> str:
    """``document`` (dicts, lists, strings, numbers, booleans) as block YAML; every string
    double-quoted (JSON's escapes are YAML's), so no value is read as another type."""
    pad = "  " * indent
    lines = []
    if isinstance(document, dict):
        for key, value in document.items():
            flow = _flow(value)
            if flow is not None and len(pad) + len(key) + len(flow) < 98:
                lines.append(f"{pad}{key}: {flow}")
            elif isinstance(value, dict | list) and value:
                lines.append(f"{pad}{key}:\n{to_yaml(value, indent + 1)}")
            else:
                lines.append(f"{pad}{key}: {_scalar(value)}")
    else:
        for item in document:
            if isinstance(item, dict | list) and item:
                body = to_yaml(item, indent + 1)
                lines.append(f"{pad}- {body.lstrip()}")
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    return "\n".join(lines)


def _flow(value: Any) -> str | None:
    """A list of scalars on one line (``["a", 1]``: JSON's array is YAML's flow sequence)."""
    if isinstance(value, list) and value and not any(isinstance(v, dict | list) for v in value):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    return None


def _scalar(value: Any) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(str(value))


def _iso(when: float) -> str:
    """``--start``'s form of UNIX seconds (UTC, to the second)."""
    return datetime.datetime.fromtimestamp(when, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def compose_text(options: DemoOptions, image: str = IMAGE) -> str:
    """The file's text, with a header saying what wrote it and how to run it."""
    return (f"# orbital demo as containers: anvil, the ground station, {options.satellites} "
            "satellites.\n"
            "# Written by `orbital demo --write-compose FILE` (node/demo/compose.py); "
            "see README.md, \"Containers\".\n"
            "#   docker build -t orbital .     (or scripts/containers.sh build)\n"
            "#   docker compose up -d && docker compose logs -f ground\n"
            + to_yaml(compose_document(options, image)) + "\n")


class ContainersError(RuntimeError):
    """Docker, compose or the image is missing, or the project did not run."""


def compose_command() -> list[str]:
    """``$ORBITAL_COMPOSE`` (``docker compose`` or ``docker-compose``) if set, else
    ``docker compose`` (v2) when the Docker CLI has it, else ``docker-compose``."""
    chosen = os.environ.get("ORBITAL_COMPOSE")
    if chosen:
        return chosen.split()
    docker = shutil.which("docker")
    if docker is None:
        raise ContainersError("no docker command: apt-get install docker.io "
                              "(scripts/dockerd.sh start installs it and starts a daemon)")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True)
    if probe.returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy is None:
        raise ContainersError("neither `docker compose` (v2) nor docker-compose: "
                              "apt-get install docker-compose")
    return [legacy]


def _docker(*args: str, check: bool = True, capture: bool = True
            ) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["docker", *args], capture_output=capture, text=True)
    if check and done.returncode != 0:
        raise ContainersError(f"docker {' '.join(args[:3])}: "
                              f"{(done.stderr or done.stdout).strip()[-500:]}")
    return done


def check_docker(image: str) -> None:
    """A daemon answers and has ``image``; else a one-line way to get there."""
    if shutil.which("docker") is None:
        raise ContainersError("no docker command: scripts/dockerd.sh start installs Docker "
                              "and starts a private daemon")
    if _docker("version", "--format", "{{.Server.Version}}", check=False).returncode != 0:
        raise ContainersError("no Docker daemon answers (DOCKER_HOST is "
                              f"{os.environ.get('DOCKER_HOST', 'unset')}): "
                              "scripts/dockerd.sh start, then "
                              "eval \"$(scripts/dockerd.sh env)\"")
    if _docker("image", "inspect", image, check=False).returncode != 0:
        raise ContainersError(f"no image {image!r}: build it with scripts/containers.sh build "
                              "(or DOCKER_BUILDKIT=1 docker build -t orbital .)")


def run_containers(options: DemoOptions, out: Path, image: str = IMAGE,
                   project: str = "orbital-demo", echo: Any = sys.stdout) -> tuple[int, Path]:
    """``orbital demo --containers``: returns the ground's exit code and where
    ``report.json`` was copied (module docstring). The project is taken down (volumes
    too) whatever happened."""
    check_docker(image)
    out.mkdir(parents=True, exist_ok=True)
    compose_file = out / "compose.yaml"
    compose_file.write_text(compose_text(options, image))
    compose = [*compose_command(), "-p", project, "-f", str(compose_file)]
    _compose(compose, "down", "-v", "--remove-orphans")  # a leftover of an interrupted run
    try:
        _compose(compose, "up", "-d")
        ground = _compose(compose, "ps", "-q", GROUND_HOST).stdout.strip()
        if not ground:
            raise ContainersError("compose started no ground container")
        with subprocess.Popen(["docker", "logs", "-f", ground], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) as logs:
            assert logs.stdout is not None
            for line in logs.stdout:
                echo.write(line)
                echo.flush()
        code = int(_docker("wait", ground).stdout.strip() or 1)
        if code != 0:  # what the satellites said, to tell why
            for name in satellite_names(options.satellites):
                tail = _compose(compose, "logs", "--tail", "5", service_name(name),
                                check=False).stdout
                echo.write(tail)
        _docker("cp", f"{ground}:{GROUND_OUT}/.", str(out))
        return code, out / "report.json"
    finally:
        _compose(compose, "down", "-v", "--remove-orphans", check=False)


def _compose(compose: Sequence[str], *args: str, check: bool = True
             ) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*compose, *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        program = " ".join([Path(compose[0]).name, *compose[1:-4], *args])  # no -p, -f
        raise ContainersError(f"{program}: {(done.stderr or done.stdout).strip()[-800:]}")
    return done
