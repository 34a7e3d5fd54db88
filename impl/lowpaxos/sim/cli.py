"""``lowpaxos sim``: run the simulator from the command line."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import sys

from lowpaxos.sim import topology
from lowpaxos.sim.faults import FaultPlan
from lowpaxos.sim.run import RunLimits, healthy, run
from lowpaxos.sim.simulator import SimOptions


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a probability in [0, 1]")
    return value


def _on_off(text: str) -> bool:
    if text not in ("on", "off"):
        raise argparse.ArgumentTypeError("expected on or off")
    return text == "on"


# A traced run keeps log truncation and state transfer on, with settings small enough
# that a short run has them: the log is cut every few applied slots, and past a few
# more even below a replica that is down, which then catches up by a transfer of
# many one-row chunks pulled two at a time (so that it asks for more, and resumes).
TRACE_SNAPSHOT_SLOTS = 4
TRACE_PROTOCOL_OPTIONS = {
    "lowpaxos": {
        "snapshot_slots": TRACE_SNAPSHOT_SLOTS,
        # The least that config.validate allows: snapshot_slots + window_slots (default 8).
        "log_slots_max": TRACE_SNAPSHOT_SLOTS + 8,
        "transfer_window": 2,
        "transfer_chunk_bytes": 64,  # the least allowed: about one row per chunk
    },
    # spec/VR.tla does not model checkpoints: a traced VR run never cuts its log
    # (docs/conformance.md, VR section).
    "vr": {"snapshot_slots": 1_000_000, "log_slots_max": 1_000_008},
    # spec/EPaxos.tla does not model garbage collection (never in a traced run), and
    # short runs should recover the instances of a replica that crashed or was cut off.
    "epaxos": {"collect_instances": 1_000_000, "recovery_ticks": 20, "status_ticks": 20},
}


def parse_option(text: str) -> tuple[str, object]:
    """NAME=VALUE of --protocol-option: an int, true/false, or the word as it is."""
    name, equals, value = text.partition("=")
    if not equals or not name.isidentifier():
        raise ValueError(f"--protocol-option {text!r}: expected NAME=VALUE")
    if value in ("true", "false"):
        return name, value == "true"
    try:
        return name, int(value)
    except ValueError:
        return name, value


def _percentage(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text} is not a number") from None
    if not 0.0 <= value <= 100.0:
        raise argparse.ArgumentTypeError(f"{text} is not a percentage in [0, 100]")
    return value


def topology_options(spec, replicas: int, where: topology.Topology, given: dict) -> dict:
    """Config fields the simulator fills from the latency matrix, for a protocol whose
    config has them and that the user did not set: ``peer_order`` (each replica's
    peers by proximity, for thrifty messages) on a topology of several sites."""
    fields = {f.name for f in dataclasses.fields(type(spec.make_config(replicas)))}
    filled = {}
    if "peer_order" in fields and "peer_order" not in given and len(where.sites) > 1:
        filled["peer_order"] = topology.peer_order(where, replicas)
    return filled


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--protocol", default="lowpaxos")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--ops", type=int, default=5000, help="client requests in total")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keys", type=int, default=10)
    parser.add_argument("--conflicts", type=_percentage, default=None, metavar="PCT",
                        help="PCT%% of commands on one shared key, the rest on --keys keys "
                             "private to each client (the EPaxos paper's conflict rate, §6); "
                             "default: every command on one of --keys shared keys")
    parser.add_argument("--value-bytes", type=int, default=0,
                        help="pad written values to this many bytes (a larger store)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--loss", type=_probability, default=0.0)
    parser.add_argument("--dup", type=_probability, default=0.0)
    parser.add_argument("--reorder", type=_probability, default=0.0)
    parser.add_argument("--crashes", type=int, default=0)
    parser.add_argument("--partitions", type=int, default=0)
    parser.add_argument("--latency", default="lan", help="lan, wan or a JSON rtt matrix file")
    parser.add_argument("--thrifty", type=_on_off, default=None, help="on or off")
    parser.add_argument("--batching", type=_on_off, default=None, help="on or off")
    parser.add_argument("--protocol-option", action="append", default=[], metavar="NAME=VALUE",
                        help="a field of the protocol's config (an int, true/false or a "
                             "word, e.g. disk=none for VR); repeatable")
    parser.add_argument("--tick-us", type=int, default=None,
                        help="virtual length of a tick (default: 1000, longer on slow links)")
    parser.add_argument("--safety-ticks", type=int, default=200,
                        help="length of the safety phase, in ticks; faults fall inside it")
    parser.add_argument("--print-events", action="store_true", help="print every event")
    parser.add_argument("--trace", metavar="FILE", default=None,
                        help="write the spec-level trace as NDJSON (docs/conformance.md), "
                             "with small log-cut and transfer settings (TRACE_PROTOCOL_OPTIONS)")


def command(args: argparse.Namespace) -> int:
    from lowpaxos.protocols.registry import PROTOCOLS

    spec = PROTOCOLS.get(args.protocol)
    if spec is None:
        print(f"unknown protocol {args.protocol!r}; known: {', '.join(sorted(PROTOCOLS))}",
              file=sys.stderr)
        return 2
    protocol_options = {}
    if args.thrifty is not None:
        protocol_options["thrifty"] = args.thrifty
    if args.batching is not None:
        protocol_options["batching"] = args.batching
    try:
        if args.trace is not None:
            # Settings under which the protocol's traces can be checked against its spec.
            protocol_options.update(TRACE_PROTOCOL_OPTIONS.get(args.protocol, {}))
        protocol_options.update(parse_option(text) for text in args.protocol_option)
        where = topology.load(args.latency)
        protocol_options.update(topology_options(spec, args.replicas, where, protocol_options))
        config = spec.make_config(args.replicas, **protocol_options)
    except (TypeError, ValueError, OSError, KeyError) as error:
        print(f"lowpaxos sim: {error}", file=sys.stderr)
        return 2
    # A tick must be long against the slowest link, or every election timeout fires
    # before a round trip completes: at least a quarter of the longest one-way delay.
    tick_us = args.tick_us or max(1_000, where.one_way_us_max() // 4)
    printer = print if args.print_events else None
    trace_file = None
    if args.trace is not None:
        try:
            trace_file = open(args.trace, "w", encoding="utf-8")  # noqa: SIM115 - closed below
        except OSError as error:
            print(f"lowpaxos sim: {error}", file=sys.stderr)
            return 2
        trace_file.write(trace_meta_line(args.protocol, config, args.seed, "sim"))
    try:
        options = SimOptions(
            replicas=args.replicas,
            clients=args.clients,
            ops=args.ops,
            seed=args.seed,
            keys=args.keys,
            conflicts=args.conflicts,
            value_bytes=args.value_bytes,
            tick_us=tick_us,
            client_timeout_us=50 * tick_us,
            client_backoff_us=2 * tick_us,
            topology=where,
            print_events=printer,
            core_trace=False,
            trace_events=None if trace_file is None else ndjson_writer(trace_file),
        )
    except ValueError as error:
        print(f"lowpaxos sim: {error}", file=sys.stderr)
        return 2
    safety_us = args.safety_ticks * tick_us
    # The fault plan has its own seed stream so that adding a fault knob does not
    # change the workload or the network draws of an otherwise equal run.
    plan = FaultPlan.random(
        random.Random(f"faults:{args.seed}"),
        replicas=args.replicas,
        window_us=safety_us,
        tick_us=tick_us,
        crashes=args.crashes,
        partitions=args.partitions,
        loss=args.loss,
        dup=args.dup,
        reorder=args.reorder,
    )
    limits = RunLimits(
        safety_us=safety_us,
        liveness_us_max=max(60_000 * tick_us, safety_us),
        settle_us_max=2_000 * tick_us,
    )
    try:
        result = run(spec, config, options, plan, limits, protocol=args.protocol)
    except BrokenPipeError:
        # `lowpaxos sim --print-events | head` closed our output: nothing left to say.
        sys.stdout = open(os.devnull, "w")
        return 0
    finally:
        if trace_file is not None:
            trace_file.close()
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(summary(result))
    # An undecided check (linearizable None) is not a pass, nor a failed graph check:
    # the exit code says so.
    return 0 if healthy(result) else 1


def trace_meta_line(protocol: str, config, seed: int, source: str) -> str:
    """The first line of a trace file: what the checker needs to know about the cluster."""
    meta = {"protocol": protocol, "source": source, "seed": seed,
            "replicas": config.replicas,
            "q1": getattr(config, "quorum_phase1", None), "q2": getattr(config, "quorum_phase2", None),
            "thrifty": getattr(config, "thrifty", None)}
    return json.dumps({"meta": meta}, sort_keys=True) + "\n"


def ndjson_writer(file):
    """A ``SimOptions.trace_events`` sink writing one JSON object per line."""

    def write(event: dict) -> None:
        file.write(json.dumps(event, separators=(",", ":"), sort_keys=True) + "\n")

    return write


def summary(result: dict) -> str:
    def milliseconds(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f} ms"

    verdict = {True: "yes", False: "NO",
               None: f"UNDECIDED on {result['linearizability_undecided_keys']} keys "
                     "(checker time limit): not a pass"}
    faults = result["faults_injected"]
    injected = ", ".join(f"{count} {name}" for name, count in faults.items()) or "none"
    drops = result["drops"]
    lines = [
        f"lowpaxos sim: {result['protocol']}, {result['replicas']} replicas, "
        f"{result['clients']} clients, seed {result['seed']}, {result['latency']} latency",
        f"  committed operations:    {result['committed']} of {result['ops_issued']} issued"
        f" ({result['unknown_outcome']} without a reply)",
        f"  replica messages per op: {result['replica_messages_per_op']:.2f}",
        f"  replica bytes per op:    {result['replica_bytes_per_op']:.1f}",
        f"  commit latency:          p50 {milliseconds(result['commit_latency_ms_p50'])}, "
        f"p99 {milliseconds(result['commit_latency_ms_p99'])}",
        f"  linearizable:            {verdict[result['linearizable']]}",
        f"  replicas agree:          {'yes' if result['kvs_converged'] else 'NO'}",
        f"  faults planned:          {result['faults_planned']}",
        f"  faults injected:         {injected}; {sum(drops.values())} drops",
        f"  simulated:               {result['virtual_time_ms']:.1f} ms virtual, "
        f"{result['events']} events, {result['events_per_second']} events/s",
        f"  trace digest:            {result['trace_digest'][:16]}",
    ]
    if "fast_path_ratio" in result:
        ratio = result["fast_path_ratio"]
        lines.append(f"  fast path:               "
                     f"{'n/a' if ratio is None else f'{100 * ratio:.1f}%'} of commits")
    if "largest_component" in result:
        lines.append(f"  largest component:       {result['largest_component']} instances")
    if "execute_delay_max_ms" in result:
        lines.append(f"  commit-to-execute:       max "
                     f"{milliseconds(result['execute_delay_max_ms'])}, mean "
                     f"{milliseconds(result.get('execute_delay_mean_ms'))}")
    graph = result.get("graph_check")
    if graph is not None:
        lines.append(f"  dependency-graph check:  {'yes' if graph.get('ok') is True else 'NO'}"
                     f" ({graph['events']} trace events, {graph['seconds']:.1f} s)")
        if graph.get("ok") is not True:
            lines.append("  " + str(graph.get("explanation", graph)).replace("\n", "\n  "))
    if result["linearizable"] is not True:
        lines.append("  " + result["linearizability"].replace("\n", "\n  "))
    return "\n".join(lines)
