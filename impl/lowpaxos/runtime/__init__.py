"""The asyncio runtime: real replica processes driving the sans-I/O cores.

Layers inside this package, arrows pointing one way:

* ``cluster``: the cluster file (TOML) and the cluster key;
* ``fragments``: sans-I/O fragmentation of large messages, reassembly and NACKs;
* ``framing``: HMAC-SHA256 datagram framing (header, body, 16-byte tag) of whole
  messages, fragments and NACKs;
* ``storage``: durable records in SQLite (WAL, synchronous=FULL, per-row checksums);
* ``resp``: a bounded, sans-I/O RESP2 parser and encoder;
* ``replica``: one replica process (UDP peers, RESP clients, ticks, group commit);
* ``client``: an asyncio client for programs; ``launcher``: a local cluster.

The protocol cores import nothing from here (docs/architecture.md).
"""
