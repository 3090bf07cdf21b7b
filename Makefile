# lsmtrace: the two commands of the README, plus the rest.
#   make run    installs everything (apt, .venv, the package) and traces live
#   make test   installs everything and runs every test tier this machine can run
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := python3 python3-venv python3-pip python3-bpfcc bpfcc-tools bpftool \
	gcc libc6-dev util-linux procps iproute2 tmux apparmor checkpolicy semodule-utils \
	tomoyo-tools prometheus
STAMP := $(VENV)/.installed

.PHONY: run test test-unit test-tui test-bpf test-vm test-vagrant bench bench-vm lint deps venv clean

deps:
	@if [ "$$(id -u)" != 0 ]; then echo "error: run as root (apt-get, BPF)"; exit 1; fi
	@missing=""; for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# The venv uses Debian's python3 and sees its bcc module (--system-site-packages).
$(STAMP): pyproject.toml | deps
	/usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -c "import bcc" || { echo "error: bcc not importable from $(VENV)"; exit 1; }
	touch $(STAMP)

venv: deps $(STAMP)

run: venv
	$(VENV)/bin/lsmtrace trace

test: venv
	$(PY) -m pytest tests/unit tests/tui tests/bpf
	$(MAKE) test-vm

test-unit: venv
	$(PY) -m pytest tests/unit

test-tui: venv
	$(PY) -m pytest tests/tui

test-bpf: venv
	$(PY) -m pytest tests/bpf

# The VM stage: fexit, kretprobe and BPF-LSM rungs in a qemu guest.
# LSMTRACE_SKIP_VM=1 skips it (developers only; CI always runs it).
test-vm: venv
	/usr/bin/python3 vagrant/vmtest.py test

# Opt-in, not part of `make test`: vagrant/Vagrantfile run for real (vagrant-libvirt,
# TCG) on a box made from the VM stage's image; see vagrant/README.md.
test-vagrant: venv
	bash vagrant/test-vagrant.sh

bench: venv
	$(PY) benchmarks/bench.py
	$(PY) benchmarks/bench_record.py
	$(PY) benchmarks/bench_startstop.py
	$(PY) benchmarks/bench_proctree.py
	$(PY) benchmarks/bench_export.py
	$(PY) benchmarks/bench_policy_live.py
	$(PY) benchmarks/bench_stress.py

# The fexit rung's overhead, and each hook rung's cost per call next to empty
# programs on the same hooks, measured in the VM target (TCG: relative figures only).
bench-vm: venv
	/usr/bin/python3 vagrant/vmtest.py run --kernel 6.12 --timeout 3000 -- \
		python3 benchmarks/bench.py --backend fexit --modes count,denied --loops c \
		--pairs 3 --repeat 1 --n-c 50000 --no-throughput --start-timeout 600
	/usr/bin/python3 vagrant/vmtest.py run --kernel 6.12 --timeout 3000 -- \
		python3 benchmarks/bench_hooks.py --n 20000 --pairs 2

lint: venv
	$(PY) -m ruff check lsmtrace tests benchmarks vagrant
	$(PY) -m ruff format --check lsmtrace tests benchmarks vagrant stubs
	$(PY) -m mypy

clean:
	rm -rf $(VENV) .cache build *.egg-info
