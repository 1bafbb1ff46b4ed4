# The orbital node: `orbital node run --config /data/node.toml` as a non-root user, its files
# (header store, outbox, wallet, SoftHSM2 tokens) on the /data volume.
#
#   DOCKER_BUILDKIT=1 docker build -t orbital .
#   docker run -v orbital-data:/data orbital            # /data/node.toml must exist
#
# Where Docker Hub cannot be reached (as on the project's CI machines) build the base with
# scripts/base-image.sh and pass it, with the host's CA bundle for pip (a build secret: it
# stays out of the image):
#
#   DOCKER_BUILDKIT=1 docker build --build-arg BASE=orbital-base:bookworm \
#       --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt -t orbital .
#
# The same image runs the devnet (`--entrypoint anvil`, when scripts/setup.sh installed it
# into tools/node_modules), the ground station and the satellites of compose.yaml.
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
ENV DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# C toolchain for fastecdsa (libp2p) and the headers of the base's own python3 (the slim
# image has them under /usr/local; a Debian base needs python3-dev and python3-venv).
RUN set -eu; \
    extra="$(python3 -c 'import os, sysconfig; print("" if os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")) else "python3-dev python3-venv")')"; \
    apt-get update -q; \
    apt-get install -y -q --no-install-recommends gcc libc6-dev libgmp-dev $extra; \
    rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/orbital
# The dependencies first, from pyproject.toml alone: a change to the code rebuilds only the
# project's own layer (seconds), not the venv (a minute).
COPY pyproject.toml README.md /src/
RUN --mount=type=secret,id=ca,required=false \
    set -eu; \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi; \
    python3 -c 'import tomllib; print("\n".join(tomllib.load(open("/src/pyproject.toml", "rb"))["project"]["dependencies"]))' > /tmp/requirements.txt; \
    /opt/orbital/bin/pip install -q -r /tmp/requirements.txt "setuptools>=77"
COPY node /src/node
COPY wallet /src/wallet
COPY sim_link /src/sim_link
COPY contracts /src/contracts
RUN /opt/orbital/bin/pip install -q --no-deps --no-build-isolation /src \
    && /opt/orbital/bin/orbital --help >/dev/null
COPY tools/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil /opt/orbital/bin/anvil

FROM ${BASE}
ENV DEBIAN_FRONTEND=noninteractive
RUN set -eu; \
    apt-get update -q; \
    apt-get install -y -q --no-install-recommends softhsm2 p11-kit p11-kit-modules libgmp10; \
    rm -rf /var/lib/apt/lists/*; \
    useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin orbital; \
    mkdir -p /data; chown orbital:orbital /data
COPY --from=build /opt/orbital /opt/orbital
# SoftHSM2 as non-root: its configuration and token directory on the volume (written at
# the first start of a PKCS#11 wallet: orbital wallet init, or the demo's provisioning).
ENV PATH=/opt/orbital/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    SOFTHSM2_CONF=/data/softhsm2.conf \
    ORBITAL_STATE_DIR=/data/state \
    ORBITAL_ANVIL=/opt/orbital/bin/anvil
USER orbital
WORKDIR /data
VOLUME /data
EXPOSE 8545
HEALTHCHECK --interval=10s --timeout=6s --start-period=60s --retries=3 \
    CMD ["python3", "-m", "node.health"]
ENTRYPOINT ["orbital", "node", "run", "--config"]
CMD ["/data/node.toml"]
