# An agency client. Build from the repository root:
#   docker build -f docker/client.Dockerfile --build-arg BASE_IMAGE=... -t client:latest .
# Run it with client_gevent/config.yaml mounted at /opt/lottery/client_gevent/config.yaml,
# CLI_ID set and, in lottery mode, the agency's CSV mounted (CLI_BETS_FILE names it).
# Classic-builder syntax only (the sandbox's engine has no BuildKit): no COPY --chmod, no heredocs.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PYTHONUNBUFFERED=1 \
    PYTHONUTF8=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONPATH=/opt/lottery \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Pinned runtime requirements only (gevent, greenlet, PyYAML; cryptography for tools/credentials.py,
# which generar-compose.sh may run in the client image); the test tools never enter an image.
COPY requirements.txt /tmp/requirements.txt
RUN python3 -m pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt

# The client writes nothing; it only needs read access to its config and data mounts.
RUN groupadd --gid 10001 lottery \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin lottery

COPY shared /opt/lottery/shared
COPY client_gevent /opt/lottery/client_gevent
RUN python3 -m compileall -q /opt/lottery

USER 10001:10001
WORKDIR /opt/lottery
# Exec form: Python is PID 1 and gets SIGTERM from `docker stop` (it exits 0 after a clean stop).
ENTRYPOINT ["python3", "-m", "client_gevent"]
