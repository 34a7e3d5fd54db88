"""The cluster file and the cluster key.

A cluster file is TOML; every replica process reads the same file, so one file
describes the whole deployment (see docs/runtime.md for an example)::

    tick_ms = 10
    data_dir = "data"            # relative to this file; replica I keeps replica-I.sqlite
    key_file = "cluster.key"     # hex; LOWPAXOS_CLUSTER_KEY (hex) in the environment wins

    [limits]                     # optional, see Limits
    value_bytes_max = 1048576

    [protocol]                   # optional: which protocol, and its config fields (ticks)
    name = "lowpaxos"            # a registry name: "lowpaxos" (the default) or "vr"
    window_slots = 8
    # or, with the protocol's defaults, at the top:  protocol = "vr"

    [[replica]]
    id = 0
    address = "127.0.0.1:7000"   # UDP; peers send here
    resp = "127.0.0.1:6380"      # TCP; Redis clients connect here
    # bind = "127.0.0.1:7100"    # optional: where to listen, when peers reach us through a proxy
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from typing import Any

from lowpaxos import codec
from lowpaxos.protocols.registry import PROTOCOLS
from lowpaxos.runtime import fragments, framing

DEFAULT_PROTOCOL = "lowpaxos"

KEY_ENVIRONMENT_VARIABLE = "LOWPAXOS_CLUSTER_KEY"
KEY_BYTES_MIN = 16


class ClusterFileError(ValueError):
    """The cluster file or key cannot be used; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one replica accepts from clients and peers."""

    value_bytes_max: int = 1 << 20  # a SET value above this is refused, never truncated
    key_bytes_max: int = 512
    bulk_bytes_max: int = 1 << 20  # a RESP bulk string above this closes the connection
    arguments_max: int = 64  # RESP arguments in one command
    inline_bytes_max: int = 4096  # one inline command line or one RESP header line
    pipeline_depth_max: int = 64  # commands parsed ahead of their replies, per connection
    connections_max: int = 1024
    # One datagram, whole message or fragment, sent or accepted (the largest UDP payload
    # over IPv4); messages above fragment_payload_bytes travel as fragments.
    datagram_bytes_max: int = 65507
    request_timeout_ms: int = 5000  # a client command unanswered this long gets an error
    forwarded_requests_max: int = 65536  # requests a leader answers on behalf of followers
    # A message whose encoding is larger than this travels in fragments of this size, so
    # that a datagram (1240 bytes with its headers) fits one unfragmented IP packet on
    # common links (Ethernet, most tunnels): the loss of one fragment is then the loss
    # of one datagram, repaired by a NACK for just that fragment.
    fragment_payload_bytes: int = 1200
    fragment_store_bytes_max: int = 8 << 20  # fragments of recent large messages, kept for NACKs
    reassembly_bytes_max: int = 16 << 20  # partial messages being reassembled (their full sizes)
    reassembly_messages_max: int = 64  # partial messages being reassembled
    fragment_nack_delay_ms: int = 5  # a partial message this long without progress is NACKed

    def problem(self) -> str | None:
        """Why these limits cannot work together, or None."""
        fragment_datagram_bytes = self.fragment_payload_bytes + framing.FRAGMENT_OVERHEAD_BYTES
        if not 1 <= self.datagram_bytes_max <= 65507:
            return "datagram_bytes_max must lie in 1..65507 (the largest UDP payload)"
        if not 64 <= self.fragment_payload_bytes <= framing.CHUNK_BYTES_MAX:
            return f"fragment_payload_bytes must lie in 64..{framing.CHUNK_BYTES_MAX}"
        if fragment_datagram_bytes > self.datagram_bytes_max:
            return (f"a fragment datagram ({fragment_datagram_bytes} bytes) must fit "
                    f"datagram_bytes_max ({self.datagram_bytes_max})")
        if fragments.fragment_count(codec.MESSAGE_BYTES_MAX, self.fragment_payload_bytes) \
                > fragments.FRAGMENTS_MAX:
            return (f"fragment_payload_bytes too small: a message of {codec.MESSAGE_BYTES_MAX} "
                    f"bytes would need more than {fragments.FRAGMENTS_MAX} fragments")
        if self.value_bytes_max > self.bulk_bytes_max:
            return "value_bytes_max must not exceed bulk_bytes_max (values arrive as bulk strings)"
        if self.reassembly_bytes_max < codec.MESSAGE_BYTES_MAX:
            return (f"reassembly_bytes_max must hold the largest message "
                    f"({codec.MESSAGE_BYTES_MAX} bytes)")
        if self.reassembly_messages_max < 1 or self.fragment_store_bytes_max < 0:
            return "reassembly_messages_max must be at least 1, fragment_store_bytes_max at least 0"
        if self.fragment_nack_delay_ms < 1:
            return "fragment_nack_delay_ms must be at least 1"
        return None


@dataclass(frozen=True, slots=True)
class ReplicaAddress:
    replica_id: int
    address: tuple[str, int]  # UDP address peers send to
    resp: tuple[str, int]  # TCP address of the RESP server
    bind: tuple[str, int]  # UDP address to listen on (normally == address)


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    path: Path
    replicas: tuple[ReplicaAddress, ...]
    tick_ms: int = 10
    data_dir: Path = Path("data")
    key_file: Path | None = None
    limits: Limits = field(default_factory=Limits)
    # The protocol's config (the registry's make_config), and the protocol's name.
    protocol: Any = field(default_factory=lambda: PROTOCOLS[DEFAULT_PROTOCOL].make_config(1))
    trace_dir: Path | None = None
    protocol_name: str = DEFAULT_PROTOCOL

    def replica(self, replica_id: int) -> ReplicaAddress:
        for replica in self.replicas:
            if replica.replica_id == replica_id:
                return replica
        raise ClusterFileError(f"replica id {replica_id} is not in {self.path}")

    def database_path(self, replica_id: int) -> Path:
        return self.data_dir / f"replica-{replica_id}.sqlite"


def parse_address(text: object, what: str) -> tuple[str, int]:
    if not isinstance(text, str) or ":" not in text:
        raise ClusterFileError(f"{what} must be a string 'host:port', got {text!r}")
    host, _, port_text = text.rpartition(":")
    try:
        port = int(port_text)
    except ValueError:
        raise ClusterFileError(f"{what}: port {port_text!r} is not a number") from None
    if not 0 < port < 65536:
        raise ClusterFileError(f"{what}: port {port} outside 1..65535")
    return host.strip("[]"), port


def load_cluster(path: str | os.PathLike) -> ClusterSpec:
    path = Path(path)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ClusterFileError(f"cluster file {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise ClusterFileError(f"cluster file {path} is not valid TOML: {error}") from None
    base = path.parent
    entries = document.get("replica")
    if not isinstance(entries, list) or not entries:
        raise ClusterFileError(f"{path}: needs at least one [[replica]] table")
    replicas = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), int):
            raise ClusterFileError(f"{path}: [[replica]] #{index} needs an integer id")
        replica_id = entry["id"]
        address = parse_address(entry.get("address"), f"replica {replica_id} address")
        resp = parse_address(entry.get("resp"), f"replica {replica_id} resp")
        bind = parse_address(entry["bind"], f"replica {replica_id} bind") if "bind" in entry else address
        replicas.append(ReplicaAddress(replica_id, address, resp, bind))
    ids = sorted(r.replica_id for r in replicas)
    if ids != list(range(len(replicas))):
        raise ClusterFileError(f"{path}: replica ids must be 0..{len(replicas) - 1}, got {ids}")
    replicas.sort(key=lambda r: r.replica_id)

    limits = _dataclass_from(Limits, document.get("limits", {}), f"{path} [limits]")
    problem = limits.problem()
    if problem is not None:
        raise ClusterFileError(f"{path} [limits]: {problem}")
    protocol_name, protocol = _protocol_from(document.get("protocol", {}), len(replicas), path)
    tick_ms = document.get("tick_ms", 10)
    if not isinstance(tick_ms, int) or not 1 <= tick_ms <= 10_000:
        raise ClusterFileError(f"{path}: tick_ms must be an integer in 1..10000")
    key_file = document.get("key_file")
    trace_dir = document.get("trace_dir")
    return ClusterSpec(
        path=path,
        replicas=tuple(replicas),
        tick_ms=tick_ms,
        data_dir=base / document.get("data_dir", "data"),
        key_file=base / key_file if key_file else None,
        limits=limits,
        protocol=protocol,
        trace_dir=base / trace_dir if trace_dir else None,
        protocol_name=protocol_name,
    )


def _protocol_from(value: object, replicas: int, path: Path) -> tuple[str, Any]:
    """The protocol's name and its validated config from the file's ``protocol``: a name
    (``protocol = "vr"``), or a table of the protocol's config fields with an optional
    ``name`` (TOML allows a key or a table of one name, not both). The fields are those
    of the registry's make_config for that protocol; ``replicas`` comes from the file."""
    what = f"{path} [protocol]"
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict):
        raise ClusterFileError(f"{what} must be a protocol name or a table")
    fields = dict(value)
    name = fields.pop("name", DEFAULT_PROTOCOL)
    if name not in PROTOCOLS:
        raise ClusterFileError(f"{what}: unknown protocol {name!r}; known: "
                               f"{', '.join(PROTOCOLS)}")
    if "replicas" in fields:
        raise ClusterFileError(f"{what}: replicas is set by the [[replica]] tables")
    make_config = PROTOCOLS[name].make_config
    config_class = type(make_config(replicas))
    _dataclass_from(config_class, {**fields, "replicas": replicas}, f"{what} ({name})")
    try:
        return name, make_config(replicas, **fields)
    except (TypeError, ValueError) as error:
        raise ClusterFileError(f"{what} ({name}): {error}") from None


