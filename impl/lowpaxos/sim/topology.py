"""Where nodes sit and how long a message takes between sites.

A topology is a list of sites and a one-way delay matrix in microseconds. The
LAN topology is one site; a WAN topology is read from a JSON file of round-trip
times (the format of ``data/wan-5sites.json``), and one-way delay is half the
round-trip time. Two nodes at the same site are still a LAN hop apart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

LAN_ONE_WAY_US = 100
LAN_JITTER_US = 20


@dataclass(frozen=True, slots=True)
class Topology:
    name: str
    sites: tuple[str, ...]
    one_way_us: tuple[tuple[int, ...], ...]  # [source site][target site]
    jitter_us: int

    def one_way_us_max(self) -> int:
        return max(max(row) for row in self.one_way_us)


def replica_site(replica: int, topology: Topology) -> int:
    """The site of ``replica``: replicas go round-robin over the sites (the simulator's
    placement)."""
    return replica % len(topology.sites)


def peer_order(topology: Topology, replicas: int) -> tuple[tuple[int, ...], ...]:
    """For each replica, the others from the closest to the farthest (one-way delay
    between their sites, ties by id): a thrifty protocol's proximity order (EPaxos's
    ``peer_order``, SOSP 2013 §4.3: PreAccept to the closest fast quorum)."""
    rows = topology.one_way_us
    order = []
    for replica in range(replicas):
        here = replica_site(replica, topology)
        others = [other for other in range(replicas) if other != replica]
        others.sort(key=lambda other: (rows[here][replica_site(other, topology)], other))
        order.append(tuple(others))
    return tuple(order)


def lan() -> Topology:
    return Topology("lan", ("lan",), ((LAN_ONE_WAY_US,),), LAN_JITTER_US)


def from_json(text: str, name: str) -> Topology:
    """A topology from the JSON format of data/wan-5sites.json (rtt_ms per site pair)."""
    document = json.loads(text)
    sites = tuple(document["sites"])
    if not sites:
        raise ValueError(f"{name}: no sites")
    rtt_ms = document["rtt_ms"]
    rows = []
    for source in sites:
        row = []
        for target in sites:
            rtt = float(rtt_ms[source][target])
            if rtt < 0:
                raise ValueError(f"{name}: negative rtt {source}-{target}")
            # Half the round trip each way, and never less than a LAN hop.
            row.append(max(LAN_ONE_WAY_US, round(rtt * 1000 / 2)))
        rows.append(tuple(row))
    jitter_us = round(float(document.get("jitter_ms", 0.0)) * 1000)
    return Topology(name, sites, tuple(rows), max(0, jitter_us))


def load(latency: str) -> Topology:
    """``lan``, ``wan`` (the shipped five-site matrix) or a path to a JSON matrix."""
    if latency == "lan":
        return lan()
    if latency == "wan":
        text = resources.files("lowpaxos.sim").joinpath("data/wan-5sites.json").read_text()
        return from_json(text, "wan-5sites")
    path = Path(latency)
    return from_json(path.read_text(), path.stem)
