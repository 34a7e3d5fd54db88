"""What trace conformance needs to know about each protocol, by the name a trace's
meta line gives (``"protocol"``; a trace without one is LowPaxos).

The checker itself (reading lines, running TLC, reporting where a trace diverges)
is the same for every protocol; what differs is here:

* the trace format: the actions a core logs, the message types and their fields,
  and how a logged post-state is read (``parse_state``);
* the spec: the module the trace spec extends, the trace-spec template in
  conformance/, and the safety invariants of that spec checked in every replayed
  state (operators the spec defines; the checker never restates them);
* the mapping (``mapping``, a module): how the validated events become one TLA+
  sequence of records and a configuration (``plan_steps``, ``write_module``,
  ``write_config``), and the report of a divergence.

VR Revisited (vr_format, conformance/TraceVR.tla) and EPaxos (epaxos_format,
conformance/TraceEPaxos.tla) have entries.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Callable


@dataclass(frozen=True, slots=True)
class TraceProtocol:
    name: str
    spec_module: str  # spec/<spec_module>.tla
    template: str  # conformance/<template>, the trace spec the checker fills in
    # Safety invariants of the spec, checked in every state the replay reaches.
    safety_invariants: tuple[str, ...]
    receive_actions: dict[str, str]  # handler action -> the message type it handles
    local_actions: frozenset[str]
    driver_actions: frozenset[str]  # written by a driver, not by a core
    stateless_actions: frozenset[str]  # actions logged without a post-state
    message_fields: dict[str, dict[str, str]]  # type -> field -> kind (trace.check_value)
    slot_actions: frozenset[str]  # actions that log a "slot"
    target_actions: frozenset[str]  # actions that log a "target" replica
    # (path, line, JSON value) -> the protocol's state object; raises TraceFormatError.
    parse_state: Callable
    mapping_module: str  # the module with plan_steps, write_module, write_config

    @property
    def actions(self) -> frozenset[str]:
        return frozenset(self.receive_actions) | self.local_actions | self.driver_actions

    @property
    def mapping(self) -> ModuleType:
        return importlib.import_module(self.mapping_module)


def _from_format(name: str, spec_module: str, template: str, format_module: str,
                 mapping_module: str) -> TraceProtocol:
    """An entry from the protocol's format module (its action and message tables and
    ``parse_state``); actions logged without a post-state are the module's
    ``STATELESS_ACTIONS``, else the drivers' Crash alone."""
    f = importlib.import_module(f"lowpaxos.conformance.{format_module}")
    return TraceProtocol(
        name=name, spec_module=spec_module, template=template,
        safety_invariants=f.SAFETY_INVARIANTS, receive_actions=f.RECEIVE_ACTIONS,
        local_actions=f.LOCAL_ACTIONS, driver_actions=f.DRIVER_ACTIONS,
        stateless_actions=getattr(f, "STATELESS_ACTIONS", frozenset({"Crash"})),
        message_fields=f.MESSAGE_FIELDS, slot_actions=f.SLOT_ACTIONS,
        target_actions=f.TARGET_ACTIONS, parse_state=f.parse_state,
        mapping_module=f"lowpaxos.conformance.{mapping_module}")


def _lowpaxos() -> TraceProtocol:
    return _from_format("lowpaxos", "LowPaxos", "TraceLowPaxos.tla", "lowpaxos_format",
                        "tlagen")


def _vr() -> TraceProtocol:
    return _from_format("vr", "VR", "TraceVR.tla", "vr_format", "vr_format")


def _epaxos() -> TraceProtocol:
    # Crash lines carry no state; a Restart's is whatever the restarted core logs (none
    # when the core is not asked for one: the next event of that replica pins it).
    return _from_format("epaxos", "EPaxos", "TraceEPaxos.tla", "epaxos_format",
                        "epaxos_format")


# name -> a function that builds the entry (imports stay lazy).
_PROTOCOLS: dict[str, Callable[[], TraceProtocol]] = {"lowpaxos": _lowpaxos, "vr": _vr,
                                                      "epaxos": _epaxos}
DEFAULT_PROTOCOL = "lowpaxos"


def known_protocols() -> list[str]:
    return sorted(_PROTOCOLS)


def trace_protocol(name: str) -> TraceProtocol | None:
    make = _PROTOCOLS.get(name)
    return make() if make is not None else None