def _dataclass_from(cls, values: object, what: str):
    if not isinstance(values, dict):
        raise ClusterFileError(f"{what} must be a table")
    known = {f.name: f for f in dataclasses.fields(cls)}
    for name, value in values.items():
        if name not in known:
            raise ClusterFileError(f"{what}: unknown setting {name!r}")
        if isinstance(value, bool) != (known[name].type in ("bool", bool)) and value is not None:
            raise ClusterFileError(f"{what}: {name} has the wrong type ({value!r})")
    try:
        return cls(**values)
    except TypeError as error:
        raise ClusterFileError(f"{what}: {error}") from None


def load_key(spec: ClusterSpec, environment: dict | None = None) -> bytes:
    """The cluster key: LOWPAXOS_CLUSTER_KEY (hex) if set, else the key file (hex)."""
    environment = os.environ if environment is None else environment
    text = environment.get(KEY_ENVIRONMENT_VARIABLE)
    source = f"${KEY_ENVIRONMENT_VARIABLE}"
    if not text:
        if spec.key_file is None:
            raise ClusterFileError(
                f"no cluster key: set {KEY_ENVIRONMENT_VARIABLE} or key_file in {spec.path}"
            )
        source = str(spec.key_file)
        try:
            text = spec.key_file.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as error:
            raise ClusterFileError(f"cannot read the cluster key {source}: {error}") from None
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise ClusterFileError(f"the cluster key in {source} is not hex") from None
    if len(key) < KEY_BYTES_MIN:
        raise ClusterFileError(
            f"the cluster key in {source} has {len(key)} bytes; at least {KEY_BYTES_MIN} needed"
        )
    return key


