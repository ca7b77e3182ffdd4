# Lotería Nacional: build, run and test. `make help` lists the targets.
#
# Variables (override on the command line: make docker-compose-up COMPOSE_FILE=x.yaml):
#   BASE_IMAGE    the images' base: local/python-base:3.11 when that image exists
#                 (docker-sandbox.sh builds it with requirements.txt preinstalled), else python:3.11-slim
#   COMPOSE_FILE  the compose file the docker-compose-* targets use
#   AGENCIES      how many agencies `make run` starts, and agency files `make data` makes sure of
#   PYTHON        the interpreter for deps, test, run, bench and lint. Default: .venv/bin/python, a
#                 virtual environment made on demand from BOOTSTRAP_PYTHON (python3), with
#                 requirements-dev.txt installed: works where PEP 668 forbids system-wide pip installs
#   PORT          the port `make run` serves on (127.0.0.1; 0: any free port)
#   NEW_CONTEST   1 (default): `make run` archives the last contest and starts a new one; 0 resumes it
#   FORCE         1: `make exercise-branches` replaces existing ej1..ej8 branches
# REQUIRE_DOCKER=1 (as in CI) makes the Docker end-to-end tests fail, not skip, without an engine.

VENV ?= .venv
BOOTSTRAP_PYTHON ?= python3
# PYTHON unset or empty: our own virtual environment (the `python-env` target makes it).
ifeq ($(strip $(PYTHON)),)
override PYTHON := $(VENV)/bin/python
OWN_VENV := 1
endif
# `make data` needs only the standard library: the bootstrap interpreter will do.
DATA_PYTHON := $(if $(OWN_VENV),$(BOOTSTRAP_PYTHON),$(PYTHON))
PORT ?= 12345
NEW_CONTEST ?= 1
COMPOSE_FILE ?= docker-compose-dev.yaml
AGENCIES ?= 5
SANDBOX ?= ../shared/tools/docker-sandbox.sh
SHARED_DATASET ?= ../shared/data/dataset.zip
DATASET := .data/dataset.zip
LOCAL_BASE_IMAGE := local/python-base:3.11
# Recursive (=): evaluated when a recipe uses it, so after docker-ready has provided the base.
BASE_IMAGE ?= $(shell docker image inspect $(LOCAL_BASE_IMAGE) >/dev/null 2>&1 && echo $(LOCAL_BASE_IMAGE) || echo python:3.11-slim)

ifdef REQUIRE_DOCKER
export REQUIRE_DOCKER
endif

.DEFAULT_GOAL := help

help: ## list the targets
	@echo "usage: make TARGET [VARIABLE=value ...]"
	@awk 'BEGIN { FS = ":.*## " } /^[a-zA-Z_-]+:.*## / { printf "  %-22s %s\n", $$1, $$2 }' $(firstword $(MAKEFILE_LIST))
.PHONY: help

# The virtual environment: made, and filled from the requirements, when missing or older
# than them. The .pth file puts the repository on its path, so that
# `.venv/bin/python -m lottery_gevent` works from any directory.
$(VENV)/.installed: requirements.txt requirements-dev.txt
	@$(BOOTSTRAP_PYTHON) -m venv $(VENV) || { \
		echo "python-env: '$(BOOTSTRAP_PYTHON) -m venv $(VENV)' failed; on Debian/Ubuntu: apt-get install python3-venv" >&2; \
		exit 1; }
	$(VENV)/bin/python -m pip install -q -r requirements-dev.txt
	@$(VENV)/bin/python -c 'import os, sysconfig; open(os.path.join(sysconfig.get_path("purelib"), "loteria-nacional.pth"), "w").write(os.getcwd() + "\n")'
	@touch $@

python-env: $(if $(OWN_VENV),$(VENV)/.installed) ## make sure PYTHON is ready (.venv made on demand; nothing when PYTHON is given)
.PHONY: python-env

deps: python-env ## install the test tools (requirements-dev.txt, which includes requirements.txt)
	$(if $(OWN_VENV),,$(PYTHON) -m pip install -r requirements-dev.txt)
.PHONY: deps

test: ## the test command: deps, a Docker engine when one can be provided, then every test
	$(MAKE) deps
	$(MAKE) docker-ready || echo "make test: no Docker engine; the Docker tests skip (and fail with REQUIRE_DOCKER=1)" >&2
	$(PYTHON) -m pytest
.PHONY: test

run: python-env data ## one contest without Docker: the server and AGENCIES agencies as local processes, then a table
	$(PYTHON) -m tools.run_local --agencies $(AGENCIES) --data .data --port $(PORT) $(if $(filter 0,$(NEW_CONTEST)),--keep-contest)
.PHONY: run

bench: python-env ## run the benchmark suite and rewrite BENCHMARKS.md (takes a few minutes)
	$(PYTHON) -m bench
.PHONY: bench

lint: python-env ## ruff and mypy --strict over every Python file (product, tools, bench, tests, docker/)
	$(PYTHON) -m ruff check .
	$(PYTHON) -m mypy
.PHONY: lint

