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
