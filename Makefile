# corral: build and test entry points. `make test` installs everything it needs (Debian 12, as root).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.corral-installed
# `make run CONFIG=path/to/cloud-config.yml` (also `make sandbox`); empty: the image's defaults.
# `make run APPEND=...`: the booted OS's extra kernel command line. The default gives the local dev VM a
# known password for `rancher` (its ssh port is on 127.0.0.1 only); set APPEND= to boot with none.
CONFIG ?=
# `make run`'s persistent state disk (the guest's /var/lib, /home, the user's config: formatted at the first
# boot, kept across runs); `make run STATE=` boots with none (state in RAM, and `corral status` says so).
STATE ?= .cache/image/state.img
# Extra pytest arguments, e.g. `make test PYTEST_ARGS='-k netns -x'`.
PYTEST_ARGS ?=
# The test fixtures are checked strictly on their own (the project's mypy run covers the packages).
MYPY_STRICT := integration/netns.py integration/dockerd.py integration/conftest.py integration/test_fixtures.py

export DEBIAN_FRONTEND := noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK := 1

APPEND ?= corral.password=rancher
# The image's lock files (image/*.lock) record what a build used. A pin Debian's archive no longer has (a
# security update replaced it) moves to the archive's current version and the lock is rewritten, saying
# which pins moved. `make image LOCK=frozen` fails instead, naming them (release builds);
# `make image LOCK=update` resolves every package again.
LOCK ?=
LOCK_FLAG := $(if $(filter frozen,$(LOCK)),--frozen,$(if $(filter update,$(LOCK)),--update-lock,))
.PHONY: help sysdeps venv lint test soak run sandbox bench clean distclean image iso

help:
	@echo "make venv       Debian packages (when missing) + $(VENV) with corral[test], editable"
	@echo "make lint       ruff check . ; mypy ; lint-imports (the layers: docs/architecture.md)"
	@echo "make test       venv + lint + pytest over tests/ and integration/"
	@echo "make soak       the fault runs (integration/faults) at full length (CORRAL_SOAK=1; docs/reliability.md)"
	@echo "make run        build the OS image and boot it in QEMU (serial console here; Ctrl-A X quits)"
	@echo "                [CONFIG=cloud-config.yml] [APPEND='corral.password=secret'] [STATE=disk.img | STATE=]"
	@echo "make sandbox    corral as PID 1 in namespaces on this host: corral sandbox --dir run-state"
	@echo "make bench      run every bench/*.py"
	@echo "make image      build the OS image: .cache/image/out/{vmlinuz,initrd,manifest.json} [COMPRESSION=xz]"
	@echo "                [LOCK=frozen: fail on a pin the archive dropped | LOCK=update: resolve all again]"
	@echo "make iso        the image and .cache/image/out/corral.iso: hybrid (BIOS and UEFI, CD or USB stick)"
	@echo "make clean      caches and build output; make distclean also removes $(VENV) and .cache"

sysdeps:
	@bash scripts/install-system-deps.sh

venv: $(STAMP)

# Re-run pip only when pyproject.toml changed since the last install.
$(STAMP): pyproject.toml | sysdeps
	@if ! $(PY) -c 'import sys' >/dev/null 2>&1; then \
		rm -rf $(VENV); echo "/usr/bin/python3 -m venv $(VENV)"; /usr/bin/python3 -m venv $(VENV); \
	fi
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/mypy --strict --follow-imports=silent $(MYPY_STRICT)

# pytest's exit status 5 means it collected no test: say so rather than fail.
test: venv lint
	@rc=0; $(PY) -m pytest -q -rs -p no:cacheprovider --durations=15 tests integration $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no test"; exit 0; fi; exit $$rc

# The fault runs of `make test`, longer: more rounds, more clients, more configs (docs/reliability.md);
# the three-guest swarm test with its lost node powered off and on (integration/test_guest_fleet.py).
soak: venv
	CORRAL_SOAK=1 $(PY) -m pytest -q -rs -p no:cacheprovider --durations=15 integration/faults \
		integration/test_guest_fleet.py $(PYTEST_ARGS)

run: image
	$(PY) -m image run $(if $(CONFIG),--config $(abspath $(CONFIG))) $(if $(APPEND),--append '$(APPEND)') \
		$(if $(STATE),--state-disk $(abspath $(STATE)))

sandbox: venv
	$(VENV)/bin/corral sandbox --dir $(CURDIR)/run-state $(if $(CONFIG),--config $(abspath $(CONFIG)))

# The OS image (docs/image.md); COMPRESSION=none|zstd|xz (default zstd).
COMPRESSION ?= zstd
image: venv
	$(PY) -m image build --compression $(COMPRESSION) $(LOCK_FLAG)

# The same build plus a hybrid ISO of it (docs/image.md, "The ISO"); same COMPRESSION and LOCK.
iso: venv
	$(PY) -m image build --iso --compression $(COMPRESSION) $(LOCK_FLAG)

bench: venv
	@shopt -s nullglob; ran=0; \
	for f in bench/*.py; do \
		case "$$(basename "$$f")" in _*) continue ;; esac; \
		echo "== $$f"; $(PY) -m bench.$$(basename "$$f" .py); ran=$$((ran + 1)); \
	done; \
	echo "$$ran benchmark(s) run"

clean:
	@if grep -q " $(CURDIR)/run-state[/ ]" /proc/self/mountinfo; then \
		echo "run-state still has mounts: stop the sandbox (make run) first" >&2; exit 1; \
	fi
	rm -rf --one-file-system run-state build .mypy_cache .ruff_cache .pytest_cache *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) .cache