data: ## make sure .data/ has agency-1..AGENCIES.csv: the course's dataset.zip if any, else synthetic files
	@mkdir -p .data
	@if [ -f $(DATASET) ]; then \
		echo "data: unzipping $(DATASET)"; \
		$(DATA_PYTHON) -m zipfile -e $(DATASET) .data/; \
	elif [ -f $(SHARED_DATASET) ]; then \
		echo "data: copying $(SHARED_DATASET) to $(DATASET) and unzipping it"; \
		cp $(SHARED_DATASET) $(DATASET) && $(DATA_PYTHON) -m zipfile -e $(DATASET) .data/; \
	else \
		missing=0; k=1; \
		while [ $$k -le $(AGENCIES) ]; do [ -f .data/agency-$$k.csv ] || missing=1; k=$$((k + 1)); done; \
		if [ $$missing -eq 0 ]; then \
			echo "data: .data/ already has agency-1..$(AGENCIES).csv"; \
		else \
			echo "data: no dataset.zip; generating synthetic agency files (known winners):"; \
			$(DATA_PYTHON) -m tools.generate_agencies .data --agencies $(AGENCIES); \
		fi; \
	fi
	@k=1; while [ $$k -le $(AGENCIES) ]; do \
		[ -f .data/agency-$$k.csv ] || { echo "data: .data/agency-$$k.csv is missing (the dataset has 5 agencies)" >&2; exit 1; }; \
		k=$$((k + 1)); \
	done
	@# The containers run as a non-root user: the mounts must be world-readable.
	@chmod a+rX .data && chmod a+r .data/agency-*.csv lottery_gevent/config.ini client_gevent/config.yaml
.PHONY: data

docker-ready: ## make sure a Docker engine answers (starts one with ../shared/tools/docker-sandbox.sh if there)
	@if docker info >/dev/null 2>&1; then \
		if [ -x $(SANDBOX) ] && docker image inspect $(LOCAL_BASE_IMAGE) >/dev/null 2>&1 && \
		   ! docker run --rm -i --network none $(LOCAL_BASE_IMAGE) python3 -m pip install -q --dry-run --no-index \
		       -r /dev/stdin <requirements.txt >/dev/null 2>&1; then \
			echo "docker-ready: $(LOCAL_BASE_IMAGE) lacks requirements.txt; rebuilding it"; \
			$(SANDBOX) up requirements.txt; \
		else \
			echo "docker-ready: Docker engine $$(docker version -f '{{.Server.Version}}')"; \
		fi; \
	elif [ -x $(SANDBOX) ]; then \
		$(SANDBOX) up requirements.txt; \
	else \
		echo "docker-ready: no Docker engine answers and there is no $(SANDBOX); start Docker first" >&2; \
		exit 1; \
	fi
.PHONY: docker-ready

docker-image: docker-ready ## build server:latest and client:latest (from BASE_IMAGE)
	docker build -f docker/server.Dockerfile --build-arg BASE_IMAGE=$(BASE_IMAGE) -t server:latest .
	docker build -f docker/client.Dockerfile --build-arg BASE_IMAGE=$(BASE_IMAGE) -t client:latest .
.PHONY: docker-image

# The agencies COMPOSE_FILE names in its header (generar-compose.sh writes it); the credentials go beside it.
COMPOSE_AGENCIES = $$(sed -n 's/^\# Generated by generar-compose.sh (\([0-9]*\) agencies.*/\1/p' $(COMPOSE_FILE))
SECRETS_DIR = $(dir $(COMPOSE_FILE)).secrets

secrets: ## make sure .secrets/ has the TLS credentials COMPOSE_FILE mounts (tools/credentials.py keeps what exists)
	@n=$(COMPOSE_AGENCIES); [ -n "$$n" ] || { echo "secrets: $(COMPOSE_FILE) has no generar-compose.sh header" >&2; exit 1; }; \
	if $(PYTHON) -c 'import cryptography' 2>/dev/null && [ "$$(id -u)" = 0 ]; then \
		$(PYTHON) -m tools.credentials $(SECRETS_DIR) --agencies $$n; \
	else \
		mkdir -p -m 700 $(SECRETS_DIR) && chmod 700 $(SECRETS_DIR) && docker run --rm -i --network none --user 0:0 -v "$$(cd $(SECRETS_DIR) && pwd):/secrets" \
			--entrypoint python3 client:latest - /secrets --agencies $$n <tools/credentials.py; \
	fi
.PHONY: secrets

docker-compose-up: docker-ready data docker-image secrets ## build, then start the server and clients of COMPOSE_FILE
	docker compose -f $(COMPOSE_FILE) up -d --build
.PHONY: docker-compose-up

docker-compose-down: ## stop (SIGTERM, 1 s grace) and remove the containers and network
	docker compose -f $(COMPOSE_FILE) stop -t 1
	docker compose -f $(COMPOSE_FILE) down
.PHONY: docker-compose-down

docker-compose-logs: ## follow the containers' logs
	docker compose -f $(COMPOSE_FILE) logs -f
.PHONY: docker-compose-logs

exercise-branches: python-env ## make local branches ej1..ej8 for the course's tests, one commit each on main (FORCE=1 replaces them)
	$(PYTHON) -m tools.exercise_branches $(if $(filter 1,$(FORCE)),--force)
.PHONY: exercise-branches

validate-echo: ## check the running server's inline echo from inside its network
	sh validar-echo-server.sh
.PHONY: validate-echo
