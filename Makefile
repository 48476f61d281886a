# roomctl: `make demo` runs a simulated clinic on this machine, `make test` runs the tests.
# Each target does its own set-up on a fresh Debian machine.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
ARGS ?=
PYTEST_ARGS ?=

.PHONY: demo test lint typecheck unit setup system-deps bench pi-check clean

demo: setup
	$(BIN)/python -m tools.demo $(ARGS)

test: setup lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check contract firmware_py controller broker tools tests bench

typecheck: setup
	$(BIN)/mypy contract firmware_py controller broker tools

setup: system-deps $(STAMP)

# Debian packages the demo and the tests need (checked with dpkg, installed when missing).
APT_PACKAGES := mosquitto mosquitto-clients debootstrap systemd chromium nftables postgresql-15 tzdata

system-deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

bench: setup
	$(BIN)/python -m bench $(if $(QUICK),--quick,)

# The room on the Pi's architecture (issue 17): an arm64 Debian 12 root under qemu user-mode
# emulation, provisioned by the Ansible room role from aarch64 wheels, running the daemon
# against this host's Mosquitto and logger. Needs root; slow (docs/PROVISIONING.md), so it
# is not part of `make test`: run it before each release.
PI_CHECK_PACKAGES := qemu-user-static binfmt-support debootstrap

pi-check: setup
	@missing=$$(for p in $(PI_CHECK_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi
	$(SUDO) $(BIN)/python -m tools.pi_check $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
