"""lowpaxos: consensus for resource-constrained environments.

Layers (see docs/architecture.md): ``core`` (shared value types and the core
interface), ``protocols`` (sans-I/O protocol cores), ``kvs`` (the replicated
state machine), ``codec`` (wire format), ``sim`` (deterministic simulator),
``check`` (linearizability checker).
"""

__version__ = "0.1.0"
