# The lottery server. Build from the repository root:
#   docker build -f docker/server.Dockerfile --build-arg BASE_IMAGE=... -t server:latest .
# Run it with lottery_gevent/config.ini mounted at /opt/lottery/lottery_gevent/config.ini
# (the path the server reads by default); without it the built-in defaults apply.
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

# A fixed, non-root uid. Its home is the working directory, where the server writes
# bets.csv and agencies-done.txt: in the container's own layer, so they survive a
# container restart and go away with `docker compose down` (one Compose run, one contest).
RUN groupadd --gid 10001 lottery \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/lottery --shell /usr/sbin/nologin lottery \
 && mkdir /var/lib/lottery && chown 10001:10001 /var/lib/lottery

COPY shared /opt/lottery/shared
COPY lottery_gevent /opt/lottery/lottery_gevent
# The Compose healthcheck runs it: connects to the address config.ini names, sends nothing.
COPY docker/healthcheck.py /opt/lottery/healthcheck.py
RUN python3 -m compileall -q /opt/lottery

USER 10001:10001
WORKDIR /var/lib/lottery
# Exec form: Python is PID 1 and gets SIGTERM from `docker stop` (it exits 0 after a clean stop).
ENTRYPOINT ["python3", "-m", "lottery_gevent"]
