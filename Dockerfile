# lb in a container. Works with the classic builder (no BuildKit needed) and
# offline. docs/docker.md explains every choice; in short:
#
#   online:   docker build -t lb .
#   offline:  python3 -m pip wheel -w wheels . 'setuptools>=68' wheel
#             docker build --network none --build-arg BASE_IMAGE=lb-base:bookworm -t lb .
#
# BASE_IMAGE  any Debian-like image with python3 (3.11+) and its venv module;
#             lb-base:bookworm is made locally by tests/docker/run.sh (debootstrap).
# WHEELS      a directory of the build context holding wheels. When it holds
#             any *.whl, pip installs from it alone (--no-index): lb's build
#             backend (setuptools>=68, wheel) and every runtime dependency must
#             be there. A wheel of lb itself there (a compiled build:
#             LB_COMPILE=1, README) is installed instead of the source. When it
#             holds none (the committed wheels/ has only a .keep file), pip uses
#             the package index.
# EXTRAS      optional extras of lb, e.g. "demo" (the demo application, aiohttp).
ARG BASE_IMAGE=python:3.11-slim

# ---------------------------------------------------------------- build stage
FROM ${BASE_IMAGE} AS build
ARG WHEELS=wheels
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
RUN python3 -m venv /opt/lb
# The directory always exists (wheels/.keep), so this COPY needs no BuildKit glob trick.
COPY ${WHEELS}/ /wheels/
COPY pyproject.toml README.md /src/
COPY lb /src/lb
ARG EXTRAS=""
RUN set -e; \
    target=/src; \
    if [ -n "$EXTRAS" ]; then target="/src[$EXTRAS]"; fi; \
    if ls /wheels/lb-*.whl >/dev/null 2>&1; then \
        target=lb; \
        if [ -n "$EXTRAS" ]; then target="lb[$EXTRAS]"; fi; \
        echo "installing $target offline from lb's wheel (a compiled build) in the wheels directory"; \
        /opt/lb/bin/pip install --no-index --find-links /wheels "$target"; \
    elif ls /wheels/*.whl >/dev/null 2>&1; then \
        echo "installing $target offline from the wheels directory"; \
        /opt/lb/bin/pip install --no-index --find-links /wheels "$target"; \
    else \
        echo "no wheels given: installing $target from the package index"; \
        /opt/lb/bin/pip install "$target"; \
    fi; \
    /opt/lb/bin/lb --version

# -------------------------------------------------------------- runtime stage
FROM ${BASE_IMAGE}
ARG BASE_IMAGE
# tini as PID 1: forwards signals to lb and reaps orphans. The offline base
# (lb-base:bookworm) has it; a base without it gets it from apt, and a build
# that can reach neither stops here with the reason rather than run lb as PID 1.
# The user lb (uid 10001) is written directly: minimal bases have no useradd.
RUN if ! command -v tini >/dev/null 2>&1; then \
        { apt-get update -qq \
          && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends tini \
          && rm -rf /var/lib/apt/lists/*; } \
        || { echo "tini is not in $BASE_IMAGE and apt cannot install it; use a base image with tini (docs/docker.md)" >&2; exit 1; }; \
    fi \
 && { getent group lb >/dev/null || echo 'lb:x:10001:' >>/etc/group; } \
 && { getent passwd lb >/dev/null || echo 'lb:x:10001:10001:lb:/nonexistent:/usr/sbin/nologin' >>/etc/passwd; } \
 && mkdir -p /etc/lb
COPY --from=build /opt/lb /opt/lb
ENV PATH=/opt/lb/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LB_CONFIG=/etc/lb/farm.toml
USER lb
# The client-facing port of examples/compose (the farm file decides). The
# link port (forward) is for the farm's private network only: never publish it.
EXPOSE 8080
# SIGTERM drains: no new sessions, existing flows go on until they end or
# limits.drain_timeout, then exit 0. Give `docker stop` (default 10 s) at least
# drain_timeout plus a few seconds: `docker run --stop-timeout`, compose's
# stop_grace_period (docs/docker.md).
STOPSIGNAL SIGTERM
# Health: `lb ctl health` asks the node's admin listener (nodes.<name>.admin of
# the farm file at $LB_CONFIG, node from $LB_NODE; keep it on 127.0.0.1 inside
# the container) for /healthz: healthy while the node serves, unhealthy while
# its application is down. A node without an admin listener is checked by a
# TCP connect to its link listener (forward) instead.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["lb", "ctl", "health"]
ENTRYPOINT ["tini", "--", "lb"]
CMD ["run", "--config", "/etc/lb/farm.toml"]
