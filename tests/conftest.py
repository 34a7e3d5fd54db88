"""Hypothesis profiles: `ci` keeps `make test` short on 2 cores; `long` is `make fuzz`.

Choose one with HYPOTHESIS_PROFILE (the Makefile does). Assertions are never
disabled: the suite refuses to run under `python -O`.
"""

import os

from hypothesis import HealthCheck, settings

assert __debug__, "lowpaxos tests need assertions: do not run them with python -O"

settings.register_profile(
    "ci", max_examples=25, stateful_step_count=60, deadline=None, derandomize=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long", max_examples=600, stateful_step_count=150, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev", max_examples=10, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

# Checks too long for `make test` (kept under 15 minutes on 2 cores): marked `long`, so
# `make test` deselects them and `make test-long` runs them; CI (.ci/run) runs both.
# Node ids as pytest prints them; a prefix covers every parameter of a test.
LONG_TESTS = (
    # TLC's CI model of spec/LowPaxos.tla (1.2 M states; also in make check-spec) and the
    # two broken variants that take longest to catch (the others stay in make test).
    "tests/test_tla.py::test_small_configuration_passes",
    "tests/test_tla.py::test_broken_variant_is_caught[broken/PromiseOtherBallot]",
    "tests/test_tla.py::test_broken_variant_is_caught[broken/LowerBallot]",
    # redis-benchmark SET/GET 100,000 and MSET 10,000 against a 3-process cluster.
    "tests/test_runtime_bigstore.py::test_redis_benchmark_leaves_every_replica_alive_and_converged",
    # Every mutant in tests/mutants/ applied to a copy of the tree and killed (make mutants).
    "tests/test_mutants.py::test_every_mutant_is_killed",
    # TLC: spec/EPaxos.tla's CI model and the single-ballot recovery (Sutra 2019), about a
    # minute each; the other EPaxos negative checks stay in make test.
    "tests/test_tla_epaxos.py::test_epaxos_ci_model_passes",
    "tests/test_tla_epaxos.py::test_epaxos_negative_check_is_caught[broken/EPaxosSingleBallot]",
)


def pytest_configure(config):
    config.addinivalue_line("markers", "long: run by `make test-long` (and CI), not `make test`")


def pytest_collection_modifyitems(config, items):
    import pytest

    for item in items:
        if item.nodeid.startswith(LONG_TESTS):
            item.add_marker(pytest.mark.long)
