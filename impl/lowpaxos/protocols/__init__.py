"""Protocol cores. Each is sans-I/O: it imports nothing from ``lowpaxos.sim`` or a runtime."""
