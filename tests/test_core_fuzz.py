"""Bad input never raises out of a core: random well-formed messages and client
requests, from members and strangers, leave every replica's invariants intact."""

from hypothesis import HealthCheck, given, settings, strategies as st

from lowpaxos.core.api import ClientRequest

from tests import strategies
from tests.harness import Cluster


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(-1, 4),
                          strategies.lowpaxos_messages | strategies.client_requests),
                min_size=1, max_size=25))
def test_random_messages_keep_invariants(inputs):
    """Feed random messages to replicas of a running cluster, then keep running it."""
    cluster = Cluster(3, batching=False)
    cluster.elect(0)
    cluster.submit(0, 1, "put", "k", b"v")
    cluster.deliver_all()
    for target, source, message in inputs:
        core = cluster.cores[target]
        if isinstance(message, ClientRequest):
            effects = core.on_client_request(message)
        else:
            effects = core.on_message(source, message)
        core.check_invariants()
        cluster.carry_out(target, effects)
    cluster.tick_all(5)  # the cluster keeps working (or keeps failing safely) afterwards
    for core in cluster.cores:
        core.check_invariants()