def new_key_hex() -> str:
    return secrets.token_hex(32)


def write_cluster_file(
    path: Path,
    udp_ports: list[int],
    resp_ports: list[int],
    *,
    host: str = "127.0.0.1",
    tick_ms: int = 10,
    bind_ports: list[int] | None = None,
    limits: dict | None = None,
    protocol: dict | None = None,
    trace_dir: str | None = None,
    protocol_name: str = DEFAULT_PROTOCOL,
) -> None:
    """Write a cluster file for replicas on one host (the launcher, tests, the bench).
    ``protocol``: the protocol's config fields; ``protocol_name``: which protocol."""
    lines = [
        "# lowpaxos cluster file (docs/runtime.md)",
        f"tick_ms = {tick_ms}",
        'data_dir = "data"',
        'key_file = "cluster.key"',
    ]
    if trace_dir:
        lines.append(f'trace_dir = "{trace_dir}"')
    if protocol_name != DEFAULT_PROTOCOL:
        protocol = {"name": protocol_name, **(protocol or {})}
    for table, values in (("limits", limits), ("protocol", protocol)):
        if values:
            lines.append(f"\n[{table}]")
            for name, value in values.items():
                rendered = str(value).lower() if isinstance(value, bool) else repr(value)
                lines.append(f"{name} = {rendered}")
    for replica_id, (udp, resp) in enumerate(zip(udp_ports, resp_ports)):
        lines += ["", "[[replica]]", f"id = {replica_id}",
                  f'address = "{host}:{udp}"', f'resp = "{host}:{resp}"']
        if bind_ports is not None:
            lines.append(f'bind = "{host}:{bind_ports[replica_id]}"')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
