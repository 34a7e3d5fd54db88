"""NDJSON traces of real replicas, and merging them into one trace.

Each replica writes the core's trace events (``Effects.trace``, the same events
the simulator writes) to ``trace_dir/replica-I.ndjson``, adding:

* ``seq``: the event's position in this replica's file (per incarnation, with ``boot``);
* ``boot``: the incarnation, the start time in microseconds;
* ``received``: ``[sender, counter]``, the id of the message the event handled;
* ``sent``: ``[[target, sender, counter], ...]``, ids of messages the step sent.

``merge_traces`` orders all events consistently with happens-before: each
replica's events stay in file order, and an event that handled message m comes
after the event that sent m (Lamport 1978). Events are written after their
batch is persisted, in batch order.
"""

from __future__ import annotations

import heapq
import json
from pathlib import Path


class TraceWriter:
    def __init__(self, path: Path, boot: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self.boot = boot
        self.seq = 0

    def write(self, events: list[dict]) -> None:
        for event in events:
            event["boot"] = self.boot
            event["seq"] = self.seq
            self.seq += 1
            self.file.write(json.dumps(event, separators=(",", ":"), default=str) + "\n")

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def merge_traces(paths: list[Path]) -> list[dict]:
    """All events of ``paths`` in one order that respects file order and send -> receive.

    A receive whose send is not in any file (lost file tail after SIGKILL) waits for no one.
    """
    streams = []
    for path in paths:
        events = []
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if line.strip():
                events.append(json.loads(line))
        streams.append(events)
    sent_ids = set()
    for events in streams:
        for event in events:
            for target, sender, counter in event.get("sent", []):
                sent_ids.add((sender, counter))
    merged: list[dict] = []
    positions = [0] * len(streams)
    delivered: set[tuple[int, int]] = set()
    # Bounded: each pass takes at least one event, or stops.
    for _ in range(sum(len(s) for s in streams) + 1):
        progressed = False
        ready = []
        for index, events in enumerate(streams):
            if positions[index] < len(events):
                event = events[positions[index]]
                received = event.get("received")
                if received is None or tuple(received) in delivered or tuple(received) not in sent_ids:
                    heapq.heappush(ready, (event.get("ts", 0), index))
        while ready:
            _, index = heapq.heappop(ready)
            event = streams[index][positions[index]]
            merged.append(event)
            positions[index] += 1
            for target, sender, counter in event.get("sent", []):
                delivered.add((sender, counter))
            progressed = True
            break
        if not progressed:
            break
    if len(merged) != sum(len(s) for s in streams):
        # A cycle cannot happen with real send/receive ids; keep the rest in file order.
        for index, events in enumerate(streams):
            merged.extend(events[positions[index]:])
    return merged
