# Two commands do everything: `make up` serves, `make test` tests. Each sets itself up
# (Debian packages, virtual environment, model build) and skips what is already done.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PANEL ?= ci
ARTIFACTS := build/models/$(PANEL)
VENV_STAMP := $(VENV)/.installed
SYS_STAMP := build/.system-deps
MODELS_STAMP := $(ARTIFACTS)/.built
# Generated serving code lives under build/, never in git: `policies.repository` writes it.
REPOSITORY := build/model_repository/$(PANEL)
GPU_REPOSITORY := build/gpu_model_repository/$(PANEL)
REPO_STAMP := build/.repository-$(PANEL)
# LeRobot's real robot client needs Python >= 3.12: its own venv (see test-lerobot below).
LEROBOT_VENV := build/lerobot-venv

.PHONY: help setup system-deps venv models repository gpu-repository up test test-faults test-fast lint \
	loadtest bench demo eval clean test-lerobot

help:
	@echo "make up          serve Triton + Redis + router (Ctrl-C stops everything)"
	@echo "make test        run the test suite against real tritonserver/redis/prometheus"
	@echo "make test-faults fault scenarios (SIGSTOP Triton, unload a model, kill Redis/router)"
	@echo "make test-lerobot LeRobot 0.6.1's real robot client against the router (own 3.12 venv)"
	@echo "make models      collect demos, train, export ONNX for PANEL=$(PANEL)"
	@echo "make lint        ruff + mypy --strict"
	@echo "make demo        short closed-loop evaluation of the ci panel through the router"
	@echo "make eval        full closed-loop evaluation (PANEL=ci|mt10|panel30, EPISODES=20)"
	@echo "make loadtest    default open-loop fleet scenario against the stack (starts one if none)"
	@echo "make bench       router vs direct Triton benchmark; writes docs/benchmarks.md"

setup: venv system-deps

system-deps: $(SYS_STAMP)
$(SYS_STAMP): scripts/install_system_deps.sh
	@mkdir -p build
	./scripts/install_system_deps.sh
	@touch $@

venv: $(VENV_STAMP)
$(VENV_STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	@touch $@

models: $(MODELS_STAMP)
# The venv is order-only: reinstalling packages must not retrain the models.
$(MODELS_STAMP): $(filter-out policies/repository.py,$(wildcard policies/*.py)) | $(VENV_STAMP)
	$(BIN)/python -m policies.build --panel $(PANEL) --out $(ARTIFACTS)
	@touch $@

repository: $(REPO_STAMP)
$(REPO_STAMP): $(MODELS_STAMP) policies/repository.py $(wildcard policies/serving/*.py) | $(VENV_STAMP)
	$(BIN)/python -m policies.repository --artifacts $(ARTIFACTS) --out $(REPOSITORY)
	@touch $@

gpu-repository: $(MODELS_STAMP)
	$(BIN)/python -m policies.repository --artifacts $(ARTIFACTS) --flavour gpu \
		--out $(GPU_REPOSITORY)

up: setup repository
	$(BIN)/python -m deploy.local.stack up --panel $(PANEL) --repository $(REPOSITORY)

test: setup repository $(LEROBOT_VENV)/.installed
	$(LEROBOT_ENV) $(BIN)/python -m pytest -m "not faults"

# The fault scenarios (tests/deploy/test_deploy_faults.py); kill -9 of Triton is in `make test`.
test-faults: setup repository
	$(BIN)/python -m pytest -m faults

test-fast: setup
	$(BIN)/python -m pytest -m "not slow"

# LeRobot 0.6.1's real RobotClient against the router (tests/router_service/test_lerobot_client_e2e.py)
# in its own venv: LeRobot needs Python >= 3.12 (about 5 GB with torch; ~2 min to install here).
PYTHON_LEROBOT ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python) \
	$(shell command -v python3.12 python3.13 2>/dev/null))
$(LEROBOT_VENV)/.installed: requirements-lerobot.lock
	@test -n "$(PYTHON_LEROBOT)" || { echo "LeRobot needs Python >= 3.12: set PYTHON_LEROBOT"; exit 1; }
	$(PYTHON_LEROBOT) -m venv $(LEROBOT_VENV)
	$(LEROBOT_VENV)/bin/pip install -q -r requirements-lerobot.lock
	@touch $@

# Set for make test too: with it set, a missing LeRobot venv fails the test instead of skipping.
LEROBOT_ENV := LEROBOT_PYTHON=$(abspath $(LEROBOT_VENV))/bin/python

test-lerobot: setup repository $(LEROBOT_VENV)/.installed
	$(LEROBOT_ENV) $(BIN)/python -m pytest \
		tests/router_service/test_lerobot_client_e2e.py tests/router_service/test_lerobot_e2e.py

loadtest: setup repository
	ROUTER_API_KEY=$${ROUTER_API_KEY:-dev-robot-key} $(BIN)/python -m deploy.local.stack exec \
		--panel $(PANEL) --no-prometheus -- \
		$(BIN)/python -m loadtest run loadtest/scenarios/default.yaml --target router

# The page and the raw results it quotes (summary, capacity steps, profile) land in docs/.
bench: setup repository
	stamp=$$(date -u +%Y%m%dT%H%M%SZ); $(BIN)/python -m loadtest.bench \
		--out results/bench/$$stamp --doc docs/benchmarks.md --raw-copy docs/benchmarks/raw/$$stamp

EPISODES ?= 20

demo: setup models
	$(BIN)/python -m evaluation run --panel ci --episodes 5 \
		--out results/eval/demo-$$(date -u +%Y%m%dT%H%M%SZ)

eval: setup models
	./scripts/eval_panel.sh $(PANEL) $(EPISODES)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy router_service clients/router_client loadtest ros2_bridge

clean:
	rm -rf build results .run
